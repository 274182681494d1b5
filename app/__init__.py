"""The front door: the OpenAI-compatible HTTP API."""
