from opsbook.main import main

main()
