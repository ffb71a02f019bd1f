"""The gateway's store: SQLAlchemy models, Alembic migrations, repositories and the snapshot loader.

    store = open_store(default_url(data_dir))          # migrates to the newest schema
    with store.write() as session:
        repo.add_ban(session, subject="10.1.2.3", until=..., actor="ict:jan", reason="...")
    snapshot = load_snapshot(store, now)                # -> Snapshot(revision, state)
"""

from . import repo
from .db import Store, default_url, downgrade, migrate, open_store
from .snapshot import Snapshot, load_snapshot, load_state, state_revision

__all__ = [
    "Snapshot",
    "Store",
    "default_url",
    "downgrade",
    "load_snapshot",
    "load_state",
    "migrate",
    "open_store",
    "repo",
    "state_revision",
]
