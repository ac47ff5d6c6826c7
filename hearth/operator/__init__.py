"""The control loop: LLMService + InferenceRuntime → workloads, status and events."""
