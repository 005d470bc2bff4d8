from services.reactions.main import main

main()
