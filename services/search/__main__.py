from services.search.main import main

main()
