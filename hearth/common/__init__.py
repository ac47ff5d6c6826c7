"""Small, dependency-free building blocks shared by every layer (durations, addresses, logging)."""
