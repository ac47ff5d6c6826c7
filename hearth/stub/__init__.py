"""A CPU fake of a vLLM OpenAI-compatible server, for tests and demos where no accelerator exists."""
