"""The thin core of the store: the engine, one transaction per call, opening (with the schema
check) and closing. The query modules (writes, lookups, board, history) run their statements
through a `Database`; `qaflow.store.store.Store` is a `Database` that carries them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Self

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError

from qaflow.errors import StoreError
from qaflow.store import engine as db
from qaflow.store.codec import retrying_locks
from qaflow.store.rows import no_execution


class Database:
    """An engine and its transactions. Open with `open` (a subclass opens as itself)."""

    def __init__(self, engine: Engine, *, shown_as: str | None = None) -> None:
        self._engine = engine
        self._writer = engine.execution_options(**db.WRITE)
        self.sqlite = engine.dialect.name == "sqlite"
        self._shown_as = shown_as

    @classmethod
    def open(cls, url: str | None = None, *, storage: Path, readonly: bool = False) -> Self:
        """Connect (url None: SQLite file storage/qaflow.db) and bring the schema up to date.

        `readonly`: for commands that only read (status, logs, compare…): where the default
        SQLite file does not exist yet, an empty store in memory stands for it, so that
        reading creates no storage folder and no file."""
        default = storage / "qaflow.db"
        if readonly and url is None and not default.exists():
            engine = db.create_empty()
            db.ensure_schema(engine)
            return cls(engine, shown_as=db.shown(db.URL.create("sqlite", database=str(default))))
        target = db.database_url(url, storage)
        engine = db.create(target)
        try:
            db.reach(engine)
            with db.translated(target, "open the database"):
                retrying_locks(lambda: db.ensure_schema(engine), OperationalError)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self, what: str, *, write: bool = True) -> Iterator[Connection]:
        """One unit of work, committed on leaving; errors become StoreErrors naming `what`."""
        engine = self._writer if write else self._engine
        with db.translated(self._engine.url, what), engine.begin() as connection:
            yield connection

    @property
    def shown_url(self) -> str:
        """The database URL as messages print it: without its password."""
        return self._shown_as or db.shown(self._engine.url)

    def no_execution(self, ref: str) -> StoreError:
        return no_execution(ref, self.shown_url)
