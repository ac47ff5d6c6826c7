"""Wake telemetry and accelerator accounting: ``wakes``, ``wakefailures`` and ``accounting`` derive them from
observations (pure); ``wiring`` keeps the backend pods' cache, the status fields and the Prometheus series
(I/O)."""
