"""Persistence: the database engine, tables, migrations and the repositories built on them.
SQLAlchemy lives here and nowhere else."""

from tokenyard.store.database import Database

__all__ = ["Database"]
