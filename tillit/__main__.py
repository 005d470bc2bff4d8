from tillit.cli import main

main()
