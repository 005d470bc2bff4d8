from services.feeds.main import main

main()
