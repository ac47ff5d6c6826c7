"""Data shipped inside the package and the frozen binary: generated CRDs and InferenceRuntime profiles.

Read it through :mod:`hearth.common.bundle`, never through file paths, so it works the same installed,
editable, or frozen by PyInstaller.
"""
