"""The front: what every request meets before, and regardless of, its model (the HTTP application, API keys,
the body's limits), and the table that picks the route it reaches (a dedicated gateway's one route, a
shared gateway's watched routes)."""
