"""The per-LLMService data plane: an OpenAI-compatible reverse proxy that holds or rejects cold requests,
raises demand so the backend wakes, streams tokens, and drains gracefully."""
