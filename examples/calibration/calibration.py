"""The calibration step: white-balance gains from the grey charts' statistics.

    python3 calibration.py RUN_DIR…     (qaflow runs it: see my-calibration in qa/batches.yaml)

Each RUN_DIR is the output directory of a run of my-calibration-images and holds the
stats.json that qa/main.py wrote (the chart's mean R, G, B). A grey chart should have
R = G = B, so the gains that make it grey are G/R for red, 1 for green and G/B for blue;
they are averaged over the charts and written, as JSON, into $QA_OUTPUT_DIR/calibration.cde,
which my-evaluation-batch passes to qa/main.py as a configuration.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def gains_of(stats: dict[str, float]) -> list[float]:
    return [stats["mean_g"] / stats["mean_r"], 1.0, stats["mean_g"] / stats["mean_b"]]


def main(run_dirs: list[str]) -> int:
    if not run_dirs:
        print(
            "usage: calibration.py RUN_DIR… (the output directories of the charts' runs)",
            file=sys.stderr,
        )
        return 2
    output = os.environ.get("QA_OUTPUT_DIR")
    if not output:
        print(
            "calibration.py: QA_OUTPUT_DIR is not set (qaflow sets it for every run).",
            file=sys.stderr,
        )
        return 2
    per_chart = {}
    for run_dir in run_dirs:
        path = Path(run_dir, "stats.json")
        if not path.is_file():
            print(
                f"calibration.py: {path} is missing: did the run of that chart succeed?",
                file=sys.stderr,
            )
            return 1
        per_chart[run_dir] = gains_of(json.loads(path.read_text()))
        print(f"{run_dir}: gains R×{per_chart[run_dir][0]:.4f} B×{per_chart[run_dir][2]:.4f}")
    gains = [sum(g[c] for g in per_chart.values()) / len(per_chart) for c in range(3)]
    cde = Path(output, "calibration.cde")
    cde.write_text(json.dumps({"white_balance_gains": gains, "charts": run_dirs}, indent=2))
    print(f"white balance over {len(per_chart)} charts: R×{gains[0]:.4f} G×1 B×{gains[2]:.4f}")
    print(f"wrote {cde}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
