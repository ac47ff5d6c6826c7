"""Pure functions from (LLMService, InferenceRuntime, operator config) to Kubernetes manifests: no I/O."""
