from socialbot.start import main

main()
