from ruta.cli import main

main()
