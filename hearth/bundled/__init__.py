"""Data shipped inside the package and the frozen binary: the CRDs and the InferenceRuntime profiles.

Every file here is written by ``python -m hearth.install.generate`` (CRDs from the models in ``hearth/api``,
profiles from the checkout's ``runtimes/``): edit the source, not these copies. Read them through
:mod:`hearth.common.bundle`, never through file paths, so it works the same installed, editable, or frozen
by PyInstaller.
"""
