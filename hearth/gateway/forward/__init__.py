"""Forwarding an admitted request to a ready backend: the proxy, its upstream HTTP/1.1 client, the choice of
backend, and what can go wrong on the way. ``balancer`` and ``httpparts`` are pure."""
