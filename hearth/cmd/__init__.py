"""The ``hearth`` command line: thin click commands that parse settings and hand over to a role."""
