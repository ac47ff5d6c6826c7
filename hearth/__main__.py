"""Entry point for ``python -m hearth`` and for the PyInstaller-frozen executable."""

from hearth.cmd import main

if __name__ == "__main__":
    main.cli()
