"""Connecting to the store's database through SQLAlchemy: URLs, engines, errors, schema upgrades
(the revision, JSON values and SQLite settings themselves are in `codec.py`)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, exc, text
from sqlalchemy.engine import URL, make_url

from qaflow.errors import ConfigError, StoreError, StoreUnreachableError
from qaflow.store.codec import KNOWN_REVISIONS, SCHEMA_REVISION, SQLITE_PRAGMAS, dumps, loads

MIGRATIONS = Path(__file__).with_name("migrations")
WRITE = {"qaflow_write": True}  # execution option: on SQLite, take the write lock at BEGIN
_PG_LOCK = 0x71AF10  # pg_advisory_xact_lock key that serialises migrations
_WHERE = "Check `database_url` in qaboard.yaml (or QA_DATABASE_URL)"


def database_url(url: str | None, storage: Path) -> URL:
    """The URL to connect to: the SQLite file in `storage` by default, PostgreSQL via psycopg 3."""
    if url is None:
        try:
            storage.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(
                f"Cannot create the storage folder {str(storage)!r}: {error.strerror}. Set "
                "`storage:` in qaboard.yaml to a folder you may write in."
            ) from None
        return URL.create("sqlite", database=str(storage / "qaflow.db"))
    try:
        parsed = make_url(url)
    except exc.ArgumentError:
        raise ConfigError(
            f"The database URL {_hide(url)!r} is not valid. {_WHERE}: it should look like "
            "sqlite:///path/to/qaflow.db or postgresql://user:password@host:5432/database."
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"The database URL {shown(parsed)!r} names a database qaflow does not support. "
            f"{_WHERE}: use sqlite:///… or postgresql://…."
        )
    return parsed


def shown(url: URL) -> str:
    """The URL as printed in messages: without its password."""
    return url.render_as_string(hide_password=True)


def _hide(url: str) -> str:
    """Best effort for a URL that does not parse: drop what is between '://' and '@'."""
    head, sep, tail = url.partition("://")
    return f"{head}{sep}***@{tail.rpartition('@')[2]}" if "@" in tail else url


def create(url: URL) -> Engine:
    """An engine with qaflow's settings for the backend: see the Store's design notes."""
    options: dict[str, Any] = {"json_serializer": dumps, "json_deserializer": loads}
    if url.get_backend_name() == "postgresql":
        options |= {"pool_pre_ping": True, "pool_recycle": 1800}
        if "connect_timeout" not in url.query:
            options["connect_args"] = {"connect_timeout": 10}
    try:
        engine = create_engine(url, **options)
    except ImportError as error:
        raise StoreError(
            f"Cannot use the database at {shown(url)}: its driver is not installed ({error}). "
            "For PostgreSQL, install qaflow with its extra: pip install 'qaflow[postgres]'."
        ) from None
    except exc.ArgumentError as error:
        raise StoreError(f"Cannot use the database URL {shown(url)}: {error}. {_WHERE}.") from None
    if url.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
    return engine


def create_empty() -> Engine:
    """An engine on one empty SQLite database in memory (a store that was never written)."""
    from sqlalchemy.pool import StaticPool

    engine = create_engine(
        "sqlite://",
        poolclass=StaticPool,
        connect_args={"check_same_thread": False},
        json_serializer=dumps,
        json_deserializer=loads,
    )
    event.listen(engine, "begin", _sqlite_begin)
    event.listen(engine, "connect", _memory_connect)
    return engine


def _memory_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see _sqlite_begin)


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see _sqlite_begin)
    cursor = dbapi_connection.cursor()
    try:
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    """Reads see one snapshot; writes take the lock up front, so busy_timeout always applies."""
    write = connection.get_execution_options().get("qaflow_write", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


@contextlib.contextmanager
def translated(url: URL, what: str) -> Iterator[None]:
    """Turn SQLAlchemy and driver errors into one-paragraph StoreErrors saying what failed."""
    try:
        yield
    except exc.SQLAlchemyError as error:
        raise StoreError(
            f"Could not {what} in the run store at {shown(url)}: {_reason(error, url)}"
        ) from error


def reach(engine: Engine) -> None:
    """Connect once to a PostgreSQL server: one that does not answer, refuses the credentials
    or has no such database is the user's `database_url` to fix (StoreUnreachableError, exit
    2), told before anything is read or written. (SQLite needs no server: its errors stay
    StoreErrors of `translated`.)"""
    if engine.url.get_backend_name() != "postgresql":
        return
    try:
        engine.connect().close()  # the pool keeps the connection for what follows
    except (exc.OperationalError, exc.InterfaceError) as error:
        orig = getattr(error, "orig", None)
        lines = str(orig if orig is not None else error).strip().splitlines()
        said = re.sub(r"\s+", " ", lines[0]).rstrip(".") if lines else type(error).__name__
        raise StoreUnreachableError(
            f"Could not open the database in the run store at {shown(engine.url)}: {said}. "
            f"{_unreachable_hint(said)} Set `database_url` in qaboard.yaml (or QA_DATABASE_URL, "
            "which takes precedence) to a PostgreSQL database you can reach, or remove it to "
            "keep runs in the SQLite file of the storage folder; nothing was run or written."
        ) from None


def _unreachable_hint(said: str) -> str:
    lowered = said.lower()
    if "authentication" in lowered or ("role" in lowered and "does not exist" in lowered):
        return "The server refused the user name or password: correct them."
    if "database" in lowered and "does not exist" in lowered:
        return "The server has no such database: create it (e.g. `createdb NAME`) or name another."
    return "Is the database server running and reachable at that host and port?"


def _reason(error: exc.SQLAlchemyError, url: URL) -> str:
    orig = getattr(error, "orig", None)
    lines = str(orig if orig is not None else error).strip().splitlines()
    message = lines[0].rstrip(".") if lines else type(error).__name__
    if not isinstance(error, exc.OperationalError | exc.InterfaceError):
        return f"{message}."
    if "locked" in message or "busy" in message:
        return f"{message}. Another process kept the database locked for 30 s; try again."
    if url.get_backend_name() == "sqlite":
        return f"{message}. Check that the file's folder exists and that you may write to it."
    return f"{message}. Is the database server running and reachable? {_WHERE}."


# ---------------------------------------------------------------- schema revisions
def ensure_schema(engine: Engine) -> None:
    """Create the schema of a new database, upgrade an older one, refuse a newer one.

    The usual case (the database is at SCHEMA_REVISION) costs one query and no Alembic import."""
    with engine.connect() as connection:
        revision = current_revision(connection)
    if revision == SCHEMA_REVISION:
        return
    if revision is not None and revision not in KNOWN_REVISIONS:
        raise StoreError(
            f"The run store at {shown(engine.url)} has schema revision {revision!r}, which this "
            f"qaflow does not know (it knows revisions up to {SCHEMA_REVISION!r}): a newer qaflow "
            "wrote it. Upgrade qaflow (pip install --upgrade qaflow) to use this database, "
            "or point `database_url` to another one."
        )
    upgrade(engine)


def current_revision(connection: Connection) -> str | None:
    """The database's Alembic revision; None for a database without qaflow's schema."""
    if not connection.dialect.has_table(connection, "alembic_version"):
        return None
    rows = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return ",".join(sorted(str(row) for row in rows)) or None


def upgrade(engine: Engine) -> None:
    """Bring the schema to SCHEMA_REVISION holding the write lock, so concurrent openers
    serialise (the revision is read again under it): a new database is created from the
    models and stamped at the head (no Alembic import: ~0.2 s of a first `qa batch`); an
    older one runs the migrations up to head."""
    with engine.execution_options(**WRITE).begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text(f"SELECT pg_advisory_xact_lock({_PG_LOCK})"))
        revision = current_revision(connection)
        if revision == SCHEMA_REVISION:
            return
        if revision is None and not _has_any_table(connection):
            _create(connection)
            return
        from alembic import command  # ~100 ms: only when the schema must change

        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def _has_any_table(connection: Connection) -> bool:
    from qaflow.store.models import metadata

    return any(connection.dialect.has_table(connection, name) for name in metadata.tables)


def _create(connection: Connection) -> None:
    """The head schema from the models (tests/store/test_migrations.py keeps the migrations
    equal to them), and Alembic's version table as Alembic makes it, stamped at the head."""
    from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, String, Table, insert

    from qaflow.store.models import metadata

    metadata.create_all(connection)
    version = Table(
        "alembic_version",
        MetaData(),
        Column("version_num", String(32), nullable=False),
        PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
    )
    version.create(connection, checkfirst=True)  # a database downgraded to base keeps it
    connection.execute(insert(version).values(version_num=SCHEMA_REVISION))


def alembic_config() -> Any:
    """Alembic's configuration for the packaged migrations: no alembic.ini needed."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    return config
