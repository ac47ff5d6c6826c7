"""AcceleratorPools: ``policy`` decides who gets the devices (pure: explicit time, no I/O); ``keeper``
remembers what the policy needs across passes and writes its outcome (I/O)."""
