from socialbot.cli import main

main()
