from services.notifications.main import main

main()
