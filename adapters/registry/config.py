"""Where the store is and who is acting, when nobody says."""

from __future__ import annotations

import getpass
import os
import socket
from pathlib import Path

from ..settings import PathSettings


def default_store() -> Path:
    """``$BEDSIDE_STORE``, else ``$XDG_DATA_HOME/bedside/store``, else ``~/.local/share/bedside/store``."""
    return PathSettings().store_path()


def resolve_store(path: str | Path | None) -> Path:
    return Path(path).expanduser() if path else default_store()


def default_actor() -> str:
    """``user@host`` for the audit log (gethostname is local: no DNS lookup), else "cli"."""
    try:
        user = os.environ.get("USER") or getpass.getuser()
        return f"{user}@{socket.gethostname()}"
    except Exception:  # no passwd entry, odd containers
        return "cli"
