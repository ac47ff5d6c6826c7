"""The only place that talks to the Kubernetes API: client setup, server-side apply, list+watch caches,
events and leader election, as plain REST calls on aiohttp."""
