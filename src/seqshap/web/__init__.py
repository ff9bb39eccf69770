"""The web page and JSON API behind ``seqshap serve`` (FastAPI + uvicorn)."""

from .app import ExplainService, Overloaded, create_app

__all__ = ["ExplainService", "Overloaded", "create_app"]
