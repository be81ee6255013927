"""Sanity checks of the splits on disk, and a contact sheet of test scenes for a human look.

    python Training/check_dataset.py [--sheet /tmp/accm_world_contact_sheet.png]
    (the same as: python Training/make_dataset.py --check)

Prints, per split found: the answer balance per kind, how many patches objects and the objects
that questions rest on occupy, how often keeping k random patches of 64 loses a question's objects
entirely, and whether every text keeps to the closed vocabulary and the one-sentence caption rule.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from collections import Counter
from itertools import combinations
from math import comb
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import language as lang
import world
from make_dataset import SPLITS, answer_table, split_dir

KEEP_BUDGETS = (4, 8, 16)
_WORDS = re.compile(r"[a-z]+")


def _load(path: Path) -> list[dict]:
    with path.open() as f:
        return [json.loads(line) for line in f]


def _load_split(split: str) -> tuple[list[dict], list[dict]] | None:
    d = split_dir(split)
    qfile = d / ("test.jsonl" if split == "test" else "questions.jsonl")
    if not (d / "scenes.jsonl").exists() or not qfile.exists():
        return None
    return _load(d / "scenes.jsonl"), _load(qfile)


def _pruned(patches: set[int], k: int) -> float:
    """Probability that none of `patches` is among k of the 64 kept uniformly at random."""
    return comb(64 - len(patches), k) / comb(64, k)


def _any_wholly_pruned(patch_sets: list[set[int]], k: int) -> float:
    """Probability that at least one of the objects keeps none of its patches (inclusion-exclusion)."""
    total = 0.0
    for r in range(1, len(patch_sets) + 1):
        for subset in combinations(patch_sets, r):
            total += (-1) ** (r + 1) * _pruned(set().union(*subset), k)
    return total


def patch_statistics(scenes: list[dict], questions: list[dict]) -> str:
    objects = [o for s in scenes for o in s["objects"]]
    per_object = Counter(len(o["patches"]) for o in objects)
    by_size = {
        size: np.mean([len(o["patches"]) for o in objects if o["size"] == size]) for size in world.SIZES
    }
    relevant = [
        len(scenes[q["scene"]]["objects"][i]["patches"]) for q in questions for i in q["objects"]
    ]
    with_objects = [q for q in questions if q["objects"]]
    union = [len(q["patches"]) for q in with_objects]
    lines = [
        f"  patches per object: mean {np.mean([len(o['patches']) for o in objects]):.2f}  "
        + "  ".join(f"{k}: {100 * n / len(objects):.1f}%" for k, n in sorted(per_object.items()))
        + "  |  "
        + "  ".join(f"{size} {m:.2f}" for size, m in by_size.items()),
        f"  patches per question-relevant object: mean {np.mean(relevant):.2f}, "
        f"<= 4 patches: {100 * np.mean(np.array(relevant) <= 4):.1f}%",
        f"  questions resting on objects: {100 * len(with_objects) / len(questions):.1f}% "
        f"(the rest: 'zero' counts, 'no' existence); union of their patches: mean {np.mean(union):.2f} of 64",
    ]
    lines.append("  keeping k patches of 64 at random (questions resting on objects, exact probabilities):")
    for k in KEEP_BUDGETS:
        some_lost, all_lost = [], []
        for q in with_objects:
            patch_sets = [set(scenes[q["scene"]]["objects"][i]["patches"]) for i in q["objects"]]
            some_lost.append(_any_wholly_pruned(patch_sets, k))
            all_lost.append(_pruned(set().union(*patch_sets), k))
        lines.append(
            f"    k={k:<2}  some relevant object wholly pruned {100 * np.mean(some_lost):.1f}%   "
            f"every relevant object wholly pruned {100 * np.mean(all_lost):.1f}%"
        )
    return "\n".join(lines)


def text_problems(scenes: list[dict], questions: list[dict]) -> list[str]:
    vocabulary = set(lang.vocabulary())
    problems = []

    def words_ok(text: str, where: str) -> None:
        unknown = set(_WORDS.findall(text.lower())) - vocabulary
        if unknown:
            problems.append(f"{where}: words outside the vocabulary {sorted(unknown)}")

    for s in scenes:
        sentences = s["description"].split(". ")
        if len(sentences) != len(s["objects"]) or not s["description"].endswith("."):
            problems.append(f"scene {s['scene']}: description is not one sentence per object")
        words_ok(s["description"], f"scene {s['scene']}")
    for q in questions:
        c = q["caption"]
        if not c.endswith(".") or c.count(".") != 1:
            problems.append(f"{q['id']}: caption is not one sentence ending in '.': {c!r}")
        if len(q["answer"].split()) != 1:
            problems.append(f"{q['id']}: answer is not one word: {q['answer']!r}")
        words_ok(c + " " + q["question"] + " " + q["answer"], q["id"])
    return problems


def contact_sheet(scenes: list[dict], questions: list[dict], path: Path, n: int = 16) -> None:
    scale, cell_w, text_h, cols = 4, 360, 110, 4
    rows = (n + cols - 1) // cols
    cell_h = 64 * scale + text_h
    sheet = Image.new("RGB", (cols * cell_w, rows * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    for k, s in enumerate(scenes[:n]):
        x, y = (k % cols) * cell_w, (k // cols) * cell_h
        img = Image.open(split_dir("test") / s["image"]).convert("RGB")
        sheet.paste(img.resize((64 * scale, 64 * scale), Image.Resampling.NEAREST), (x + 4, y + 2))
        sheet.paste(img, (x + 64 * scale + 12, y + 2))  # actual size, for an honest look
        lines = [f"{q['question']} {q['answer']}" for q in questions if q["scene"] == s["scene"]]
        text = "\n".join(textwrap.shorten(t, 58, placeholder="...") for t in lines)
        draw.multiline_text((x + 4, y + 64 * scale + 6), text, fill="black", spacing=3)
    sheet.save(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sheet", type=Path, default=Path("/tmp/accm_world_contact_sheet.png"))
    args = parser.parse_args(argv)

    failed = False
    for split in SPLITS:
        loaded = _load_split(split)
        if loaded is None:
            print(f"{split}: not on disk (python Training/make_dataset.py --splits {split})")
            continue
        scenes, questions = loaded
        kinds = Counter(q["kind"] for q in questions)
        print(f"{split}: {len(scenes)} scenes, {len(questions)} questions "
              f"({len(questions) / len(scenes):.2f} per scene; " + ", ".join(f"{k} {n}" for k, n in kinds.items()) + ")")
        print(answer_table(questions))
        print(patch_statistics(scenes, questions))
        problems = text_problems(scenes, questions)
        print(f"  text: {'ok' if not problems else f'{len(problems)} problems'}")
        for p in problems[:10]:
            print("    " + p)
        failed |= bool(problems)
        if split == "test":
            contact_sheet(scenes, questions, args.sheet)
            print(f"  contact sheet of 16 test scenes: {args.sheet}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
