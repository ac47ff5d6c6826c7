"""Entry point for ``python -m hearth`` and for the PyInstaller-frozen executable.

Run under the name ``python3`` (the stub image links it so, for the prewarm Job), the binary is the stub
image's stand-in Python (:mod:`hearth.stub.pyshim`) instead of the ``hearth`` command group.
"""

import os
import sys

if __name__ == "__main__":
    if os.path.basename(sys.argv[0]) in ("python3", "python"):
        from hearth.stub import pyshim

        sys.exit(pyshim.main(sys.argv[1:]))
    from hearth.cmd import main

    main.cli()
