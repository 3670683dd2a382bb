"""Write the example's synthetic raw images into data/ (next to this file), deterministically.

    python make_images.py

Calibration images DL50.raw … DL75.raw: a flat grey chart lit at four light levels.
Test images test_image_1.raw … test_image_3.raw: a 2×2 grid of flat colour patches whose
top-left patch is neutral grey. Every image goes through the same "camera": per-channel
gains (a colour cast, red too strong and blue too weak, varying by ±1% from image to image
as the light does), Gaussian noise, then rounding and clipping to 8 bits.

The format is a one-line header `RAW width height` then width×height×3 bytes, RGB,
row-major. data/truth.json records each image's true cast (the pipeline never reads it).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

WIDTH, HEIGHT = 32, 24
CAMERA_CAST = (1.35, 1.0, 0.75)  # R, G, B gains the sensor applies to a neutral scene
CAST_JITTER = 0.01  # each image's cast differs by up to ±1% on R and B
NOISE = 2.0  # standard deviation of the noise, in 8-bit levels
CHARTS = {"DL50.raw": 100, "DL55.raw": 110, "DL65.raw": 130, "DL75.raw": 150}  # grey level
TEST_IMAGES = ("test_image_1.raw", "test_image_2.raw", "test_image_3.raw")
SEED = 2024


def render(scene: list[tuple[float, float, float]], cast: list[float], rng: random.Random) -> bytes:
    """Apply the camera (cast, noise, 8 bits) to a scene of linear RGB pixels."""
    out = bytearray()
    for pixel in scene:
        for value, gain in zip(pixel, cast, strict=True):
            out.append(min(255, max(0, round(value * gain + rng.gauss(0, NOISE)))))
    return bytes(out)


def flat(color: tuple[float, float, float]) -> list[tuple[float, float, float]]:
    return [color] * (WIDTH * HEIGHT)


def patches(colors: list[tuple[float, float, float]]) -> list[tuple[float, float, float]]:
    """A 2×2 grid: colors[0] top-left (the grey patch), [1] top-right, [2] and [3] below."""
    half_w, half_h = WIDTH // 2, HEIGHT // 2
    return [colors[2 * (y >= half_h) + (x >= half_w)] for y in range(HEIGHT) for x in range(WIDTH)]


def main() -> None:
    rng = random.Random(SEED)
    data = Path(__file__).resolve().parent / "data"
    data.mkdir(exist_ok=True)
    scenes = {name: flat((level,) * 3) for name, level in CHARTS.items()}
    for name in TEST_IMAGES:
        grey = rng.uniform(90, 140)
        colors = [tuple(rng.uniform(30, 180) for _ in range(3)) for _ in range(3)]
        scenes[name] = patches([(grey, grey, grey), *colors])
    truth = {"camera_cast": list(CAMERA_CAST), "noise": NOISE, "images": {}}
    for name, scene in scenes.items():
        cast = [CAMERA_CAST[0] * rng.uniform(1 - CAST_JITTER, 1 + CAST_JITTER), 1.0]
        cast.append(CAMERA_CAST[2] * rng.uniform(1 - CAST_JITTER, 1 + CAST_JITTER))
        pixels = render(scene, cast, rng)
        (data / name).write_bytes(f"RAW {WIDTH} {HEIGHT}\n".encode() + pixels)
        truth["images"][name] = {"cast": [round(c, 5) for c in cast]}
        print(f"wrote {data / name} (cast R×{cast[0]:.3f} G×{cast[1]:.3f} B×{cast[2]:.3f})")
    (data / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    print(f"wrote {data / 'truth.json'}")


if __name__ == "__main__":
    main()
