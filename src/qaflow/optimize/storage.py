"""Where studies live: Optuna's RDB storage, in the run store's database.

Optuna keeps its own tables and versions them with Alembic, as the run store does, and both
would share Alembic's `alembic_version` table. So Optuna's tables live apart:
- PostgreSQL (`database_url`): in the schema `optuna` of the same database (created on
  first use), reached through the connection's `search_path`;
- SQLite (the default store, STORAGE/qaflow.db): in STORAGE/studies.db beside it.

Several `qa optimize` processes may work on one study at once: Optuna's storage is made for
it. Trials beat a heartbeat; a trial whose process died (kill -9) is failed by the next
process that works on the study once its heartbeat is older than GRACE seconds.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qaflow.errors import StoreError, UsageError

if TYPE_CHECKING:
    import optuna

    from qaflow.config.project import Project

SCHEMA = "optuna"
HEARTBEAT = 5  # seconds between two heartbeats of a running trial
GRACE = 30  # seconds without a heartbeat after which a running trial is failed
OPEN_ATTEMPTS = 4


def storage_url(project: Project) -> tuple[str, dict[str, Any]]:
    """(URL, engine options) of the project's study storage."""
    from qaflow.store.engine import database_url

    url = database_url(project.database_url, project.storage)
    if url.get_backend_name() == "sqlite":
        studies = Path(url.database or project.storage / "qaflow.db").with_name("studies.db")
        return f"sqlite:///{studies}", {"connect_args": {"timeout": 30}}
    _create_schema(url)
    rendered = url.render_as_string(hide_password=False)
    return rendered, {"connect_args": {"options": f"-csearch_path={SCHEMA}"}, "pool_pre_ping": True}


def _create_schema(url: Any) -> None:
    from sqlalchemy import create_engine, text

    from qaflow.store.engine import shown

    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
    except Exception as exc:
        raise StoreError(f"Cannot create the schema {SCHEMA!r} at {shown(url)}: {exc}") from exc
    finally:
        engine.dispose()


def open_storage(project: Project) -> optuna.storages.RDBStorage:
    """The project's study storage, its tables created or upgraded as Optuna needs."""
    import optuna

    quiet()
    for attempt in range(OPEN_ATTEMPTS):
        try:
            url, engine_kwargs = storage_url(project)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # heartbeats are "experimental" in some versions
                return optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=HEARTBEAT,
                    grace_period=GRACE,
                )
        except Exception as exc:  # SQLAlchemy's, Optuna's schema checks
            # two processes creating the schema or the tables at once: one fails, and then
            # finds them made
            if attempt + 1 == OPEN_ATTEMPTS:
                raise StoreError(f"Cannot open the study storage: {exc}") from exc
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


@contextlib.contextmanager
def opened_storage(project: Project) -> Iterator[optuna.storages.RDBStorage]:
    """`open_storage`, its connections closed when done."""
    storage = open_storage(project)
    try:
        yield storage
    finally:
        storage.remove_session()
        storage.engine.dispose()


def load_study(storage: optuna.storages.RDBStorage, name: str) -> optuna.Study:
    """An existing study; UsageError naming the studies there are if it does not exist."""
    import optuna

    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = sorted(s.study_name for s in optuna.get_all_study_summaries(storage))
        known = ", ".join(names) or "none yet"
        raise UsageError(
            f"There is no study {name!r} in this project (studies: {known}). Start one with "
            "`qa --label NAME optimize -b BATCH --config-file search.yaml`."
        ) from None


def quiet() -> None:
    """Optuna logs every trial (a failed one with a traceback): `qa optimize` prints its own
    progress, and a failed trial's reason, instead."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
