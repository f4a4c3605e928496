from __future__ import annotations

from chatsessions.cli import main

raise SystemExit(main())
