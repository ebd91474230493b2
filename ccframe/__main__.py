from ccframe.cli import main

main()
