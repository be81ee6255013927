"""Write the world's train / validation / test splits, deterministically from one seed.

    python Training/make_dataset.py            # all splits (about 45 s on one core)
    python Training/make_dataset.py --splits test
    python Training/make_dataset.py --check    # sanity checks + contact sheet of what is on disk

Layout (paths relative to Training/):
    data/train/      images.npz (uint8 [N, 64, 64, 3] under "images"), scenes.jsonl, questions.jsonl
    data/validation/ the same                                             (data/ is not committed)
    test/            images/NNNNN.png, scenes.jsonl, test.jsonl                  (committed)

Every scene's image and layout come from its own generator, seeded by (seed, split, index); the
questions' answer balance runs through each split in order (see questions.py).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

import language as lang
import questions as qs
import world

HERE = Path(__file__).resolve().parent
SPLITS = {  # name: (code mixed into the seed, default number of scenes)
    "train": (0, 20_000),
    "validation": (1, 1_000),
    "test": (2, 500),
}
DEFAULT_SEED = 20250801


def split_dir(split: str) -> Path:
    return HERE / "test" if split == "test" else HERE / "data" / split


def generate(split: str, count: int, seed: int):
    """Yield (index, image, scene, questions) for each scene of a split."""
    code = SPLITS[split][0]
    balance = qs.AnswerBalance()
    for index in range(count):
        rng = np.random.default_rng([seed, code, index])
        image, scene = world.make_scene(rng)
        yield index, image, scene, qs.ask(scene, rng, balance)


def _dump(lines: list[dict], path: Path) -> None:
    with path.open("w") as f:
        for line in lines:
            f.write(json.dumps(line, separators=(",", ":")) + "\n")


def write_split(split: str, count: int, seed: int) -> list[dict]:
    out = split_dir(split)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    as_png = split == "test"
    if as_png:
        (out / "images").mkdir()

    images, scenes, questions = [], [], []
    for index, image, scene, asked in generate(split, count, seed):
        name = f"images/{index:05d}.png"
        head = {"scene": index, "image": name} if as_png else {"scene": index}
        if as_png:
            Image.fromarray(image).save(out / name, format="PNG", optimize=True)
        else:
            images.append(image)
        scenes.append({**head, "objects": scene.to_json(), "description": lang.describe(scene.objects)})
        for k, q in enumerate(asked):
            questions.append({"id": f"{split}-{index:05d}-{k}", **head, **q.to_json(scene)})

    if not as_png:
        np.savez_compressed(out / "images.npz", images=np.stack(images))
    _dump(scenes, out / "scenes.jsonl")
    _dump(questions, out / ("test.jsonl" if as_png else "questions.jsonl"))
    return questions


def answer_table(questions: list[dict]) -> str:
    by_kind = defaultdict(Counter)
    for q in questions:
        by_kind[q["kind"]][q["answer"]] += 1
    rows = []
    for kind in qs.KINDS:
        counts = by_kind[kind]
        total = sum(counts.values())
        if not total:
            continue
        top = max(counts.values()) / total
        shares = "  ".join(f"{a} {100 * n / total:.1f}%" for a, n in sorted(counts.items(), key=lambda t: -t[1]))
        rows.append(f"  {kind:<9} n={total:<6} majority {100 * top:4.1f}%   {shares}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--splits", nargs="+", choices=list(SPLITS), default=list(SPLITS))
    for split, (_, n) in SPLITS.items():
        parser.add_argument(f"--{split}", type=int, default=n, metavar="N", help=f"scenes in {split} (default {n})")
    parser.add_argument("--check", action="store_true", help="only check the splits on disk and draw a contact sheet")
    args = parser.parse_args(argv)

    if args.check:
        import check_dataset

        return check_dataset.main([])

    for split in args.splits:
        start = time.perf_counter()
        count = getattr(args, split)
        questions = write_split(split, count, args.seed)
        seconds = time.perf_counter() - start
        print(f"{split}: {count} scenes, {len(questions)} questions in {seconds:.1f} s -> {split_dir(split)}")
        print(answer_table(questions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
