"""The store's reads for the board, on SQLite and PostgreSQL: counts per batch, the graph of
batches, a filtered and sorted page of runs, filters of executions, matching runs; and the
execution page served over a PostgreSQL store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from qaflow.config.git import GitInfo
from qaflow.config.project import Project
from qaflow.store import Store
from qaflow.web.app import create_app
from qaflow.worker.model import RunResult, RunStatus

from .conftest import Server, execute, make_demo


def spec(
    batch: str, name: str | None, needs: list[str] = (), config: str = "base"
) -> dict[str, Any]:
    key = f"{batch}-{name or 'none'}-{config}"
    return {
        "id": key,
        "batch": batch,
        "input_path": None if name is None else f"/data/{name}",
        "rel_input_path": name,
        "configurations": [config],
        "params": {},
        "platform": "linux",
        "type": "default",
        "output_dir": f"/storage/runs/{key}",
        **({"needs": list(needs)} if needs else {}),
    }


def pipeline(
    store: Store, label: str = "nightly", branch: str = "main", config: str = "base"
) -> str:
    """images (3 runs) -> calib (1 run, needs every image) -> eval (4 runs, each needs calib)."""
    execution = store.writes.create_execution(
        label=label,
        project="acme/vision",
        argv=["batch", "eval"],
        git=GitInfo(commit="abc123def456", branch=branch, dirty=False),
        pid=None,
        host="ci",
    )
    images = [spec("images", f"i{i}.png", config=config) for i in range(3)]
    calib = spec("calib", None, [s["id"] for s in images], config=config)
    evals = [spec("eval", f"t{i}.png", [calib["id"]], config=config) for i in range(4)]
    store.writes.add_runs(execution, [*images, calib, *evals])
    results = [
        RunResult(
            s["id"],
            RunStatus.SUCCEEDED,
            {"error": 1.0 + i / 10},
            started_at=100.0,
            ended_at=100.0 + i,
        )
        for i, s in enumerate([*images, calib])
    ]
    results += [
        RunResult(
            evals[0]["id"],
            RunStatus.SUCCEEDED,
            {"error": 0.5, "note": "<b>x</b>"},
            started_at=1.0,
            ended_at=9.0,
        ),
        RunResult(
            evals[1]["id"],
            RunStatus.FAILED,
            {"note": "crashed"},
            error="boom",
            started_at=1.0,
            ended_at=2.0,
        ),
        RunResult(
            evals[2]["id"], RunStatus.SUCCEEDED, {"error": 2.5}, started_at=1.0, ended_at=3.0
        ),
    ]
    store.writes.record(execution, finished=results)
    return execution


def test_counts_per_batch_in_plan_order_and_the_graph_of_batches(store: Store) -> None:
    execution = pipeline(store)
    assert store.board.batch_counts(execution) == {
        "images": {"succeeded": 3},
        "calib": {"succeeded": 1},
        "eval": {"succeeded": 2, "failed": 1, "pending": 1},
    }
    assert sorted(store.board.batch_edges(execution)) == [("calib", "eval"), ("images", "calib")]


def test_a_page_of_runs_filtered_and_sorted(store: Store) -> None:
    execution = pipeline(store)
    total, rows = store.board.run_table(
        execution, batch="eval", sort="metric:error", descending=True
    )
    assert total == 4
    # numbers first (descending), runs without the metric after them, in plan order
    assert [row.rel_input_path for row in rows] == ["t2.png", "t0.png", "t1.png", "t3.png"]
    total, rows = store.board.run_table(execution, statuses=["failed", "errored"])
    assert (total, [row.key for row in rows]) == (1, ["eval-t1.png-base"])
    total, rows = store.board.run_table(execution, text="i2", limit=10)
    assert [row.rel_input_path for row in rows] == ["i2.png"]
    total, rows = store.board.run_table(execution, sort="duration", offset=1, limit=2)
    assert total == 8 and [row.key for row in rows] == ["images-i1.png-base", "eval-t1.png-base"]
    # a metric that is a string in some runs sorts without an error on either backend
    total, rows = store.board.run_table(execution, sort="metric:note")
    assert total == 8 and len(rows) == 8
    total, rows = store.board.run_table(execution, text="100%_")  # LIKE wildcards are plain text
    assert total == 0


def test_executions_filtered_by_their_columns(store: Store) -> None:
    first = pipeline(store, label="nightly", branch="main")
    second = pipeline(store, label="experiment", branch="feature")
    assert [e.id for e in store.board.find_executions()] == [second, first]
    assert [e.id for e in store.board.find_executions(label="nightly")] == [first]
    assert [e.id for e in store.board.find_executions(git_branch="feature", status="running")] == [
        second
    ]
    assert [e.id for e in store.board.find_executions(git_commit="abc1")] == [second, first]
    assert store.board.find_executions(git_commit="fff") == []
    assert store.board.find_executions(limit=1, offset=1)[0].counts["succeeded"] == 6
    values = store.board.execution_values("label", "git_branch", "project")
    assert values == {
        "label": ["experiment", "nightly"],
        "git_branch": ["feature", "main"],
        "project": ["acme/vision"],
    }


def test_the_run_to_compare_with_by_key_else_by_batch_and_input(store: Store) -> None:
    ref = pipeline(store)
    same = pipeline(store)
    changed = pipeline(store, config="tuned")
    run = next(r for r in store.lookups.runs(changed) if r.rel_input_path == "t0.png")
    assert store.lookups.run(run.id) == run
    found = store.board.matching_run(ref, run)
    assert found is not None and (found.execution_id, found.key) == (ref, "eval-t0.png-base")
    calib = next(r for r in store.lookups.runs(changed) if r.batch == "calib")
    found = store.board.matching_run(same, calib)  # no input on either side
    assert found is not None and found.key == "calib-none-base"
    original = next(r for r in store.lookups.runs(ref) if r.rel_input_path == "t0.png")
    assert [e.id for _, e in store.board.same_runs(original.key)] == [same, ref]
    assert store.lookups.run_by_key(changed, original.key) is None


def test_the_execution_page_over_this_store(store: Store, tmp_path: Path) -> None:
    execution = pipeline(store, label="<i>night</i>")
    (tmp_path / "qaboard.yaml").write_text("project: {name: acme/vision}\n")
    with Server(create_app(Project.discover(tmp_path), store=store)) as server:
        page = httpx.get(f"{server.url}/executions/{execution[:6]}")
        data = httpx.get(f"{server.url}/api/executions/{execution}").json()
        compared = httpx.get(f"{server.url}/compare", params={"ref": execution, "new": execution})
    assert page.status_code == 200
    assert page.text.count('class="dag-node') == 3 and page.text.count('class="edge"') == 2
    assert "&lt;i&gt;night&lt;/i&gt;" in page.text and "<i>night" not in page.text
    assert data["batches"]["eval"] == {"succeeded": 2, "failed": 1, "pending": 1}
    assert sorted(map(tuple, data["edges"])) == [("calib", "eval"), ("images", "calib")]
    assert compared.status_code == 200 and "No regression" in compared.text


@pytest.mark.parametrize(
    "path", ["/executions/ffffffffffff", "/runs/999999", "/executions/x/runs/y"]
)
def test_unknown_things_are_404_pages(store: Store, tmp_path: Path, path: str) -> None:
    (tmp_path / "qaboard.yaml").write_text("")
    with Server(create_app(Project.discover(tmp_path), store=store)) as server:
        response = httpx.get(server.url + path)
    assert response.status_code == 404 and "Not found" in response.text


def test_a_pipeline_s_run_steps_are_nodes_of_their_own(store: Store) -> None:
    """`run:` steps are runs of the pipeline batch, one node each, named as `qa dag` does."""
    execution = store.writes.create_execution(
        label="p", project="acme/vision", argv=[], git=GitInfo(), pid=None, host=None
    )
    folder = "/storage/runs/pipe/ab12"

    def step(n: int, needs: list[str]) -> dict[str, Any]:
        made = {**spec("pipe", None, needs), "id": f"step{n}", "type": "pipeline"}
        return {**made, "output_dir": f"{folder}/step-{n}/k{n}"}

    middle = [spec("work", f"w{i}.png", ["step1"]) for i in range(2)]
    store.writes.add_runs(execution, [step(1, []), *middle, step(3, [s["id"] for s in middle])])
    assert store.board.batch_counts(execution) == {
        "pipe step 1": {"pending": 1},
        "work": {"pending": 2},
        "pipe step 3": {"pending": 1},
    }
    assert store.board.batch_edges(execution) == [("pipe step 1", "work"), ("work", "pipe step 3")]
    assert store.board.batch_names(execution) == ["pipe", "work"]


def test_cached_against_executed_with_the_same_result_is_unchanged(tmp_path: Path) -> None:
    """The compare page of a fully cached execution against the one that executed its runs."""
    root = make_demo(tmp_path / "demo")
    executed = execute(root, "reference")
    cached = execute(root, "again")  # every run reused
    project = Project.discover(root)
    with (
        Store.open(project.database_url, storage=project.storage) as store,
        Server(create_app(project, store=store)) as server,
    ):
        assert {r.status.value for r in store.lookups.runs(cached)} == {"cached"}
        page = httpx.get(f"{server.url}/compare", params={"ref": executed, "new": cached})
        changed = httpx.get(
            f"{server.url}/compare", params={"ref": executed, "new": cached, "only": "changed"}
        )
    assert page.status_code == 200 and "No regression" in page.text
    assert 'class="changed"' not in page.text and 'class="regression"' not in page.text
    assert page.text.count('data-input="test') == 3
    assert changed.text.count('data-input="test') == 0
