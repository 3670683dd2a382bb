"""The catalog of batches: files, hidden keys, aliases, duplicates, lazy validation."""

from __future__ import annotations

import pytest

from qaflow.config.batches import Catalog, FolderTarget, Need
from qaflow.config.project import Project
from qaflow.errors import BatchSpecError, ConfigError, QaflowWarning


def test_hidden_and_reserved_keys_are_not_batches(project):
    root = project(
        batches=".anchor: &a [x]\ndatabase: .\nconfigs: [c]\nplatform: p\naliases: {g: [b]}\nb: {inputs: [f]}\n",
        files=["f"],
    )
    catalog = Catalog.load(Project.load(root))
    assert catalog.names == ["b"]
    assert catalog.aliases == {"g": ["b"]}


def test_entries_that_are_not_batches_only_fail_when_asked_for(project):
    root = project(batches="not-a-batch: [1, 2]\nb: {inputs: [f]}\n", files=["f"])
    catalog = Catalog.load(Project.load(root))
    assert catalog.batch("b").inputs[0].location == "f"
    with pytest.raises(BatchSpecError, match="must be a mapping"):
        catalog.batch("not-a-batch")


def test_an_empty_batch_has_default_everything(project):
    root = project(batches="orphan:\n", files=["f"])
    batch = Catalog.load(Project.load(root)).batch("orphan")
    assert (batch.inputs, batch.configs, batch.matrix, batch.retries) == (None, None, {}, 0)


def test_new_keys_are_read(project):
    root = project(
        batches="""
        b:
          inputs: [f]
          needs: {raw: other}
          deps: [src/algo.py]
          resources: {cpus: 2}
          timeout: 30
          retries: 2
          local: {concurrency: 3}
          lsf: {queue: long}
        """,
        files=["f"],
    )
    batch = Catalog.load(Project.load(root)).batch("b")
    assert batch.needs == (Need("raw", "other"),)
    assert batch.deps == ("src/algo.py",)
    assert batch.resources == {"cpus": 2}
    assert (batch.timeout, batch.retries, batch.local_concurrency) == (30, 2, 3)
    # by runner: what QA-Board gives the runs as `context.job_options`
    assert batch.runner_options == {"local": {"concurrency": 3}, "lsf": {"queue": "long"}}


def test_unknown_batch_keys_warn(project):
    root = project(batches="b: {inputs: [f], colour: [g]}\n", files=["f"])
    with pytest.warns(QaflowWarning, match=r"batch 'b': unknown key `colour`"):
        Catalog.load(Project.load(root)).batch("b")


@pytest.mark.parametrize(
    ("typo", "meant"),
    [("inptus", "inputs"), ("input", "inputs"), ("Needs", "needs"), ("config", "configs")],
)
def test_a_misspelt_batch_key_is_an_error_with_did_you_mean(project, typo, meant):
    root = project(batches=f"b:\n  inputs: [f]\n  {typo}: [g]\n", files=["f"])
    with pytest.raises(
        BatchSpecError,
        match=rf"batches.yaml:3: batch 'b': unknown key `{typo}`: did you mean `{meant}`",
    ):
        Catalog.load(Project.load(root)).batch("b")


def test_resolve_folders_wildcards_and_order(project):
    root = project(
        batches="x-1: {inputs: [f]}\nx-2: {inputs: [f]}\ny: {inputs: [f]}\n", files=["f", "dir/g"]
    )
    catalog = Catalog.load(Project.load(root))
    assert catalog.resolve(["y", "x-*", "dir", "y"]) == ["y", "x-1", "x-2", FolderTarget("dir")]


def test_bad_aliases_section(project):
    root = project(batches="aliases: {g: [1]}\n")
    with pytest.raises(ConfigError, match=r"batches.yaml:1: alias 'g' must list batch names"):
        Catalog.load(Project.load(root))


def test_a_batch_file_that_is_not_a_mapping(project):
    root = project(batches="- a\n- b\n")
    with pytest.raises(ConfigError, match="must be a mapping of batch names"):
        Catalog.load(Project.load(root))
