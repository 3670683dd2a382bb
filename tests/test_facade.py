"""The public names: `qaflow.batch`, `qaflow.run`, `qaflow.api.*` stay where users find them."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import qaflow


def test_the_facade_names_stay_functions_whatever_was_imported_before():
    """No subpackage shares a facade name: importing every module leaves `qaflow.run` a function."""
    for module in pkgutil.walk_packages(qaflow.__path__, "qaflow."):
        if ".migrations" not in module.name and module.name != "qaflow.__main__":
            importlib.import_module(module.name)
    from qaflow import api
    from qaflow.execution import driver

    assert qaflow.run is driver.run and qaflow.batch is driver.batch
    assert api.run is driver.run and api.batch is driver.batch and api.execute is driver.execute
    assert {"Execution", "Run", "Options", "Handle", "ExecutionStatus"} <= set(dir(api))


def test_importing_qaflow_loads_nothing_of_its_phases():
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, qaflow; print(sorted(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "'qaflow'" in loaded and "qaflow." not in loaded
