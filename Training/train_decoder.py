"""Stage 2 of the family: the LLaVA-style decoder (projector + LLaMA) on the frozen CLIP's features.

    python Training/train_decoder.py --minutes 45            # train, checkpoint, evaluate, export
    python Training/train_decoder.py --minutes 10 --resume   # continue artifacts/decoder/checkpoint.pt
    python Training/train_decoder.py --export                # evaluate + export the checkpoint only

The first schedules train, as LLaVA, with ALL visual tokens; later ones (train_family.sh) add single questions
over pruned patch sets (--pruned, `pruned_sample`) and questions as the ACCM pipeline puts them, with the
caption model's own captions (--pipeline, `pipeline_sample`; Training/README.md, stage 5). Each batch mixes
  - visual QA      (--visual, default 60%): the 64 patch features, the question, no caption;
  - text QA        (--text, 25%): no visual tokens; "additional information:" carries the question's caption
                   (60%) or the scene's whole description (40%) -- the decoder's "language pre-training": it
                   must be able to read the facts a caption states (the tiny LLaMA starts from nothing);
  - visual + text  (the rest): the 64 patch features and a caption that is the question's own (50%) or another
                   question's of the same scene (50%, so the image still has to be read).
The prompts are exactly those of `accm ask` (vicuna_v1 with the system line, the caption line after the image
line); the loss is the answer word's tokens and </s>.

CLIP features (hidden_states[-2] without the class token, as LLaVA's mm_vision_select_layer -2) are computed once
per split from artifacts/clip/hf and cached under artifacts/decoder/.
Outputs (artifacts/decoder/): checkpoint.pt, eval.json, hf/ (LlavaForConditionalGeneration + LLaMA tokenizer).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import family  # noqa: E402
import language  # noqa: E402
from tiny_llava import IMAGE_TOKEN_INDEX, Prompts, Sample, TinyLlava, clip_features, export_llava  # noqa: E402
from train_clip import Split, lr_at  # noqa: E402
from world import COLOR_NAMES, SHAPES  # noqa: E402
from training_utils import adamw, cached_for_clip, save_atomically  # noqa: E402

OUT = family.ARTIFACTS / "decoder"
CLIP_DIR = family.ARTIFACTS / "clip" / "hf"


def cached_features(split: Split, name: str, out_dir: Path) -> torch.Tensor:
    return cached_for_clip(out_dir / f"features_{name}.pt", CLIP_DIR, lambda: clip_features(CLIP_DIR, split.images),
                           f"CLIP features of {name}")


ALL = list(range(family.NUM_PATCHES))


KIND_WEIGHTS = {"color": 2.0, "position": 2.0, "count": 1.5, "exists": 1.0, "shape": 0.5}


def with_distractors(objects: list[dict], question: dict, rng: np.random.Generator, count: int | None = None) -> set[int]:
    """The patches of the objects the question's answer rests on and of `count` other objects of the scene
    (None: 1 with probability 1/2, 2 with 1/4, ...), chosen at random."""
    order = rng.permutation([i for i in range(len(objects)) if i not in question["objects"]])
    shown = set(question["patches"])
    for i in order[:rng.geometric(0.5) if count is None else count]:
        shown.update(objects[i]["patches"])
    return shown


def pruned_sample(split: Split, prompts: Prompts, scene: int, rng: np.random.Generator,
                  caption_share: float = 0.0) -> Sample:
    """One question over a subset of the patches, as the decoder meets it behind a pruner (LLaVA is trained on
    all tokens only; this decoder had never seen a pruned input). Without a caption (1 - caption_share of them)
    the subset keeps all of the answer's evidence, a few other objects (`with_distractors`) and up to 8
    background patches, so the answer stays true of what is shown. With a caption, as in ACCM: half of them
    show 4-16 random patches and the question's own caption (what the image lost, the caption says); the other
    half keep the evidence and get a caption with one word changed (`language.altered`: where the image shows
    the answer, it should outweigh a wrong caption). These samples alone did not teach the decoder to find an
    object by its shape (Training/README.md); `train_pairs.py` did."""
    questions = split.questions[scene]
    weights = np.array([KIND_WEIGHTS.get(q["kind"], 1.0) for q in questions])
    q = questions[rng.choice(len(questions), p=weights / weights.sum())]
    caption = None
    r = rng.random()
    if r < caption_share / 2:
        shown = set(rng.permutation(family.NUM_PATCHES)[:rng.integers(4, 17)].tolist())
        caption = q["caption"]
    else:
        if r < caption_share:
            caption = language.altered(q["caption"], rng) or q["caption"]
        objects = split.scenes[scene]["objects"]
        shown = with_distractors(objects, q, rng)
        on_objects = {p for o in objects for p in o["patches"]}
        background = [p for p in ALL if p not in on_objects]
        shown.update(rng.permutation(background)[:rng.integers(9)].tolist())
    return Sample(prompts.prompt(q["question"], caption), scene, sorted(shown), prompts.answer(q["answer"]))


def pipeline_sample(split: Split, prompts: Prompts, row: dict, rng: np.random.Generator,
                    caption_share: float = 0.75) -> Sample:
    """One question as `accm ask` puts it to the decoder (a row of train_captioner.py's `captions` stage): the
    ACCM pruner's kept patches and, for `caption_share` of them, the caption the caption model and selector
    chose (else none: the ACCM pruner without its caption). The answer is the true one, so the decoder learns how
    far this caption model's captions hold, kind by kind: a caption model that reads only the pruned patches
    cannot see an object the pruner kept, and its captions about such objects are guesses."""
    q = split.questions[row["scene"]][row["question"]]
    caption = row["caption"] if rng.random() < caption_share else None
    return Sample(prompts.prompt(q["question"], caption), row["scene"], sorted(row["kept"]), prompts.answer(q["answer"]))


def make_samples(split: Split, prompts: Prompts, scenes: list[int], rng: np.random.Generator,
                 visual: float, text: float, question_caption: float = 0.5, pruned: float = 0.0,
                 pruned_caption: float = 0.0, pipeline: float = 0.0,
                 pipeline_rows: list[dict] | None = None) -> list[Sample]:
    """One multi-turn conversation per scene (LLaVA's training conversations are multi-turn too): the first
    turn has exactly `accm ask`'s prompt; every turn's answer is a target. A share `pruned` of the scenes give
    a single question over a pruned patch set instead (`pruned_sample`), a share `pipeline` one of
    `pipeline_rows` as the ACCM pipeline puts it (`pipeline_sample`; the row is drawn at random, not the scene)."""
    out = []
    for scene in scenes:
        if pipeline and rng.random() < pipeline:
            out.append(pipeline_sample(split, prompts, pipeline_rows[rng.integers(len(pipeline_rows))], rng))
            continue
        if pruned and rng.random() < pruned:
            out.append(pruned_sample(split, prompts, scene, rng, pruned_caption))
            continue
        questions = [split.questions[scene][j] for j in rng.permutation(len(split.questions[scene]))]
        first = questions[0]
        r = rng.random()
        dense_caption = False
        if r < visual:
            caption, patches = None, ALL
        elif r < visual + text:
            patches = []
            if rng.random() >= question_caption:
                caption = split.scenes[scene]["description"]
            else:  # a question-guided caption answers its own question only: one turn
                caption, questions = first["caption"], [first]
        else:
            # the image and a text about it: the scene's description (50%), the first question's own caption
            # (25%) or another question's (25%); the text's tokens are targets too (predicted from the image)
            u = rng.random()
            if u < 0.5:
                caption = split.scenes[scene]["description"]
            elif u < 0.75 or len(questions) == 1:
                caption = first["caption"]
            else:
                caption = questions[1 + rng.integers(len(questions) - 1)]["caption"]
            patches, dense_caption = ALL, True
        prompt = prompts.prompt(first["question"], caption)
        dense = ()
        if dense_caption:
            start = prompt.index(IMAGE_TOKEN_INDEX) + 3 + prompts.caption_offset
            dense = ((start, start + len(prompts.caption_ids(caption)) - prompts.caption_offset),)
        turns = []
        answer = prompts.answer(first["answer"])
        for q in questions[1:]:
            turns.append((len(prompt), len(prompt) + len(answer)))
            prompt = prompt + answer + prompts.turn(q["question"])
            answer = prompts.answer(q["answer"])
        out.append(Sample(prompt, scene, patches, answer, tuple(turns), dense))
    return out


@torch.no_grad()
def first_token_right(model: TinyLlava, samples: list[Sample], features: torch.Tensor, chunk: int = 100) -> list[bool]:
    """Per sample, whether the teacher-forced first answer token is the argmax (run in batches of `chunk`)."""
    right = []
    for start in range(0, len(samples), chunk):
        part = samples[start:start + chunk]
        right += [int(lg[0].argmax()) == x.answer[0] for lg, x in zip(model.answer_logits(part, features), part)]
    return right


@torch.no_grad()
def evaluate(model: TinyLlava, split: Split, features: torch.Tensor, prompts: Prompts, limit: int = 1000) -> dict:
    """Teacher-forced first-answer-token accuracy on the first `limit` questions: all tokens; none + the
    question's caption; 4 random patches without caption; per kind for all tokens; and, for the color and shape
    questions among them, all tokens + the caption with the answer word replaced by another color / shape."""
    model.eval()
    qs = [(s, i) for s in range(len(split)) for i in range(len(split.questions[s]))][:limit]
    rng = np.random.default_rng(7)
    settings = {
        "all_tokens": lambda q, s: (None, ALL),
        "caption_only": lambda q, s: (q["caption"], []),
        "random4": lambda q, s: (None, sorted(rng.choice(64, 4, replace=False).tolist())),
    }
    result: dict = {}
    for name, make in settings.items():
        samples = []
        for s, i in qs:
            q = split.questions[s][i]
            caption, patches = make(q, s)
            samples.append(Sample(prompts.prompt(q["question"], caption), s, patches, prompts.answer(q["answer"])))
        right = first_token_right(model, samples, features)
        result[name] = sum(right) / len(qs)
        if name == "all_tokens":
            kinds: dict[str, list[bool]] = {}
            for (s, i), ok in zip(qs, right):
                kinds.setdefault(split.questions[s][i]["kind"], []).append(ok)
            result["all_tokens_by_kind"] = {k: sum(v) / len(v) for k, v in sorted(kinds.items())}
    # color and shape questions with all tokens and their caption naming another color / shape than the answer:
    # how often the image outweighs a caption that contradicts it
    samples = []
    for s, i in qs:
        q = split.questions[s][i]
        if q["kind"] not in ("color", "shape"):
            continue
        others = [w for w in (COLOR_NAMES if q["kind"] == "color" else SHAPES) if w != q["answer"]]
        wrong = " ".join(others[rng.integers(len(others))] if w == q["answer"] else w for w in q["caption"].split(" "))
        samples.append(Sample(prompts.prompt(q["question"], wrong), s, ALL, prompts.answer(q["answer"])))
    result["contradicted"] = sum(first_token_right(model, samples, features)) / max(1, len(samples))
    model.train()
    return result


def print_eval(r: dict) -> None:
    kinds = ", ".join(f"{k} {v:.1%}" for k, v in r["all_tokens_by_kind"].items())
    print(f"  validation: all tokens {r['all_tokens']:.1%} ({kinds}); caption only {r['caption_only']:.1%}; "
          f"4 random patches {r['random4']:.1%}; color / shape, all tokens + a caption contradicting the answer "
          f"{r['contradicted']:.1%}", flush=True)


def batch_loss(model: TinyLlava, samples: list[Sample], features: torch.Tensor, dense_weight: float):
    """`TinyLlava.loss` over the batch, run as two padded batches (whole conversations; single questions over
    pruned patch sets) so that the short ones are not padded to the long ones' length; the parts are weighted
    by their number of samples. Returns (loss, answer loss, dense loss or None)."""
    is_long = [len(s.patches) == family.NUM_PATCHES or bool(s.turns or s.dense) for s in samples]
    long = [s for s, x in zip(samples, is_long) if x]
    short = [s for s, x in zip(samples, is_long) if not x]
    parts = [(len(g) / len(samples), model.loss(g, features, dense_weight)) for g in (long, short) if g]
    loss = sum(w * part[0] for w, part in parts)
    answer = sum(w * part[1] for w, part in parts)
    dense = [part[2] for _, part in parts if part[2] is not None]
    return loss, answer, dense[0] if dense else None


def checkpoint(model: TinyLlava, opt, step: int, history: list, trained_s: float, budget_s: float,
               schedule_start: int, args: dict) -> dict:
    """What checkpoint.pt holds (`--resume` reads it back; train_pairs.py keeps its format)."""
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step, "history": history,
            "trained_s": trained_s, "budget_s": budget_s, "schedule_start": schedule_start,
            "torch_rng": torch.get_rng_state(), "args": args}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=45.0)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--visual", type=float, default=0.45)
    ap.add_argument("--text", type=float, default=0.2)
    ap.add_argument("--question-caption", type=float, default=0.5, help="share of text samples whose text is the "
                    "first question's own caption (one turn) rather than the scene's description (all turns)")
    ap.add_argument("--pruned", type=float, default=0.0, help="share of scenes that give one question over a "
                    "pruned patch set that keeps the answer's evidence (the rest follow --visual / --text)")
    ap.add_argument("--pruned-caption", type=float, default=0.0, help="share of the pruned samples that carry a "
                    "caption (half true over random patches, half with one word changed over the evidence)")
    ap.add_argument("--pipeline", type=float, default=0.0, help="share of scenes replaced by a question as the "
                    "ACCM pipeline puts it (kept patches + the caption model's caption, from --pipeline-captions)")
    ap.add_argument("--pipeline-captions", type=Path, default=family.ARTIFACTS / "captioner" / "captions_train.jsonl",
                    help="train_captioner.py captions' output")
    ap.add_argument("--dense-weight", type=float, default=0.5, help="weight of the caption tokens' loss")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--checkpoint-every", type=int, default=200)
    ap.add_argument("--eval-every", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--extend-minutes", type=float, default=0.0, help="with --resume: lengthen the schedule")
    ap.add_argument("--restart-schedule", action="store_true", help="with --resume: keep the weights and the data "
                    "position, start a new warm-up + cosine over --minutes (a fresh optimizer state)")
    ap.add_argument("--export", action="store_true")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out_dir = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = out_dir / "checkpoint.pt"
    prompts = Prompts()
    model = TinyLlava()
    opt = adamw(model, args.lr, args.weight_decay)
    step, history, schedule_start = 0, [], 0
    trained_s, budget_s = 0.0, max(60.0, args.minutes * 60 - 90)
    if args.resume or args.export:
        ck = torch.load(ckpt_path, weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        step, history, trained_s, budget_s = ck["step"], ck["history"], ck["trained_s"], ck["budget_s"]
        schedule_start = ck.get("schedule_start", 0)
        budget_s += args.extend_minutes * 60
        torch.set_rng_state(ck["torch_rng"])
        if args.restart_schedule:
            opt = adamw(model, args.lr, args.weight_decay)
            trained_s, budget_s, schedule_start = 0.0, max(60.0, args.minutes * 60 - 90), step
        print(f"resumed at step {step}, {trained_s / 60:.1f} of {budget_s / 60:.1f} min trained", flush=True)
    val = Split("validation")
    val_features = cached_features(val, "validation", out_dir)
    if args.export:
        r = evaluate(model, val, val_features, prompts)
        print_eval(r)
        export_llava(model, CLIP_DIR, family.TOKENIZERS / "llama", out_dir / "hf")
        return
    train = Split("train")
    features = cached_features(train, "train", out_dir)
    pipeline_rows = None
    if args.pipeline:
        with open(args.pipeline_captions, encoding="utf-8") as f:
            pipeline_rows = [json.loads(line) for line in f]
        print(f"{len(pipeline_rows)} pipeline questions from {args.pipeline_captions}", flush=True)
    picks_all = list(range(len(train)))
    print(f"decoder {sum(p.numel() for p in model.parameters()):,} parameters; {len(picks_all)} train scenes; "
          f"batch {args.batch}; {args.threads} threads", flush=True)

    def save():
        save_atomically(checkpoint(model, opt, step, history, trained_s, budget_s, schedule_start,
                                   {k: str(v) for k, v in vars(args).items()}), ckpt_path)

    steps_per_epoch = len(picks_all) // args.batch
    start = time.time()
    deadline = start + args.minutes * 60
    window_t, window_n, window_loss = time.time(), 0, []
    model.train()
    while trained_s < budget_s:
        t_step = time.time()
        epoch, pos = divmod(step, steps_per_epoch)
        order = np.random.default_rng([args.seed, epoch]).permutation(len(picks_all))
        picks = [picks_all[j] for j in order[pos * args.batch:(pos + 1) * args.batch]]
        rng = np.random.default_rng([args.seed, 2_000_003, step])
        samples = make_samples(train, prompts, picks, rng, args.visual, args.text, args.question_caption,
                               args.pruned, args.pruned_caption, args.pipeline, pipeline_rows)
        for g in opt.param_groups:
            g["lr"] = lr_at(step - schedule_start, trained_s / budget_s, args.lr, args.warmup)
        loss, answer_loss, dense_loss = batch_loss(model, samples, features, args.dense_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        window_n += 1
        window_loss.append((answer_loss.item(), dense_loss.item() if dense_loss is not None else float("nan")))
        trained_s += time.time() - t_step
        if step % args.log_every == 0:
            now = time.time()
            rate = window_n / (now - window_t)
            a, d = np.nanmean(window_loss, axis=0)
            history.append({"step": step, "answer_loss": float(a), "caption_loss": float(d), "steps_per_s": rate})
            print(f"step {step:5d} {trained_s / budget_s:6.1%} epoch {step / steps_per_epoch:5.2f} answer loss "
                  f"{a:.4f} caption loss {d:.4f} lr {opt.param_groups[0]['lr']:.2e} {rate * args.batch:5.0f} samples/s "
                  f"ETA {(budget_s - trained_s) / 60:5.1f} min", flush=True)
            window_t, window_n, window_loss = now, 0, []
        if step % args.checkpoint_every == 0:
            save()
        if step % args.eval_every == 0:
            print_eval(evaluate(model, val, val_features, prompts, limit=500))
            window_t = time.time()
        if time.time() > deadline:
            print(f"wall-clock budget of {args.minutes} min spent at step {step}; --resume continues", flush=True)
            break
    save()
    print(f"checkpoint {ckpt_path} at step {step}; {(time.time() - start) / 60:.1f} min", flush=True)
    r = evaluate(model, val, val_features, prompts)
    print_eval(r)
    (out_dir / "eval.json").write_text(json.dumps({"step": step, **r}, indent=1) + "\n")
    export_llava(model, CLIP_DIR, family.TOKENIZERS / "llama", out_dir / "hf")
    print(f"exported {out_dir / 'hf'}", flush=True)


if __name__ == "__main__":
    main()
