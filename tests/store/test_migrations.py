"""The store's schema revisions: created, upgraded, refused when newer, matching the models."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text

from qaflow.config.git import GitInfo
from qaflow.errors import StoreError
from qaflow.store import SCHEMA_REVISION, Store
from qaflow.store import engine as db
from qaflow.store.models import metadata


@pytest.fixture
def raw(store_url: str, tmp_path: Path) -> Iterator[Engine]:
    """An engine on the test database, configured as the store configures its own."""
    engine = db.create(db.database_url(store_url, tmp_path))
    yield engine
    engine.dispose()


def revisions(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())


def test_a_new_database_gets_the_head_revision_and_the_models_schema(
    store_url: str, tmp_path: Path, raw: Engine
) -> None:
    assert inspect(raw).get_table_names() == []
    Store.open(store_url, storage=tmp_path).close()
    assert revisions(raw) == [SCHEMA_REVISION] == ["0002"]
    assert sorted(inspect(raw).get_table_names()) == ["alembic_version", "executions", "runs"]
    with raw.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert differences == []
    indexes = {index["name"]: index["column_names"] for index in inspect(raw).get_indexes("runs")}
    assert indexes == {
        "uq_runs_execution_key": ["execution_id", "key"],
        "ix_runs_execution_status": ["execution_id", "status"],
        "ix_runs_key": ["key"],
        "ix_runs_fingerprint_status": ["fingerprint", "status"],
    }


def test_a_database_of_a_newer_qaflow_is_refused_with_what_to_do(
    store_url: str, tmp_path: Path, raw: Engine
) -> None:
    Store.open(store_url, storage=tmp_path).close()
    with raw.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0042'"))
    with pytest.raises(StoreError) as raised:
        Store.open(store_url, storage=tmp_path)
    message = str(raised.value)
    assert "has schema revision '0042'" in message
    assert "knows revisions up to '0002'" in message
    assert "Upgrade qaflow (pip install --upgrade qaflow)" in message
    assert revisions(raw) == ["0042"]  # left as it was


def test_an_older_database_is_upgraded_and_keeps_working(
    store_url: str, tmp_path: Path, raw: Engine
) -> None:
    Store.open(store_url, storage=tmp_path).close()
    with raw.begin() as connection:  # back to before revision 0001
        config = db.alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    assert sorted(inspect(raw).get_table_names()) == ["alembic_version"]
    assert revisions(raw) == []
    with Store.open(store_url, storage=tmp_path) as store:
        execution_id = store.writes.create_execution(
            label="l", project="p", argv=[], git=GitInfo(), pid=None, host=None
        )
        assert store.lookups.execution(execution_id).label == "l"
    assert revisions(raw) == ["0002"]


def test_schema_revision_is_the_head_of_the_migration_scripts() -> None:
    scripts = ScriptDirectory.from_config(db.alembic_config())
    assert scripts.get_heads() == [SCHEMA_REVISION]
    in_order = [script.revision for script in scripts.walk_revisions()][::-1]
    assert tuple(in_order) == db.KNOWN_REVISIONS


def test_the_migrations_ship_as_python_packages() -> None:
    """`pip install .` copies only .py files of packages: nothing else may be needed."""
    files = [p for p in db.MIGRATIONS.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert {p.suffix for p in files} == {".py"}
    folders = {p.parent for p in files}
    assert folders == {db.MIGRATIONS, db.MIGRATIONS / "versions"}
    assert all((folder / "__init__.py").is_file() for folder in folders)


def alembic_modules_after_opening(storage: Path) -> str:
    """The Alembic modules a fresh process has imported once it opened the store in `storage`."""
    code = (
        "import sys; from pathlib import Path; from qaflow.store import Store; "
        f"Store.open(storage=Path({str(storage)!r})).close(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_opening_an_up_to_date_database_does_not_import_alembic(tmp_path: Path) -> None:
    Store.open(storage=tmp_path).close()
    assert alembic_modules_after_opening(tmp_path) == "[]"


def schema(engine: Engine) -> dict[str, object]:
    """Everything of the schema a later migration may depend on, names of constraints too."""
    found = inspect(engine)
    tables: dict[str, object] = {}
    for name in sorted(found.get_table_names()):
        tables[name] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"]) for c in found.get_columns(name)
            ],
            "pk": found.get_pk_constraint(name),
            "fks": sorted(
                (
                    fk["name"],
                    tuple(fk["constrained_columns"]),
                    fk["referred_table"],
                    tuple(fk["referred_columns"]),
                    fk["options"].get("ondelete"),
                )
                for fk in found.get_foreign_keys(name)
            ),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in found.get_indexes(name)
            ),
            "unique": sorted(
                (u["name"], tuple(u["column_names"])) for u in found.get_unique_constraints(name)
            ),
        }
    tables["revision"] = revisions(engine)
    return tables


def test_a_new_database_is_created_as_the_migrations_create_it(
    store_url: str, tmp_path: Path, raw: Engine
) -> None:
    """A new store is created from the models and stamped at the head, without Alembic:
    it must be exactly what the migrations build, or a later migration could not run."""
    with raw.begin() as connection:
        config = db.alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    migrated = schema(raw)
    with raw.begin() as connection:
        for table in ("runs", "executions", "alembic_version"):
            connection.execute(text(f"DROP TABLE {table}"))
    assert inspect(raw).get_table_names() == []
    Store.open(store_url, storage=tmp_path).close()
    created = schema(raw)
    assert created == migrated
    assert created["revision"] == [SCHEMA_REVISION]


def test_creating_a_new_database_does_not_import_alembic(tmp_path: Path) -> None:
    assert alembic_modules_after_opening(tmp_path / "new") == "[]"
    assert (tmp_path / "new" / "qaflow.db").is_file()
