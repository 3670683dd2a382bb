"""The entrypoint: transform a text file, and note each run in the pipeline's shared log."""

from __future__ import annotations

import os
from pathlib import Path

TRANSFORMS = {"upper": str.upper, "lower": str.lower, "reverse": lambda text: text[::-1]}


def run(context):
    text = context.input_path.read_text()
    transform = context.params.get("transform", "upper")
    (context.output_dir / "output.txt").write_text(TRANSFORMS[transform](text))

    # Inside a pipeline, every step shares one folder: append a line to a log kept there.
    shared = os.environ.get("PIPELINE_OUTPUT_DIR")
    if shared:
        line = f"{context.batch} {context.input_path.name} {transform} {context.output_dir}\n"
        with open(Path(shared, "steps.log"), "a") as log:  # one short append: safe in parallel
            log.write(line)
    return {"words": len(text.split()), "lines": len(text.splitlines())}
