"""The only place that talks to the Kubernetes API: client setup, server-side apply, list+watch caches,
events and leader election, on the asyncio edition of the official client."""
