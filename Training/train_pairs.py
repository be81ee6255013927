"""Decoder stage 2c: find the asked object among two (the curriculum step that taught the decoder to find by shape).

    python Training/train_pairs.py --minutes 8      # continues artifacts/decoder/checkpoint.pt in place
    python Training/train_pairs.py --kinds position --out DIR   # relation questions over their two objects

Every sample is one colour or shape question over exactly the patches of the asked object and of one other
object of the scene ("What color is the cross?" over a cross and, say, a square), no background, no caption;
the loss is the first answer token's cross-entropy; AdamW at a constant learning rate (no warm-up, no decay).
With `--kinds position`, relation questions over the patches of their two objects: tried for 7 min, and with
`--min-gap 24` (only pairs at least 3 patches apart) for 6 min, they stayed at chance (Training/README.md), so
train_family.sh does not use them.

Why: among all 64 tokens the decoder found objects by colour but not by shape (given the asked object and one
other, it named the colour of either: 57%), and neither more of the usual mixture nor pruned samples with
several distractors changed that. Over pairs the signal is clean: within ~400 steps both kinds are right 99% of
the time. This stage forgets the kinds it does not train (counts, existence, relations), so
`train_decoder.py --resume --restart-schedule --pruned 0.4 --pruned-caption 0.6` follows it (train_family.sh);
after both, colour questions with all 64 tokens went from 54% to 99% (validation, teacher-forced).

The checkpoint keeps train_decoder.py's format (its optimizer state, step and schedule are left as they were:
the next train_decoder.py run restarts its schedule anyway).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_decoder  # noqa: E402
from tiny_llava import Prompts, Sample, TinyLlava  # noqa: E402
from train_clip import Split  # noqa: E402
from training_utils import adamw, save_atomically  # noqa: E402

KINDS = ("color", "shape")
PAIR_KINDS = ("color", "shape", "position")


def pair_sample(split: Split, prompts: Prompts, scene: int, question: dict, rng: np.random.Generator) -> Sample:
    """The question over the patches of exactly two objects: a colour or shape question's object and one other
    object of the scene; a relation question's two objects."""
    others = 0 if question["kind"] == "position" else 1
    shown = train_decoder.with_distractors(split.scenes[scene]["objects"], question, rng, count=others)
    return Sample(prompts.prompt(question["question"], None), scene, sorted(shown), prompts.answer(question["answer"]))


def axis_gap(split: Split, scene: int, question: dict) -> float:
    """A relation question's distance in pixels between its two objects' centres along the asked axis."""
    a, b = (split.scenes[scene]["objects"][i] for i in question["objects"])
    key = "cy" if (" above " in question["question"] or " below " in question["question"]) else "cx"
    return abs(a[key] - b[key])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=8.0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=train_decoder.OUT)
    ap.add_argument("--kinds", default=",".join(KINDS), help=f"question kinds to train, from {PAIR_KINDS}")
    ap.add_argument("--min-gap", type=float, default=0.0, help="relation questions only where the two centres are "
                    "at least this many pixels apart along the asked axis (8 is the world's least)")
    args = ap.parse_args()
    kinds = tuple(args.kinds.split(","))
    if not set(kinds) <= set(PAIR_KINDS):
        ap.error(f"--kinds: {args.kinds!r}; choose from {PAIR_KINDS}")
    torch.set_num_threads(args.threads)
    ckpt_path = args.out / "checkpoint.pt"
    checkpoint = torch.load(ckpt_path, weights_only=False)
    model = TinyLlava()
    model.load_state_dict(checkpoint["model"])
    prompts = Prompts()
    train = Split("train")
    features = train_decoder.cached_features(train, "train", args.out)
    pool = [(s, q) for s in range(len(train)) for q in train.questions[s] if q["kind"] in kinds
            and (q["kind"] != "position" or axis_gap(train, s, q) >= args.min_gap)]
    print(f"{len(pool)} train questions of {', '.join(kinds)}", flush=True)
    opt = adamw(model, args.lr, args.weight_decay)
    rng = np.random.default_rng(args.seed)
    start, step, right = time.time(), 0, {k: [] for k in kinds}
    model.train()
    while time.time() - start < args.minutes * 60:
        picked = [pool[j] for j in rng.integers(len(pool), size=args.batch)]
        batch = [pair_sample(train, prompts, s, q, rng) for s, q in picked]
        first = torch.stack([lg[0] for lg in model.answer_logits(batch, features)])
        targets = torch.tensor([b.answer[0] for b in batch])
        loss = F.cross_entropy(first, targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        for (_, q), ok in zip(picked, (first.argmax(1) == targets).tolist()):
            right[q["kind"]].append(ok)
        step += 1
        if step % 50 == 0:
            print(f"pairs step {step:5d} {time.time() - start:5.0f} s loss {loss.item():.3f} right over the last "
                  f"400: " + ", ".join(f"{k} {np.mean(v[-400:]):.1%}" for k, v in right.items()), flush=True)
    checkpoint["model"] = model.state_dict()
    save_atomically(checkpoint, ckpt_path)
    print(f"pairs: {step} steps in {(time.time() - start) / 60:.1f} min; {ckpt_path} updated", flush=True)


if __name__ == "__main__":
    main()
