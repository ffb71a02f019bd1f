"""Where Poortwachter keeps its data: --data-dir, else $POORTWACHTER_DATA_DIR, else the default."""

from __future__ import annotations

import os
from pathlib import Path


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "poortwachter"


def resolve_data_dir(explicit: str | Path | None = None) -> Path:
    if explicit:
        path = Path(explicit)
    elif os.environ.get("POORTWACHTER_DATA_DIR"):
        path = Path(os.environ["POORTWACHTER_DATA_DIR"])
    else:
        path = default_data_dir()
    return path.expanduser().resolve()


def file_stamp(path: Path) -> tuple[int, int, int] | None:
    """What changes when a file is replaced or rewritten (mtime, size, inode); None when missing."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)
