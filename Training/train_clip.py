"""Stage 1 of the family: a tiny CLIP (vision 64/8 + text tower) trained contrastively on the world.

    python Training/train_clip.py --minutes 15            # train (cosine schedule sized to the budget), export
    python Training/train_clip.py --minutes 15 --resume   # continue from artifacts/clip/checkpoint.pt exactly
    python Training/train_clip.py --export                # only export + evaluate the checkpoint

Each training sample is one train scene with
  - a contrastive text: one object's sentence ("There is a small red circle at the top left."), a short prompt
    ("a red circle" / "a small red circle"), or one of the scene's question-relevant captions;
  - a grounding text: one of the scene's questions, or the contrastive text itself.
Losses:
  - contrastive (CLIP's symmetric cross-entropy) with MULTI-positive targets: the closed grammar lets every
    text be checked against every scene of the batch ("a red circle" is true of every scene with one), so
    true pairs are never pushed apart as negatives;
  - grounding: ACCM's text-guided pruner compares the question's text embedding with every patch's
    `visual_projection(post_layernorm(h))`; a softmax over the 64 patches is pulled toward the patches of the
    objects the text is about (the split records them). Without it nothing trains the patch projections.
  - patch tagging: linear heads on hidden_states[-2] (the layer LLaVA's projector reads) name, for every patch,
    the shape and color of the object on it (or none) and whether the object's center lies in it. The heads are
    thrown away after training. Measured before it existed: after 40 min of contrastive + grounding training,
    a linear probe on an object's patches told its shape right 63% of the time (color 100%), and the decoder
    trained on those features never learnt to find objects by shape (validation flat at 42-45%); a real CLIP
    knows shapes from 400M pairs, this one gets the shortcut.
  Grounding and tagging are design choices of this project (the original CLIP has neither).
No augmentation: positions and colors are what the texts name, so flips / crops / color jitter would make texts false.

Outputs under Training/artifacts/clip/: checkpoint.pt (every --checkpoint-every steps, exact resume: the data
order and text choices are functions of (seed, step)), hf/ (CLIPModel + tokenizer + preprocessor_config.json).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np

# Threads that sleep at barriers instead of spinning: on a shared 2-core machine a spinning OpenMP team
# stalls badly whenever another process takes a core (measured: 1.2 -> 0.25 steps/s during a Swift build).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import family  # noqa: E402
import world  # noqa: E402
from training_utils import adamw, save_atomically  # noqa: E402

from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizer  # noqa: E402

ROOT = Path(__file__).resolve().parent
DATA = ROOT / "data"
OUT = family.ARTIFACTS / "clip"
SHAPES = world.SHAPES
COLORS = world.COLOR_NAMES
PLURAL = {"squares": "square", "circles": "circle", "triangles": "triangle", "crosses": "cross", "rings": "ring"}
NUMBER = {"no": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
MEAN = torch.tensor(family.OPENAI_CLIP_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(family.OPENAI_CLIP_STD).view(1, 3, 1, 1)

# ------------------------------------------------------------------------------------------------
# Texts as predicates over scenes (the closed grammar of Training/language.py)
# ------------------------------------------------------------------------------------------------

R_OBJECT = re.compile(r"There is a (small|large) (\w+) (\w+) at the ([a-z ]+)\.$")
R_ABSENCE = re.compile(r"There is no (\w+) (\w+)\.$")
R_COUNT = re.compile(r"There (?:is|are) (no|one|two|three|four|five) ([a-z ]+)\.$")
R_RELATION = re.compile(r"The (\w+) (\w+) is (left of|right of|above|below) the (\w+) (\w+)\.$")


def predicate(text: str) -> tuple:
    if m := R_OBJECT.match(text):
        return ("obj", m[1], m[2], m[3], m[4])
    if m := R_ABSENCE.match(text):
        return ("count", 0, m[1], m[2])
    if m := R_COUNT.match(text):
        words = m[2].split()
        noun = words[-1]
        color = words[0] if len(words) == 2 else None
        shape = None if noun in ("object", "objects") else PLURAL.get(noun, noun)
        return ("count", NUMBER[m[1]], color, shape)
    if m := R_RELATION.match(text):
        return ("rel", m[1], m[2], m[3], m[4], m[5])
    raise ValueError(f"text outside the grammar: {text!r}")


def holds(p: tuple, objects: list[dict]) -> bool:
    kind = p[0]
    if kind == "obj":
        _, size, color, shape, region = p
        return any(o["color"] == color and o["shape"] == shape and (size is None or o["size"] == size)
                   and (region is None or o["region"] == region) for o in objects)
    if kind == "count":
        _, n, color, shape = p
        return sum(1 for o in objects if (color is None or o["color"] == color)
                   and (shape is None or o["shape"] == shape)) == n
    _, c1, s1, rel, c2, s2 = p
    a = [o for o in objects if o["color"] == c1 and o["shape"] == s1]
    b = [o for o in objects if o["color"] == c2 and o["shape"] == s2]
    if len(a) != 1 or len(b) != 1:
        return False
    a, b = a[0], b[0]
    return {"left of": a["cx"] < b["cx"], "right of": a["cx"] > b["cx"],
            "above": a["cy"] < b["cy"], "below": a["cy"] > b["cy"]}[rel]


# ------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------


class Split:
    def __init__(self, name: str):
        d = DATA / name
        if not (d / "images.npz").exists():
            sys.exit(f"{d} is missing: run python Training/make_dataset.py")
        self.images = torch.from_numpy(np.load(d / "images.npz")["images"])  # [N, 64, 64, 3] uint8
        self.scenes = [json.loads(line) for line in (d / "scenes.jsonl").open(encoding="utf-8")]
        self.questions: list[list[dict]] = [[] for _ in self.scenes]
        for line in (d / "questions.jsonl").open(encoding="utf-8"):
            q = json.loads(line)
            self.questions[q["scene"]].append(q)

    def __len__(self) -> int:
        return len(self.scenes)


def pixels(images_uint8: torch.Tensor) -> torch.Tensor:
    x = images_uint8.permute(0, 3, 1, 2).float() / 255.0
    return (x - MEAN) / STD


NO_OBJECT = -100  # cross_entropy's ignore_index: a patch without an object has no shape / color target


def patch_tags(objects: list[dict]) -> tuple[list[int], list[int], list[int]]:
    """Per patch: the shape index and color index of the object on it (NO_OBJECT where none; where two
    touch a patch, the one whose center is nearer the patch's), and 1 where an object's center lies in it."""
    shape, color, center = [NO_OBJECT] * family.NUM_PATCHES, [NO_OBJECT] * family.NUM_PATCHES, [0] * family.NUM_PATCHES
    grid, side = world.GRID, world.PATCH_SIZE
    nearest = [math.inf] * family.NUM_PATCHES
    for o in objects:
        for p in o["patches"]:
            py, px = divmod(p, grid)
            d = (o["cx"] - (px + 0.5) * side) ** 2 + (o["cy"] - (py + 0.5) * side) ** 2
            if d < nearest[p]:
                nearest[p], shape[p], color[p] = d, SHAPES.index(o["shape"]), COLORS.index(o["color"])
        cx, cy = min(grid - 1, int(o["cx"] // side)), min(grid - 1, int(o["cy"] // side))
        center[cy * grid + cx] = 1
    return shape, color, center


class PatchTagger(nn.Module):
    """Training-only linear heads: shape / color / object-center of every patch from the vision tower's
    hidden_states[-2]."""

    def __init__(self, width: int = family.CLIP_HIDDEN):
        super().__init__()
        self.shape = nn.Linear(width, len(SHAPES))
        self.color = nn.Linear(width, len(COLORS))
        self.center = nn.Linear(width, 2)

    def loss(self, hidden: torch.Tensor, tags: torch.Tensor) -> torch.Tensor:
        """hidden [B, 64, width] (no class token), tags [B, 3, 64] (shape, color, center)."""
        return (F.cross_entropy(self.shape(hidden).flatten(0, 1), tags[:, 0].flatten(), ignore_index=NO_OBJECT)
                + F.cross_entropy(self.color(hidden).flatten(0, 1), tags[:, 1].flatten(), ignore_index=NO_OBJECT)
                + F.cross_entropy(self.center(hidden).flatten(0, 1), tags[:, 2].flatten()))


def scene_tags(split: Split, indices) -> torch.Tensor:
    """[len(indices), 3, 64] long: `patch_tags` of each scene."""
    return torch.tensor([patch_tags(split.scenes[i]["objects"]) for i in indices], dtype=torch.long)


def sample_batch(split: Split, indices: np.ndarray, rng: np.random.Generator):
    """Texts, predicates and patch targets for the scenes `indices`."""
    texts, preds, ground_texts, ground_patches = [], [], [], []
    for i in indices:
        scene, questions = split.scenes[i], split.questions[i]
        objects = scene["objects"]
        r = rng.random()
        if r < 0.35:
            k = rng.integers(len(objects))
            o = objects[k]
            text = f"There is a {o['size']} {o['color']} {o['shape']} at the {o['region']}."
            pred, patches = ("obj", o["size"], o["color"], o["shape"], o["region"]), o["patches"]
        elif r < 0.6:
            k = rng.integers(len(objects))
            o = objects[k]
            if rng.random() < 0.5:
                text, pred = f"a {o['color']} {o['shape']}", ("obj", None, o["color"], o["shape"], None)
            else:
                text, pred = f"a {o['size']} {o['color']} {o['shape']}", ("obj", o["size"], o["color"], o["shape"], None)
            patches = sorted({p for o2 in objects if holds(pred, [o2]) for p in o2["patches"]})
        else:
            q = questions[rng.integers(len(questions))]
            text, pred, patches = q["caption"], predicate(q["caption"]), q["patches"]
        texts.append(text)
        preds.append(pred)
        # The grounding text: a question of the scene about some objects (the pruner's input) or the text above.
        asked = [q for q in questions if q["patches"]]
        if asked and rng.random() < 0.5:
            q = asked[rng.integers(len(asked))]
            ground_texts.append(q["question"])
            ground_patches.append(q["patches"])
        else:
            ground_texts.append(text)
            ground_patches.append(patches)
    positives = torch.tensor([[holds(p, split.scenes[j]["objects"]) for j in indices] for p in preds], dtype=torch.float32)
    positives.fill_diagonal_(1.0)
    target = torch.zeros(len(indices), family.NUM_PATCHES)
    for row, ps in enumerate(ground_patches):
        if ps:
            target[row, ps] = 1.0 / len(ps)
    return texts, positives, ground_texts, target


# ------------------------------------------------------------------------------------------------
# Model pieces
# ------------------------------------------------------------------------------------------------


def tokenize(tokenizer, texts: list[str]) -> dict:
    return tokenizer(texts, padding="max_length", max_length=family.CLIP_TEXT_CONTEXT, truncation=True,
                     return_tensors="pt")


def text_embeddings(model: CLIPModel, tokenizer, texts: list[str]) -> torch.Tensor:
    t = tokenize(tokenizer, texts)
    out = model.text_model(input_ids=t["input_ids"], attention_mask=t["attention_mask"])
    return F.normalize(model.text_projection(out.pooler_output), dim=-1)


def image_embeddings(model: CLIPModel, pixel_values: torch.Tensor, with_features: bool = False):
    """(pooled image embedding [B, P], every patch's projected embedding [B, 64, P]), both normalised; with
    `with_features` also hidden_states[-2] of the patches [B, 64, width] (what LLaVA's projector reads)."""
    out = model.vision_model(pixel_values=pixel_values, output_hidden_states=with_features)
    pooled = F.normalize(model.visual_projection(out.pooler_output), dim=-1)
    tokens = model.visual_projection(model.vision_model.post_layernorm(out.last_hidden_state[:, 1:]))
    if with_features:
        return pooled, F.normalize(tokens, dim=-1), out.hidden_states[-2][:, 1:]
    return pooled, F.normalize(tokens, dim=-1)


def losses(model, tagger, tokenizer, batch_pixels, texts, positives, ground_texts, patch_target, tags):
    """(contrastive, grounding, tagging) losses of one batch."""
    pooled, patches, features = image_embeddings(model, batch_pixels, with_features=True)
    n = len(texts)
    all_text = text_embeddings(model, tokenizer, texts + ground_texts)
    text, ground = all_text[:n], all_text[n:]
    scale = model.logit_scale.exp().clamp(max=100)
    logits_t2i = scale * text @ pooled.t()  # [texts, images]
    t2i = -(positives / positives.sum(1, keepdim=True) * F.log_softmax(logits_t2i, 1)).sum(1).mean()
    pos_i = positives.t()
    i2t = -(pos_i / pos_i.sum(1, keepdim=True) * F.log_softmax(logits_t2i.t(), 1)).sum(1).mean()
    contrastive = (t2i + i2t) / 2
    has = patch_target.sum(1) > 0
    patch_logits = scale * torch.einsum("bp,btp->bt", ground, patches)
    grounding = -(patch_target[has] * F.log_softmax(patch_logits[has], 1)).sum(1).mean()
    return contrastive, grounding, tagger.loss(features, tags)


# ------------------------------------------------------------------------------------------------
# Evaluation on the validation split
# ------------------------------------------------------------------------------------------------


@torch.no_grad()
def evaluate(model: CLIPModel, tokenizer, split: Split, limit: int = 1000, tagger: PatchTagger | None = None) -> dict:
    model.eval()
    n = min(limit, len(split))
    pooled, patches, features = [], [], []
    for s in range(0, n, 250):
        a, b, f = image_embeddings(model, pixels(split.images[s:min(n, s + 250)]), with_features=True)
        pooled.append(a)
        patches.append(b)
        features.append(f)
    pooled, patches, features = torch.cat(pooled), torch.cat(patches), torch.cat(features)
    prompts = [f"a {c} {s}" for c in COLORS for s in SHAPES]
    emb = dict(zip(prompts, text_embeddings(model, tokenizer, prompts)))
    shape_ok = shape_n = color_ok = color_n = 0
    shape_chance = color_chance = 0.0
    for i in range(n):
        objects = split.scenes[i]["objects"]
        present = {(o["color"], o["shape"]) for o in objects}
        for o in objects:
            # candidates: the true one and the alternatives that are not in the scene at all
            shapes = [s for s in SHAPES if s == o["shape"] or (o["color"], s) not in present]
            colors = [c for c in COLORS if c == o["color"] or (c, o["shape"]) not in present]
            ss = torch.stack([emb[f"a {o['color']} {s}"] for s in shapes]) @ pooled[i]
            cs = torch.stack([emb[f"a {c} {o['shape']}"] for c in colors]) @ pooled[i]
            shape_ok += shapes[int(ss.argmax())] == o["shape"]
            color_ok += colors[int(cs.argmax())] == o["color"]
            shape_n += 1
            color_n += 1
            shape_chance += 1 / len(shapes)
            color_chance += 1 / len(colors)
    # Patch grounding of questions: do the k patches most similar (or least similar) to the question's
    # embedding include one of its objects' patches?
    qs = [q for i in range(n) for q in split.questions[i] if q["patches"]]
    qemb = torch.cat([text_embeddings(model, tokenizer, [q["question"] for q in qs[s:s + 500]])
                      for s in range(0, len(qs), 500)])
    sims = torch.einsum("qp,qtp->qt", qemb, patches[[q["scene"] for q in qs]])
    result = {"shape_acc": shape_ok / shape_n, "shape_chance": shape_chance / shape_n,
              "color_acc": color_ok / color_n, "color_chance": color_chance / color_n, "questions": len(qs)}
    for k in (4, 8):
        top = sims.topk(k, dim=1).indices
        low = (-sims).topk(k, dim=1).indices
        hit_top = hit_low = chance = objectness = 0.0
        for row, q in enumerate(qs):
            ps = set(q["patches"])
            hit_top += bool(ps & set(top[row].tolist()))
            hit_low += bool(ps & set(low[row].tolist()))
            chance += 1 - math.comb(64 - len(ps), k) / math.comb(64, k)
            # a pruner that knows where objects are but not which one the question means: k random patches
            # among the patches of all the scene's objects (all of them when there are at most k)
            every = len({p for o in split.scenes[q["scene"]]["objects"] for p in o["patches"]})
            objectness += 1.0 if every <= k else 1 - math.comb(every - len(ps), k) / math.comb(every, k)
        result[f"hit@{k}_most_similar"] = hit_top / len(qs)
        result[f"hit@{k}_least_similar"] = hit_low / len(qs)
        result[f"hit@{k}_random"] = chance / len(qs)
        result[f"hit@{k}_random_object_patches"] = objectness / len(qs)
    if tagger is not None:  # the tagging heads on the patches that have an object
        tags = scene_tags(split, range(n))
        on_object = tags[:, 0] != NO_OBJECT
        for name, head, row in (("shape", tagger.shape, 0), ("color", tagger.color, 1)):
            guess = head(features).argmax(-1)
            result[f"tag_{name}_acc"] = (guess[on_object] == tags[:, row][on_object]).float().mean().item()
        result["tag_center_acc"] = (tagger.center(features).argmax(-1) == tags[:, 2]).float().mean().item()
    model.train()
    return result


def print_eval(r: dict) -> None:
    print(f"  validation: shape {r['shape_acc']:.1%} (chance {r['shape_chance']:.1%}), color {r['color_acc']:.1%} "
          f"(chance {r['color_chance']:.1%}); question->patch hit@4 most-similar {r['hit@4_most_similar']:.1%}, "
          f"least-similar {r['hit@4_least_similar']:.1%}, random {r['hit@4_random']:.1%}, random object patches "
          f"{r['hit@4_random_object_patches']:.1%}; hit@8 most-similar {r['hit@8_most_similar']:.1%} (random "
          f"{r['hit@8_random']:.1%}, random object patches {r['hit@8_random_object_patches']:.1%}) over {r['questions']} questions", flush=True)
    if "tag_shape_acc" in r:
        print(f"  patch tags: shape {r['tag_shape_acc']:.1%}, color {r['tag_color_acc']:.1%} (patches with an object), "
              f"object center {r['tag_center_acc']:.1%} (all patches)", flush=True)


# ------------------------------------------------------------------------------------------------
# Export
# ------------------------------------------------------------------------------------------------


def export(model: CLIPModel, directory: Path) -> None:
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    model.save_pretrained(directory, safe_serialization=True)
    tok_dir = family.TOKENIZERS / "clip"
    for f in tok_dir.iterdir():
        shutil.copy(f, directory / f.name)
    processor = CLIPImageProcessor(
        do_resize=True, size={"shortest_edge": family.IMAGE_SIZE}, resample=3, do_center_crop=True,
        crop_size={"height": family.IMAGE_SIZE, "width": family.IMAGE_SIZE}, do_rescale=True, rescale_factor=1 / 255,
        do_normalize=True, image_mean=family.OPENAI_CLIP_MEAN, image_std=family.OPENAI_CLIP_STD,
        do_convert_rgb=True)
    processor.save_pretrained(directory)
    print(f"exported {directory}: {sorted(p.name for p in directory.iterdir())}", flush=True)


# ------------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------------


def lr_at(step: int, progress: float, peak: float, warmup: int) -> float:
    """Linear warm-up over `warmup` steps, then cosine to 5% of the peak as `progress` goes 0 -> 1."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=15.0, help="wall-clock budget for this run (training stops, "
                    "checkpoints and exports when it is spent)")
    ap.add_argument("--steps", type=int, default=0, help="total steps of the cosine schedule (0: the schedule runs "
                    "on training time instead: progress = seconds trained / the budget of the first run, both kept in "
                    "the checkpoint; robust when other jobs share the CPU)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--grounding-weight", type=float, default=0.5)
    ap.add_argument("--tag-weight", type=float, default=1.0, help="weight of the patch-tagging loss")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log-every", type=int, default=20)
    ap.add_argument("--checkpoint-every", type=int, default=200)
    ap.add_argument("--eval-every", type=int, default=600)
    ap.add_argument("--out", type=Path, default=OUT, help="output directory (checkpoint.pt, eval.json, hf/)")
    ap.add_argument("--resume", action="store_true", help="continue from artifacts/clip/checkpoint.pt")
    ap.add_argument("--extend-minutes", type=float, default=0.0, help="with --resume and the time schedule: add this "
                    "many minutes to the schedule's budget (a warm restart: the cosine continues over the longer budget)")
    ap.add_argument("--restart-schedule", action="store_true", help="with --resume: keep the weights and the data "
                    "position, start a new warm-up + cosine over --minutes with a fresh optimizer (and fresh tagging "
                    "heads if the checkpoint has none)")
    ap.add_argument("--export", action="store_true", help="only evaluate and export the checkpoint")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out_dir = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = out_dir / "checkpoint.pt"
    tokenizer = CLIPTokenizer.from_pretrained(family.TOKENIZERS / "clip")
    config = family.clip_config()
    assert tokenizer.eos_token_id == config.text_config.eos_token_id, (tokenizer.eos_token_id, config.text_config)
    model = CLIPModel(config)
    tagger = PatchTagger()
    trainable = nn.ModuleDict({"clip": model, "tagger": tagger})
    opt = adamw(trainable, args.lr, args.weight_decay)
    step, total, history, schedule_start = 0, args.steps, [], 0
    trained_s, budget_s = 0.0, max(60.0, args.minutes * 60 - 60)  # 60 s kept for the final eval + export
    if args.resume or args.export:
        if not ckpt_path.exists():
            sys.exit(f"no checkpoint at {ckpt_path}")
        ck = torch.load(ckpt_path, weights_only=False)
        model.load_state_dict(ck["model"])
        if "tagger" in ck:
            tagger.load_state_dict(ck["tagger"])
            opt.load_state_dict(ck["optimizer"])
        elif not (args.restart_schedule or args.export):
            sys.exit(f"{ckpt_path} has no patch-tagging heads (an older recipe): continue it with --restart-schedule")
        step, total, history = ck["step"], ck["total_steps"], ck["history"]
        trained_s, budget_s = ck["trained_s"], ck["budget_s"]
        schedule_start = ck.get("schedule_start", 0)
        torch.set_rng_state(ck["torch_rng"])
        budget_s += args.extend_minutes * 60
        if args.restart_schedule:
            opt = adamw(trainable, args.lr, args.weight_decay)
            total, trained_s, budget_s, schedule_start = 0, 0.0, max(60.0, args.minutes * 60 - 60), step
        print(f"resumed at step {step}, {trained_s / 60:.1f} of {budget_s / 60:.1f} min trained" if not total
              else f"resumed at step {step} of {total}", flush=True)
    val = Split("validation")
    if args.export:
        print_eval(evaluate(model, tokenizer, val, tagger=tagger if "tagger" in ck else None))
        export(model, out_dir / "hf")
        return
    train = Split("train")
    n_params = sum(p.numel() for p in model.parameters())
    print(f"CLIP {n_params:,} parameters; train {len(train)} scenes; batch {args.batch}; {args.threads} threads", flush=True)

    def save():
        save_atomically({"model": model.state_dict(), "tagger": tagger.state_dict(), "optimizer": opt.state_dict(),
                    "step": step, "total_steps": total, "history": history, "trained_s": trained_s, "budget_s": budget_s,
                    "schedule_start": schedule_start, "torch_rng": torch.get_rng_state(), "args": vars(args)}, ckpt_path)

    steps_per_epoch = len(train) // args.batch
    start = time.time()
    deadline = start + args.minutes * 60
    window_t, window_n, window_loss = time.time(), 0, []
    run_steps = 0
    model.train()
    def progress() -> float:
        return (step - schedule_start) / total if total else trained_s / budget_s

    while progress() < 1.0:
        t_step = time.time()
        epoch, pos = divmod(step, steps_per_epoch)
        order = np.random.default_rng([args.seed, epoch]).permutation(len(train))
        idx = np.sort(order[pos * args.batch:(pos + 1) * args.batch])
        rng = np.random.default_rng([args.seed, 1_000_003, step])
        texts, positives, ground_texts, patch_target = sample_batch(train, idx, rng)
        for g in opt.param_groups:
            g["lr"] = lr_at(step - schedule_start, progress(), args.lr, args.warmup)
        contrastive, grounding, tagging = losses(model, tagger, tokenizer, pixels(train.images[idx]), texts, positives,
                                                 ground_texts, patch_target, scene_tags(train, idx))
        loss = contrastive + args.grounding_weight * grounding + args.tag_weight * tagging
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        step += 1
        run_steps += 1
        window_n += 1
        window_loss.append((contrastive.item(), grounding.item(), tagging.item()))
        trained_s += time.time() - t_step
        if step % args.log_every == 0 or progress() >= 1.0:
            now = time.time()
            c, g, tg = np.mean(window_loss, axis=0)
            rate = window_n / (now - window_t)
            eta = (total - step) / rate if total else budget_s - trained_s
            history.append({"step": step, "contrastive": float(c), "grounding": float(g), "tagging": float(tg),
                            "steps_per_s": rate, "elapsed_s": now - start})
            print(f"step {step:5d} {progress():6.1%} epoch {step / steps_per_epoch:5.2f} loss "
                  f"{c + args.grounding_weight * g + args.tag_weight * tg:.3f} "
                  f"(contrastive {c:.3f}, grounding {g:.3f}, tagging {tg:.3f}) scale {model.logit_scale.exp().item():5.1f} "
                  f"lr {opt.param_groups[0]['lr']:.2e} {rate:.2f} steps/s {rate * args.batch:6.0f} img/s "
                  f"ETA {eta / 60:5.1f} min", flush=True)
            window_t, window_n, window_loss = now, 0, []
        if step % args.checkpoint_every == 0:
            save()
        if step % args.eval_every == 0:
            r = evaluate(model, tokenizer, val, limit=300, tagger=tagger)
            print_eval(r)
            window_t = time.time()
        if time.time() > deadline:
            print(f"wall-clock budget of {args.minutes} min spent at step {step} ({progress():.1%} of the schedule); "
                  f"--resume continues", flush=True)
            break
    save()
    print(f"checkpoint {ckpt_path} at step {step}; {run_steps} steps in {(time.time() - start) / 60:.1f} min", flush=True)
    r = evaluate(model, tokenizer, val, tagger=tagger)
    print_eval(r)
    (out_dir / "eval.json").write_text(json.dumps({"step": step, **r}, indent=1) + "\n")
    export(model, out_dir / "hf")


if __name__ == "__main__":
    main()
