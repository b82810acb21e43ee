"""The HTTP API (OpenAI Videos compatible). Never imports torch."""
