from minitrade.cli import main

main()
