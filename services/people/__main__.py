from services.people.main import main

main()
