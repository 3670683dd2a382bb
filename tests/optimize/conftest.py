"""Small projects for `qa optimize`: a metric that is a known function of two parameters."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from conftest import Result, write_project

# loss = (x - 0.3)^2 + (y + 0.2)^2, smallest (0) at x=0.3, y=-0.2; score = -loss, larger is better;
# with QA-Board's dimensions (test_qaboard_form), + log10(sigma / 0.01)^2 + (size - 4)^2 / 4
# + (1 unless kernel is gauss): smallest at sigma=0.01, size=4, kernel=gauss
MAIN = """
import json, math, os, time
from collections.abc import Callable
from pathlib import Path

def run(context):
    p = context.params
    if context.batch == "calibration":
        with open(Path(context.database) / "calibration-count.txt", "a") as f:
            f.write("calibration\\n")
        (context.output_dir / "offset.json").write_text(json.dumps({"offset": 0.2}))
        return {"done": 1}
    time.sleep(float(p.get("sleep", 0)))
    if p.get("rendezvous"):  # wait (up to 300 s) for another run to be running at the same time
        folder = Path(p["rendezvous"])
        # the file names the Dask worker running the run, if any
        (folder / f"{os.getpid()}-{time.time()}").write_text(os.environ.get("QA_DASK_WORKER", ""))
        deadline = time.time() + 300
        while len(list(folder.iterdir())) < 2:
            if time.time() > deadline:
                raise RuntimeError("no other trial ran at the same time")
            time.sleep(0.05)
    if p.get("fail") == "yes":
        raise RuntimeError("asked to fail")
    x, y = float(p.get("x", 0)), float(p.get("y", 0))
    offset = 0.2
    if p.get("calibration"):
        offset = json.loads((Path(p["calibration"]) / "offset.json").read_text())["offset"]
    loss = (x - 0.3) ** 2 + (y + offset) ** 2
    if "sigma" in p:
        loss += math.log10(p["sigma"] / 0.01) ** 2 + (p["size"] - 4) ** 2 / 4
        loss += 0 if p["kernel"] == "gauss" else 1
    if p.get("record"):  # what the run got: its parameters (JSON keeps int/float), forwarded args
        line = {"params": dict(p), "forwarded": list(context.forwarded_args)}
        with open(Path(context.database) / "received.jsonl", "a") as f:
            f.write(json.dumps(line, default=str) + "\\n")
    return {"loss": loss, "score": -loss}
"""

BATCHES = """
quadratic:
  inputs: [a.txt]
  configs: [{sleep: 0}]

ten:
  inputs: [f0.txt, f1.txt, f2.txt, f3.txt, f4.txt, f5.txt, f6.txt, f7.txt, f8.txt, f9.txt]

calibration:
  inputs: [a.txt]
  configs: [{calib: 1}]

evaluation:
  needs: {calib: calibration}
  inputs: [a.txt, b.txt]
  configs:
  - calibration: ${depends[calib].output_directory}
"""

METRICS = """
available_metrics:
  loss: {smaller_is_better: true, target: 0.01}
  score: {smaller_is_better: false}
"""

SEARCH = """
space:
  x: {low: -1.0, high: 1.0}
  y: {low: -1.0, high: 1.0}
objective: {loss: minimize}
evaluations: 30
seed: 7
"""


def quadratic_project(root: Path, *, qaboard: str = "", search: str = SEARCH) -> Path:
    files = ["a.txt", "b.txt", *(f"f{i}.txt" for i in range(10))]
    return write_project(
        root,
        qaboard=qaboard,
        batches=BATCHES,
        files=files,
        extra={"qa/main.py": MAIN, "qa/metrics.yaml": METRICS, "search.yaml": search},
    )


def optimize(
    qa: Callable[..., Result],
    root: Path,
    label: str,
    config: str | Path,
    *args: str,
    batch: str = "quadratic",
) -> Result:
    """`qa -C ROOT --label LABEL optimize -b BATCH --config-file CONFIG ARGS…`."""
    return qa(
        "-C",
        str(root),
        "--label",
        label,
        "optimize",
        "-b",
        batch,
        "--config-file",
        str(config),
        *args,
    )
