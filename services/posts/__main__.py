from services.posts.main import main

main()
