"""The entrypoint: qaflow calls run(context) once per input of a batch.

- On a calibration chart (DL*.raw, batch my-calibration-images): measure the chart's mean
  R, G, B into stats.json. calibration.py turns those into white-balance gains.
- On a test image (batch my-evaluation-batch): read the gains from the `.cde`
  configuration that the batch passes along (the calibration step's output), apply them,
  save original.png and corrected.png (the board shows them side by side), and measure how grey the grey patch is, before and
  after.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from pathlib import Path

GREY_PATCH = (0, 0, 16, 12)  # x0, y0, x1, y1: the test images' neutral patch (top-left)


def run(context):
    width, height, pixels = read_raw(context.input_path)
    if context.input_path.name.startswith("DL"):
        mean_r, mean_g, mean_b = mean_rgb(pixels, width, (0, 0, width, height))
        stats = {"mean_r": mean_r, "mean_g": mean_g, "mean_b": mean_b}
        (context.output_dir / "stats.json").write_text(json.dumps(stats, indent=2))
        return stats

    gains = read_gains(context.configs, context.input_path.name)
    corrected = apply_gains(pixels, gains)
    write_png(context.output_dir / "original.png", width, height, pixels)
    write_png(context.output_dir / "corrected.png", width, height, corrected)
    return {
        "color_error_before": angular_error(mean_rgb(pixels, width, GREY_PATCH)),
        "color_error_after": angular_error(mean_rgb(corrected, width, GREY_PATCH)),
        "gain_r": gains[0],
        "gain_g": gains[1],
        "gain_b": gains[2],
    }


def read_gains(configs: list, image: str) -> list[float]:
    """The white-balance gains [r, g, b] of the first configuration that is a .cde file."""
    cde = [c for c in configs if isinstance(c, str) and c.endswith(".cde")]
    if not cde:
        raise ValueError(
            f"{image}: no calibration given. Add a configuration ending in .cde, the output of "
            "calibration.py (my-evaluation-batch in qa/batches.yaml does it with `needs:`)."
        )
    return json.loads(Path(cde[0]).read_text())["white_balance_gains"]


def read_raw(path: Path) -> tuple[int, int, bytes]:
    """An image of the form `RAW width height\\n` + width*height*3 bytes (RGB)."""
    header, pixels = path.read_bytes().split(b"\n", 1)
    magic, width, height = header.split()
    if magic != b"RAW" or len(pixels) != int(width) * int(height) * 3:
        raise ValueError(f"{path} is not a RAW image of {width} x {height} RGB pixels")
    return int(width), int(height), pixels


def write_png(path: Path, width: int, height: int, pixels: bytes) -> None:
    """An 8-bit RGB PNG, with the standard library only (zlib): rows, each behind filter 0."""
    stride = width * 3
    rows = b"".join(b"\x00" + pixels[y * stride : (y + 1) * stride] for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bits, RGB
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def mean_rgb(pixels: bytes, width: int, box: tuple[int, int, int, int]) -> list[float]:
    """The mean R, G and B over a rectangle x0 <= x < x1, y0 <= y < y1."""
    x0, y0, x1, y1 = box
    rows = [pixels[3 * (y * width + x0) : 3 * (y * width + x1)] for y in range(y0, y1)]
    count = (x1 - x0) * (y1 - y0)
    return [sum(sum(row[c::3]) for row in rows) / count for c in range(3)]


def apply_gains(pixels: bytes, gains: list[float]) -> bytes:
    out = bytearray(len(pixels))
    for c, gain in enumerate(gains):
        out[c::3] = bytes(min(255, round(v * gain)) for v in pixels[c::3])
    return bytes(out)


def angular_error(rgb: list[float]) -> float:
    """The angle, in degrees, between a colour and neutral grey (1, 1, 1): 0 when grey."""
    cosine = sum(rgb) / (math.sqrt(3) * math.hypot(*rgb))
    return math.degrees(math.acos(min(1.0, cosine)))
