"""parley.store: the SQLite executor shared by every layer."""

from parley.store.database import (
    Database,
    DatabaseClosed,
    DatabaseKeyError,
    create_private_file,
    encrypt_file,
    migrate,
    private_directory,
)

__all__ = [
    "Database",
    "DatabaseClosed",
    "DatabaseKeyError",
    "create_private_file",
    "encrypt_file",
    "migrate",
    "private_directory",
]
