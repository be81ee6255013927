"""The Python side of the evaluation: the training code's own reading of a model directory, answer for answer.

    python Training/evaluate.py --cells none@64,accm@4,text-guided@4 --out /tmp/py-answers.jsonl
    python Training/evaluate.py --compare eval-out/answers.jsonl --out /tmp/py-answers.jsonl

Answers every question of the test split with Scripts/accm_reference.py (PyTorch + transformers; the pruners,
caption beam search, selector and greedy decoding as the authors' pipeline, with this project's documented
options: most-similar ranking, cap by score, as `accm eval`'s defaults) for each cell `method@budget`
(methods: none, random, uniform, cls-attention, text-guided, accm-no-caption, accm; the random pruner uses
seed + question index, as `accm eval`). Writes one JSON line per (question, cell) and prints accuracy per cell.
With --compare, matches them against `accm eval`'s answers.jsonl: same answer text, same kept patches, same
caption, per cell and overall (the issue's bar: the same answers on >= 99% of questions).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "Scripts"))
from accm_reference import ACCMReference, Pruner  # noqa: E402

ROOT = Path(__file__).resolve().parent
DEFAULT_MODEL = ROOT.parent / "Models" / "accm-world"


def first_word(text: str) -> str:
    """Sources/Evaluation/AnswerMatching.swift: the first word, lower-cased, letters and digits only."""
    for word in text.split():
        cleaned = "".join(ch for ch in word.lower() if ch.isalnum())
        if cleaned:
            return cleaned
    return ""


def pruner_for(method: str, index: int, seed: int) -> tuple[Pruner, bool]:
    if method == "accm-no-caption":
        return Pruner("accm"), False
    if method == "random":
        return Pruner("random", seed=seed + index), False
    return Pruner(method), method == "accm"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--data", type=Path, default=ROOT / "test")
    ap.add_argument("--cells", default="none@64,accm-no-caption@4,accm@4")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-tokens", type=int, default=4)
    ap.add_argument("--out", type=Path, default=Path("/tmp/accm-python-answers.jsonl"))
    ap.add_argument("--compare", type=Path, help="accm eval's answers.jsonl to match against")
    args = ap.parse_args()
    import torch
    torch.set_num_threads(1)

    items = [json.loads(line) for line in (args.data / "test.jsonl").open(encoding="utf-8")]
    if args.limit:
        items = items[:args.limit]
    cells = [(c.split("@")[0], int(c.split("@")[1])) for c in args.cells.split(",")]
    reference = ACCMReference(args.model)
    rows = []
    start = time.time()
    with args.out.open("w", encoding="utf-8") as out:
        for method, budget in cells:
            correct = 0
            for index, item in enumerate(items):
                pruner, compensate = pruner_for(method, index, args.seed)
                image = Image.open(args.data / item["image"])
                r = reference.answer(image, item["question"], budget, pruner, compensate, args.max_tokens)
                ok = first_word(r["answer_text"]) == first_word(item["answer"])
                correct += ok
                row = {"id": item["id"], "method": method, "budget": budget, "answer": r["answer_text"],
                       "correct": ok, "kept": r["kept_indices"], "caption": r["caption"]}
                rows.append(row)
                out.write(json.dumps(row) + "\n")
            print(f"{method}@{budget}: accuracy {correct / len(items):.1%} over {len(items)} questions "
                  f"({time.time() - start:.0f} s)", flush=True)
    if args.compare:
        compare(rows, args.compare)


def compare(rows: list[dict], swift_path: Path) -> None:
    swift = {}
    for line in swift_path.open(encoding="utf-8"):
        r = json.loads(line)
        swift[(r["id"], r["method"], r["budget"])] = r
    same = total = 0
    per_cell: dict[str, list[int]] = {}
    for r in rows:
        s = swift.get((r["id"], r["method"], r["budget"]))
        if s is None:
            continue
        key = f"{r['method']}@{r['budget']}"
        agree = s["answer"] == r["answer"]
        cell = per_cell.setdefault(key, [0, 0, 0, 0])
        cell[0] += agree
        cell[1] += 1
        cell[2] += s["kept"] == r["kept"]
        cell[3] += s.get("caption") == r["caption"]
        same += agree
        total += 1
        if not agree and cell[1] - cell[0] <= 3:
            print(f"  differs {key} {r['id']}: swift {s['answer']!r} python {r['answer']!r} "
                  f"(captions {s.get('caption')!r} / {r['caption']!r})")
    for key, (a, n, k, c) in per_cell.items():
        print(f"{key}: same answer {a}/{n} ({a / n:.2%}), same kept patches {k}/{n}, same caption {c}/{n}")
    if total == 0:
        sys.exit("no question in common with " + str(swift_path))
    print(f"overall: same answer on {same}/{total} ({same / total:.2%})")


if __name__ == "__main__":
    main()
