"""The pipeline's last step: summarise the runs of the step before it.

qaflow gives every step of a pipeline two environment variables:
- QA_PREVIOUS_BATCH: the path of a JSON file listing the previous step's runs (the format
  of `qa batch --list`: batch, input_path, output_dir, configurations, params… and, when
  known, status and metrics);
- PIPELINE_OUTPUT_DIR: one folder shared by the whole pipeline.
This script writes summary.json into the latter.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main() -> int:
    previous, shared = os.environ.get("QA_PREVIOUS_BATCH"), os.environ.get("PIPELINE_OUTPUT_DIR")
    if not previous or not shared:
        print("postprocess.py runs as a step of a pipeline: qa batch my-pipeline", file=sys.stderr)
        return 2
    runs = json.loads(Path(previous).read_text())
    batches: dict[str, int] = {}
    for run in runs:
        batches[run["batch"]] = batches.get(run["batch"], 0) + 1
    summary = {
        "previous_step_runs": len(runs),
        "batches": batches,
        "output_dirs": [run["output_dir"] for run in runs],
        "words": sum((run.get("metrics") or {}).get("words", 0) for run in runs),
    }
    Path(shared, "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"the previous step had {len(runs)} runs: {batches}")
    for run in runs:
        print(f"  {run.get('status', '?'):9} {run['output_dir']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
