"""Benchmark render_video: a default 3 s 1280x720 clip, pinned to one CPU core with one x264 thread.

Usage: python -m bench.encode [--runs 5] [--cpu 0] [--json]
The budget is < 3 s per clip on one core (a 1769 MB Lambda has one vCPU).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time

import av
import PIL
from PIL import Image, ImageChops

from bench.machine import cpu_model
from leyline.media.video import X264_OPTIONS, render_video

SOURCE_SIZE = (1920, 1080)


def photo_like_image() -> Image.Image:
    """Deterministic detail at every scale (fractal, gradients, fine grain): harder to encode than flat art."""
    fractal = Image.effect_mandelbrot(SOURCE_SIZE, (-2.2, -1.2, 1.0, 1.2), 256)
    gradient = Image.linear_gradient("L").resize(SOURCE_SIZE)
    grain = Image.effect_noise(SOURCE_SIZE, 24)
    return Image.merge("RGB", (fractal, ImageChops.add(gradient, grain, scale=1.4), fractal.rotate(180)))


def measure(runs: int) -> tuple[list[float], int]:
    image = photo_like_image()
    size = len(render_video(image, threads=1))  # warm-up: first use of the codec libraries
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        render_video(image, threads=1)
        seconds.append(time.perf_counter() - start)
    return seconds, size


def report(seconds: list[float], size: int, cpu: int) -> dict[str, object]:
    ordered = sorted(seconds)
    return {
        "clip": "3 s, 24 fps, 1280x720, H.264 " + " ".join(f"{key}={value}" for key, value in X264_OPTIONS.items()),
        "runs": len(ordered),
        "median_s": round(statistics.median(ordered), 3),
        "p90_s": round(ordered[math.ceil(0.9 * len(ordered)) - 1], 3),  # nearest rank
        "min_s": round(ordered[0], 3),
        "max_s": round(ordered[-1], 3),
        "output_bytes": size,
        "pinned_cpu": cpu,
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
        "python": platform.python_version(),
        "pyav": av.__version__,
        "pillow": PIL.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed encodes after one warm-up (default 5)")
    parser.add_argument("--cpu", type=int, default=0, help="the core to pin to (default 0)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    os.sched_setaffinity(0, {args.cpu})
    seconds, size = measure(args.runs)
    result = report(seconds, size, args.cpu)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>14}: {value}")


if __name__ == "__main__":
    main()
