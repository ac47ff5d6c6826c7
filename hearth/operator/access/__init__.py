"""Who may do what: the operator's own permissions, checked at startup (``permissions``), and who may read its
/metrics (``metricsauth``)."""
