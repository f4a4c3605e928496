"""chatsessions: the conversations of LLM chat apps in PostgreSQL, with a correct active session."""

from __future__ import annotations

__version__ = "0.1.0"
