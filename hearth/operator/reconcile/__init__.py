"""Reconciling objects into their children and status: the LLMService controller and the LLMGateway
reconciler (I/O), their work queue, and the pure decisions they apply: ``status`` (phase and conditions),
``drift`` (whether a child needs applying) and ``fallbacks`` (whether a named fallback can be used)."""
