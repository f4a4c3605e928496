"""Loads the named statements of sql/queries.sql once, at import."""

from __future__ import annotations

import re
from importlib import resources

_HEADER = re.compile(r"^-- name: (\w+) --$", re.MULTILINE)


def load_queries(text: str) -> dict[str, str]:
    """Splits `-- name: x --` sections into {name: sql}, keeping each section's comment lines."""
    parts = _HEADER.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        queries[name] = body.strip()
    return queries


QUERIES = load_queries(resources.files("chatsessions").joinpath("sql/queries.sql").read_text())
