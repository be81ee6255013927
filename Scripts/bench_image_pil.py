#!/usr/bin/env python3
"""Times the reference image path on one core: Pillow decode + transformers' CLIPImageProcessorPil (the PIL
path of CLIPImageProcessor) to a [1, 3, 336, 336] array, on the same file `accm bench image` uses.

Run from the repository root: /root/venv-accm/bin/python Scripts/bench_image_pil.py [--image F] [--repeat N]
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import time

for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = "1"

import numpy as np  # noqa: E402
import PIL  # noqa: E402
from PIL import Image, features  # noqa: E402
import transformers  # noqa: E402
from transformers import CLIPImageProcessorPil  # noqa: E402

CLIP336 = {
    "crop_size": 336, "do_center_crop": True, "do_normalize": True, "do_resize": True,
    "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
    "resample": 3, "size": 336,
}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--image", default="Tests/Fixtures/images/bench_1024x768.jpg")
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--core", type=int, default=0, help="CPU to pin the process to")
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.core})

    with open(args.image, "rb") as f:
        data = f.read()
    processor = CLIPImageProcessorPil.from_dict(CLIP336)

    def decode() -> Image.Image:
        im = Image.open(io.BytesIO(data))
        im.load()
        return im

    print(f"cpu: {cpu_model()} ({os.cpu_count()} online cores), pinned to core {args.core}, 1 thread")
    print(f"Python {platform.python_version()}, Pillow {PIL.__version__} "
          f"(libjpeg-turbo {features.version('libjpeg_turbo')}), "
          f"transformers {transformers.__version__}, numpy {np.__version__}")
    out = processor(images=decode(), return_tensors="np")["pixel_values"]
    print(f"input: {args.image} ({len(data)} bytes, {decode().size[0]}x{decode().size[1]}) -> {list(out.shape)}")
    print(f"runs: {args.repeat} timed after 2 warm-ups, median reported\n")

    decode_times, preprocess_times, total_times = [], [], []
    for run in range(-2, args.repeat):
        t0 = time.perf_counter()
        im = decode()
        t1 = time.perf_counter()
        processor(images=im, return_tensors="np")["pixel_values"]
        t2 = time.perf_counter()
        if run >= 0:
            decode_times.append(t1 - t0)
            preprocess_times.append(t2 - t1)
            total_times.append(t2 - t0)
    for name, times in (("decode", decode_times), ("preprocess", preprocess_times),
                        ("decode + preprocess", total_times)):
        print(f"{name:<22} {statistics.median(times) * 1000:8.3f} ms   "
              f"(min {min(times) * 1000:.3f}, max {max(times) * 1000:.3f})")


if __name__ == "__main__":
    main()
