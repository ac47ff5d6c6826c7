"""The backend's wake: waking it (built-in mode), knowing when it can serve, and what the gateway tells held
clients meanwhile. ``progress`` and ``eta`` are pure (the progress comment, times from wake history); the
others watch or write the cluster."""
