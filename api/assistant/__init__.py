"""Internal assistant: chat messages answered asynchronously by an LLM worker, followed over SSE."""

from api.assistant.routes import routes

__all__ = ["routes"]
