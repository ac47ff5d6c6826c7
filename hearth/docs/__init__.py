"""The documentation site's reference pages (``docs/reference/``, ``docs/troubleshooting/``), generated from
the declarations they describe: the CRD schemas, the click commands, the settings tables, the Prometheus
registries, the alert rules, the chart's values and the reason vocabularies. ``python -m hearth.docs``
writes them (``--check``: a test fails naming the command when one is stale); nothing here is hand-copied.

This is the top layer (it reads every role), a development tool that nothing in Hearth imports.
"""
