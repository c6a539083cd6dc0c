"""parley.store: the SQLite executor shared by every layer."""

from parley.store.database import Database, DatabaseClosed, create_private_file, migrate

__all__ = ["Database", "DatabaseClosed", "create_private_file", "migrate"]
