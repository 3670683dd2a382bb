"""The entrypoint qaflow calls once per run."""

from __future__ import annotations


def run(context):
    """Read the input, write outputs under context.output_dir, return metrics."""
    data = context.input_path.read_bytes()
    (context.output_dir / "copy.raw").write_bytes(data)
    return {"size": len(data), "gain": context.params.get("gain", 1)}
