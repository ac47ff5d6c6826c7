"""The ``serving.hearth.dev/v1alpha1`` API: pydantic models that are the single source of truth.

The CRD YAMLs bundled in :mod:`hearth.bundled` are generated from these models by :mod:`hearth.api.crd`
(``python -m hearth.install.generate`` writes them).
"""

GROUP = "serving.hearth.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
