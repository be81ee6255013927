"""Stages 3 and 4 of the family: the caption model (mapper + GPT-2) and the caption selector.

    python Training/train_captioner.py pretrain --minutes 12         # caption pre-training
    python Training/train_captioner.py kl --minutes 30               # the paper's self-supervised KL stage
    python Training/train_captioner.py kl --minutes 10 --resume      # continue a stage from its checkpoint
    python Training/train_captioner.py pretrain --minutes 20 --resume --extend-minutes 20   # train a stage longer
    python Training/train_captioner.py export                        # write the caption and selector directories
    python Training/train_captioner.py eval --budgets 4,16           # caption quality on the validation split
    python Training/train_captioner.py captions                      # the pipeline's captions of 24,000 train questions

What the caption model sees is what it sees in `accm ask`: the question's GPT-2 embeddings, then the mapper's
prefix made from the PRUNED patches' projected CLIP embeddings (ascending patch order), where the kept patches
are chosen by the ACCM pruner (most-similar ranking, cap by score; Scripts/accm_reference.py's `keep`) at a
budget drawn from --budgets. The selector sees the CLIP text tower's embeddings of
"Question: <q>  Supplemental information for questions: <caption>" for the 3 candidates.

pretrain  Teacher-forced cross-entropy toward the question's own caption ("There is a large red cross at the
          top."): the world's question-guided scene description. This pre-training is this project's choice
          (the paper starts from a captioner trained on generic captions).
kl        The paper's self-supervised stage: 3 candidates by beam search (ClipCap's length-normalised beam
          search, stop at "."); for each, the frozen decoder's answer distribution (first answer token, full
          vocabulary) with the kept patches + the candidate as "additional information"; the candidate whose
          distribution is closest in KL(p_full || p_candidate) to the decoder's with ALL patches and no caption
          is the pseudo-label: cross-entropy toward it for the caption model, scaled as in the authors' code by
          4 x the batch's mean (mean KL - min KL), and toward its index for the selector (samples whose
          candidates' KL are within 1e-4 of each other teach the selector nothing and are skipped for it).
          A candidate that reached the length limit without its "." cannot be the pseudo-label: learning such
          cut-off beams taught the caption model not to stop (its captions degenerated into "is is is ...").
          The default learning rate is 100x below pre-training's (the paper fine-tunes at 1e-6).
The selector's text tower is the family's CLIP text tower, frozen (the paper uses a frozen LongCLIP; this
world's selector strings fit CLIP's 32-token context: at most 29 tokens).

captions  What `accm ask` would put in the prompt for --limit train questions (a random order, a budget drawn
          from --budgets each): the ACCM pruner's kept patches, the 3 beams and the selector's pick, as JSON lines
          in captions_train.jsonl. train_decoder.py's --pipeline-captions reads them, so that the decoder learns
          how far this caption model can be trusted, kind by kind (see there).

Outputs under artifacts/captioner/: pretrain.pt, kl.pt (checkpoints), eval_*.json, captions_train.jsonl, and
with `export`: mapper/, gpt2/, selector_text/, selector/ (the accm.json sub-directories).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import family  # noqa: E402
from tiny_llava import Prompts, Sample, TinyLlava  # noqa: E402
from train_clip import Split, lr_at, pixels  # noqa: E402
from world import SIZES  # noqa: E402
from training_utils import cached_for_clip, load_cached_for_clip, pad_right, save_atomically  # noqa: E402

sys.path.insert(0, str(family.ROOT.parent / "Scripts"))
from accm_modules import CaptionMapper, CaptionSelector  # noqa: E402
import make_accm_fixtures  # noqa: E402  (save_module: config.json + model.safetensors of an ACCM module)
from accm_reference import ACCMReference, Margins, Pruner  # noqa: E402

from transformers import AutoTokenizer, CLIPModel, CLIPTextModelWithProjection, GPT2LMHeadModel  # noqa: E402

OUT = family.ARTIFACTS / "captioner"
CLIP_DIR = family.ARTIFACTS / "clip" / "hf"
DECODER_CKPT = family.ARTIFACTS / "decoder" / "checkpoint.pt"
PRUNER = Pruner("accm", ranking="most-similar", cap="score")
SELECTOR_PREFIX = "Question: "
SELECTOR_MIDDLE = "  Supplemental information for questions: "


# ------------------------------------------------------------------------------------------------
# What the vision stage computes, once per split
# ------------------------------------------------------------------------------------------------


@torch.no_grad()
def vision_outputs(clip: CLIPModel, images: torch.Tensor, batch: int = 500) -> dict:
    """Per image: the single-head CLS attention row of the last layer (and its logits) and every patch's
    projected embedding -- the inputs of the ACCM pruner and of the caption mapper."""
    attn, logits_all, embeds = [], [], []
    layer = clip.vision_model.encoder.layers[-1].self_attn
    for s in range(0, len(images), batch):
        captured = {}
        hooks = [layer.q_proj.register_forward_hook(lambda m, i, o: captured.__setitem__("q", o)),
                 layer.k_proj.register_forward_hook(lambda m, i, o: captured.__setitem__("k", o))]
        try:
            out = clip.vision_model(pixel_values=pixels(images[s:s + batch]))
        finally:
            for h in hooks:
                h.remove()
        q, k = captured["q"], captured["k"]
        logits = q[:, :1] @ k.transpose(1, 2) * q.shape[-1] ** -0.5  # [B, 1, T]
        attn.append(logits.softmax(-1)[:, 0, 1:])
        logits_all.append(logits[:, 0, 1:])
        embeds.append(clip.visual_projection(clip.vision_model.post_layernorm(out.last_hidden_state[:, 1:])))
    return {"cls_attention": torch.cat(attn), "cls_logits": torch.cat(logits_all), "patch_embeds": torch.cat(embeds)}


def cached_vision(clip: CLIPModel, split: Split, name: str) -> dict:
    return cached_for_clip(OUT / f"vision_{name}.pt", CLIP_DIR, lambda: vision_outputs(clip, split.images),
                           f"vision outputs of {name}")


class Pruning:
    """The ACCM pruner of Scripts/accm_reference.py over cached vision outputs, with cached question embeddings."""

    def __init__(self, clip: CLIPModel, clip_tokenizer, vision: dict):
        self.clip, self.tokenizer, self.vision = clip, clip_tokenizer, vision
        self.cache: dict[str, torch.Tensor] = {}
        self.reference = ACCMReference.__new__(ACCMReference)  # only `keep` is used, with our embedding function
        self.reference.question_embedding = self.question_embedding

    @torch.no_grad()
    def question_embedding(self, text: str) -> torch.Tensor:
        e = self.cache.get(text)
        if e is None:
            ids = self.tokenizer(text, padding="max_length", max_length=family.CLIP_TEXT_CONTEXT, truncation=True,
                                 return_tensors="pt").input_ids
            e = self.clip.text_projection(self.clip.text_model(input_ids=ids).pooler_output)[0]
            self.cache[text] = e
        return e

    def kept(self, scene: int, question: str, budget: int) -> list[int]:
        seen = {k: v[scene] for k, v in self.vision.items()}
        kept, _ = self.reference.keep(PRUNER, budget, seen, question.split("\n")[0], Margins())
        return kept


# ------------------------------------------------------------------------------------------------
# The caption model
# ------------------------------------------------------------------------------------------------


class Captioner(torch.nn.Module):
    def __init__(self):
        super().__init__()
        c = family.mapper_config()
        self.mapper = CaptionMapper(c["input_size"], c["hidden_size"], c["prefix_length"], c["num_layers"],
                                    c["num_heads"], c["mlp_ratio"], c["layer_norm_eps"])
        self.gpt2 = GPT2LMHeadModel(family.caption_lm_config())

    def inputs(self, question_ids: list[list[int]], pruned: list[torch.Tensor], continuation: list[list[int]]):
        """[wte(question) ; mapper(pruned) ; wte(continuation)] per sample, right-padded; the index of the
        position right after the prefix (minus one: the position that predicts continuation[0])."""
        wte = self.gpt2.transformer.wte
        rows, starts = [], []
        for q, p, c in zip(question_ids, pruned, continuation):
            prefix = self.mapper(p[None].float())[0]
            parts = [wte(torch.tensor(q))] if q else []
            parts.append(prefix)
            if c:
                parts.append(wte(torch.tensor(c)))
            rows.append(torch.cat(parts))
            starts.append(len(q) + prefix.shape[0] - 1)
        x, mask = pad_right(rows)
        return x, mask, starts

    def loss(self, question_ids, pruned, targets: list[list[int]]) -> torch.Tensor:
        x, mask, starts = self.inputs(question_ids, pruned, [t[:-1] for t in targets])
        logits = self.gpt2(inputs_embeds=x, attention_mask=mask).logits
        rows = torch.cat([logits[i, s:s + len(t)] for i, (s, t) in enumerate(zip(starts, targets))])
        return F.cross_entropy(rows, torch.tensor([x for t in targets for x in t]))

    @torch.no_grad()
    def beam_search(self, question_ids, pruned, beams: int, stop: int, max_new: int) -> list[list[tuple[list[int], float]]]:
        """ClipCap's generate_beam, batched over samples with a KV cache: length-normalised log-prob scores,
        finished beams frozen (they append token 0 at no cost). Rows are LEFT-padded (positions from the mask) so
        that every row's next token goes to the same slot. Returns per sample the beams (ids up to and incl. the
        stop token, score), best first."""
        B = len(question_ids)
        wte = self.gpt2.transformer.wte
        rows = []
        for q, p in zip(question_ids, pruned):
            parts = [wte(torch.tensor(q))] if q else []
            rows.append(torch.cat(parts + [self.mapper(p[None].float())[0]]))
        length = max(r.shape[0] for r in rows)
        x = torch.zeros(B, length, rows[0].shape[1])
        mask = torch.zeros(B, length, dtype=torch.long)
        for i, r in enumerate(rows):
            x[i, length - r.shape[0]:] = r
            mask[i, length - r.shape[0]:] = 1
        position = (mask.cumsum(1) - 1).clamp(min=0)
        out = self.gpt2(inputs_embeds=x, attention_mask=mask, position_ids=position, use_cache=True)
        cache = out.past_key_values
        last = out.logits[:, -1].log_softmax(-1)
        scores, new_tok = last.topk(beams, -1)  # [B, beams]
        source = torch.zeros(B, beams, dtype=torch.long)
        tokens = new_tok[..., None]
        lengths = torch.ones(B, beams)
        stopped = new_tok == stop
        mask = mask.repeat_interleave(beams, 0)
        next_position = position[:, -1].repeat_interleave(beams) + 1
        cache.reorder_cache(torch.arange(B).repeat_interleave(beams))
        for _ in range(max_new - 1):
            if bool(stopped.all()):
                break
            mask = torch.cat([mask, torch.ones(B * beams, 1, dtype=torch.long)], 1)
            out = self.gpt2(inputs_embeds=wte(new_tok.reshape(-1))[:, None], attention_mask=mask,
                            position_ids=next_position[:, None], past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            next_position = next_position + 1
            last = out.logits[:, -1].log_softmax(-1).view(B, beams, -1)
            V = last.shape[-1]
            last = last.masked_fill(stopped[..., None], -float("inf"))
            last[..., 0] = torch.where(stopped, torch.zeros_like(last[..., 0]), last[..., 0])
            total = scores[..., None] + last
            lengths = lengths + (~stopped).float()
            avg = (total / lengths[..., None]).view(B, -1)
            best, flat = avg.topk(beams, -1)
            source, new_tok = flat // V, flat % V
            lengths = lengths.gather(1, source)
            scores = best * lengths
            stopped = stopped.gather(1, source)
            tokens = torch.cat([tokens.gather(1, source[..., None].expand(-1, -1, tokens.shape[2])), new_tok[..., None]], 2)
            rows_ = (torch.arange(B)[:, None] * beams + source).view(-1)
            cache.reorder_cache(rows_)
            mask, next_position = mask[rows_], next_position[rows_]
            stopped = stopped | (new_tok == stop)
        final = scores / lengths
        result = []
        for b in range(B):
            order = final[b].argsort(descending=True).tolist()
            result.append([(tokens[b, i, :int(lengths[b, i])].tolist(), float(final[b, i])) for i in order])
        return result


# ------------------------------------------------------------------------------------------------
# Training loop pieces
# ------------------------------------------------------------------------------------------------


def optimizers(captioner: Captioner, selector: CaptionSelector, lr: float, selector_lr: float):
    """The caption model's and the selector's AdamW, as both training stages set them up."""
    return (torch.optim.AdamW(captioner.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01),
            torch.optim.AdamW(selector.parameters(), lr=selector_lr, weight_decay=0.01))


def checkpoint(captioner: Captioner, selector: CaptionSelector, opt, sel_opt, step: int, trained_s: float,
               budget_s: float, history: list) -> dict:
    """What pretrain.pt / kl.pt hold (`--resume` reads it back)."""
    return {"captioner": captioner.state_dict(), "selector": selector.state_dict(), "optimizer": opt.state_dict(),
            "selector_optimizer": sel_opt.state_dict(), "step": step, "trained_s": trained_s, "budget_s": budget_s,
            "history": history}


def build_selector() -> CaptionSelector:
    """The selector at family.py's shapes."""
    c = family.selector_config()
    return CaptionSelector(c["hidden_size"], c["num_heads"], c["intermediate_size"], c["num_layers"], c["layer_norm_eps"])


class World:
    """Everything both stages read: the train split, vision outputs, tokenizers, the pruner."""

    def __init__(self, split_name: str = "train"):
        self.clip = CLIPModel.from_pretrained(CLIP_DIR).eval()
        for p in self.clip.parameters():
            p.requires_grad_(False)
        self.clip_tokenizer = AutoTokenizer.from_pretrained(CLIP_DIR)
        self.gpt2_tokenizer = AutoTokenizer.from_pretrained(family.TOKENIZERS / "gpt2")
        self.stop = self.gpt2_tokenizer.encode(".")[0]
        self.split = Split(split_name)
        self.vision = cached_vision(self.clip, self.split, split_name)
        self.pruning = Pruning(self.clip, self.clip_tokenizer, self.vision)
        self.picks = [(s, i) for s in range(len(self.split)) for i in range(len(self.split.questions[s]))]
        self._q: dict[str, list[int]] = {}

    def question_ids(self, question: str) -> list[int]:
        ids = self._q.get(question)
        if ids is None:
            ids = self.gpt2_tokenizer.encode(question.split("\n")[0])
            self._q[question] = ids
        return ids

    def pruned_embeds(self, scene: int, kept: list[int]) -> torch.Tensor:
        taken = set(kept)
        return self.vision["patch_embeds"][scene][[i for i in range(family.NUM_PATCHES) if i not in taken]]


def candidate_texts(world: World, found: list[list[tuple[list[int], float]]]) -> list[list[str]]:
    """Each sample's beams (`Captioner.beam_search`) as the caption strings the pipeline puts in the prompt."""
    return [[world.gpt2_tokenizer.decode(ids, skip_special_tokens=True) for ids, _ in beams] for beams in found]


@torch.no_grad()
def candidate_embeddings(world: World, questions: list[dict], texts: list[list[str]]) -> torch.Tensor:
    """[samples, candidates, dim]: the frozen text tower's embeddings of "Question: <q>  Supplemental information
    for questions: <candidate>" for each sample's candidate captions (the selector's input)."""
    strings = [SELECTOR_PREFIX + q["question"].split("\n")[0].strip() + SELECTOR_MIDDLE + c
               for q, cands in zip(questions, texts) for c in cands]
    ids = world.clip_tokenizer(strings, padding="max_length", max_length=family.CLIP_TEXT_CONTEXT, truncation=True,
                               return_tensors="pt").input_ids
    flat = world.clip.text_projection(world.clip.text_model(input_ids=ids).pooler_output)
    return flat.view(len(texts), len(texts[0]), -1)


def load_decoder() -> TinyLlava:
    model = TinyLlava()
    model.load_state_dict(torch.load(DECODER_CKPT, weights_only=False)["model"])
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def decoder_features() -> torch.Tensor:
    return load_cached_for_clip(family.ARTIFACTS / "decoder" / "features_train.pt", CLIP_DIR, "train_decoder.py")


@torch.no_grad()
def first_token_distributions(decoder: TinyLlava, prompts: Prompts, features, items) -> torch.Tensor:
    """log-probabilities [n, vocab] of the first answer token for (question, caption or None, scene, patches)."""
    samples = [Sample(prompts.prompt(q, c), s, p, [0]) for q, c, s, p in items]
    return decoder.first_answer_logits(samples, features).log_softmax(-1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stage", choices=["pretrain", "kl", "export", "eval", "captions"])
    ap.add_argument("--minutes", type=float, default=12.0)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=None, help="caption model peak learning rate (default: 1e-3 "
                    "for pretrain; 1e-5 for kl, which starts from the pre-trained model)")
    ap.add_argument("--selector-lr", type=float, default=5e-4)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--budgets", default="4,8,16", help="keep budgets drawn uniformly per sample")
    ap.add_argument("--beams", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log-every", type=int, default=20)
    ap.add_argument("--checkpoint-every", type=int, default=100)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--checkpoint", type=Path, help="eval, captions: the checkpoint to use (default: kl.pt, else "
                    "pretrain.pt)")
    ap.add_argument("--limit", type=int, default=24000, help="captions: how many train questions")
    ap.add_argument("--extend-minutes", type=float, default=0.0, help="with --resume: lengthen the stage's schedule")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    OUT.mkdir(parents=True, exist_ok=True)
    if args.stage == "export":
        export()
        return
    if args.stage == "eval":
        captioner = Captioner()
        captioner.load_state_dict(torch.load(args.checkpoint or newest_checkpoint(), weights_only=False)["captioner"])
        validation = World("validation")
        for budget in (int(b) for b in args.budgets.split(",")):
            print_quality(caption_quality(captioner, validation, budget))
        return
    if args.stage == "captions":
        pipeline_captions(args.checkpoint or newest_checkpoint(), args.limit, [int(b) for b in args.budgets.split(",")],
                          args.beams, args.seed)
        return
    if args.lr is None:
        args.lr = 1e-5 if args.stage == "kl" else 1e-3
    budgets = [int(b) for b in args.budgets.split(",")]
    world = World()
    captioner = Captioner()
    selector = build_selector()
    kl = args.stage == "kl"
    ckpt_path = OUT / f"{args.stage}.pt"
    opt, sel_opt = optimizers(captioner, selector, args.lr, args.selector_lr)
    step, trained_s, budget_s, history = 0, 0.0, max(60.0, args.minutes * 60 - 60), []
    if args.resume:
        ck = torch.load(ckpt_path, weights_only=False)
        captioner.load_state_dict(ck["captioner"])
        selector.load_state_dict(ck["selector"])
        opt.load_state_dict(ck["optimizer"])
        sel_opt.load_state_dict(ck["selector_optimizer"])
        step, trained_s, budget_s, history = ck["step"], ck["trained_s"], ck["budget_s"], ck["history"]
        budget_s += args.extend_minutes * 60
        print(f"resumed {args.stage} at step {step}, {trained_s / 60:.1f} of {budget_s / 60:.1f} min trained", flush=True)
    elif kl:
        ck = torch.load(OUT / "pretrain.pt", weights_only=False)
        captioner.load_state_dict(ck["captioner"])
        print("KL stage starts from the pre-trained caption model", flush=True)
    decoder = prompts = features = None
    if kl:
        decoder, prompts, features = load_decoder(), Prompts(), decoder_features()

    def save():
        save_atomically(checkpoint(captioner, selector, opt, sel_opt, step, trained_s, budget_s, history), ckpt_path)

    start = time.time()
    deadline = start + args.minutes * 60
    window_t, window = time.time(), []
    steps_per_epoch = len(world.picks) // args.batch
    while trained_s < budget_s:
        t_step = time.time()
        epoch, pos = divmod(step, steps_per_epoch)
        order = np.random.default_rng([args.seed, 7 + kl, epoch]).permutation(len(world.picks))
        picks = [world.picks[j] for j in order[pos * args.batch:(pos + 1) * args.batch]]
        rng = np.random.default_rng([args.seed, 3_000_017 + kl, step])
        qs = [world.split.questions[s][i] for s, i in picks]
        kept = [world.pruning.kept(s, q["question"], int(rng.choice(budgets))) for (s, _), q in zip(picks, qs)]
        qids = [world.question_ids(q["question"]) for q in qs]
        pruned = [world.pruned_embeds(s, k) for (s, _), k in zip(picks, kept)]
        lr = lr_at(step, trained_s / budget_s, args.lr, args.warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        record = {}
        if not kl:
            targets = [world.gpt2_tokenizer.encode(q["caption"]) for q in qs]
            loss = captioner.loss(qids, pruned, targets)
        else:
            captioner.eval()
            beams = captioner.beam_search(qids, pruned, args.beams, world.stop, 20)
            captioner.train()
            texts = candidate_texts(world, beams)
            items = [(q["question"], None, s, list(range(family.NUM_PATCHES))) for (s, _), q in zip(picks, qs)]
            for (s, _), q, k, cands in zip(picks, qs, kept, texts):
                items += [(q["question"], c, s, k) for c in cands]
            logp = first_token_distributions(decoder, prompts, features, items)
            full = logp[:len(picks)]
            cand = logp[len(picks):].view(len(picks), args.beams, -1)
            kls = (full.exp()[:, None] * (full[:, None] - cand)).sum(-1)  # [B, beams]
            # a candidate cut off at the length limit (no "." reached) is no caption: it cannot be the label
            # (learning it teaches the caption model not to stop)
            finished = torch.tensor([[bool(ids) and ids[-1] == world.stop for ids, _ in b] for b in beams])
            label_kls = kls.masked_fill(~finished, float("inf"))
            usable = finished.any(1)
            best = label_kls.argmin(1)
            spread = torch.where(finished, kls, 0.0).sum(1) / finished.sum(1).clamp(min=1) - label_kls.min(1).values
            # the paper's scale: 4 x the batch's mean (mean KL - min KL), so batches whose candidates hardly
            # differ for the decoder move the caption model little
            scale = 4 * spread[usable].mean() if usable.any() else torch.tensor(0.0)
            targets = [beams[b][int(best[b])][0] for b in range(len(picks))]
            keep = [b for b in range(len(picks)) if usable[b]]
            loss = scale * captioner.loss([qids[b] for b in keep], [pruned[b] for b in keep], [targets[b] for b in keep]) \
                if keep else torch.zeros((), requires_grad=True)
            record["finished"] = float(finished.float().mean())
            # the selector: which candidate is the pseudo-label
            informative = usable & ((torch.where(finished, kls, -float("inf")).max(1).values - label_kls.min(1).values) > 1e-4)
            emb = candidate_embeddings(world, qs, texts)
            for g in sel_opt.param_groups:
                g["lr"] = lr_at(step, trained_s / budget_s, args.selector_lr, args.warmup)
            if informative.any():
                sel_logits = selector(emb[informative])
                sel_loss = F.cross_entropy(sel_logits, best[informative])
                sel_opt.zero_grad(set_to_none=True)
                sel_loss.backward()
                sel_opt.step()
                record["selector_loss"] = sel_loss.item()
                record["selector_acc"] = float((sel_logits.argmax(1) == best[informative]).float().mean())
            gold = [world.gpt2_tokenizer.encode(q["caption"]) for q in qs]
            record["best_is_gold"] = float(np.mean([targets[b] == gold[b] for b in keep])) if keep else 0.0
            record["top_is_gold"] = float(np.mean([b[0][0] == g for b, g in zip(beams, gold)]))
            record["kl_best"] = float(label_kls.min(1).values[usable].mean()) if keep else float("nan")
            record["kl_top"] = float(kls[:, 0].mean())  # the top beam's, finished or not
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(captioner.parameters(), 1.0)
        opt.step()
        record["loss"] = loss.item()
        window.append(record)
        step += 1
        trained_s += time.time() - t_step
        if step % args.log_every == 0:
            now = time.time()
            mean = {k: float(np.mean([r[k] for r in window if k in r])) for k in window[-1]}
            history.append({"step": step, **mean})
            print(f"{args.stage} step {step:5d} {trained_s / budget_s:6.1%} " +
                  " ".join(f"{k} {v:.4f}" for k, v in mean.items()) +
                  f" lr {lr:.2e} {len(window) * args.batch / (now - window_t):5.0f} samples/s "
                  f"ETA {(budget_s - trained_s) / 60:5.1f} min", flush=True)
            window_t, window = now, []
        if step % args.checkpoint_every == 0:
            save()
        if time.time() > deadline:
            print(f"wall-clock budget of {args.minutes} min spent at step {step}; --resume continues", flush=True)
            break
    save()
    print(f"{args.stage}: checkpoint {ckpt_path} at step {step}; {(time.time() - start) / 60:.1f} min", flush=True)
    print_quality(caption_quality(captioner, World("validation"), 4))


def caption_facts(caption: str) -> str:
    """The caption without its size word and its "at the <region>" ending: what a question's answer rests on."""
    words = caption.strip().rstrip(".").split(" ")
    if "at" in words:
        words = words[:words.index("at")]
    return " ".join(w for w in words if w not in SIZES)


@torch.no_grad()
def caption_quality(captioner: Captioner, world: "World", budget: int = 4, limit: int = 500, beams: int = 3) -> dict:
    """On the first `limit` questions of `world`'s split, with the ACCM pruner's kept set at `budget`: the share
    whose top beam states the gold caption's facts (sizes and regions aside), per kind, and the share that ends
    with its "." (a finished sentence)."""
    captioner.eval()
    picks = world.picks[:limit]
    right, finished, kinds = 0, 0, {}
    for start in range(0, len(picks), 50):
        chunk = picks[start:start + 50]
        qs = [world.split.questions[s][i] for s, i in chunk]
        pruned = [world.pruned_embeds(s, world.pruning.kept(s, q["question"], budget)) for (s, _), q in zip(chunk, qs)]
        found = captioner.beam_search([world.question_ids(q["question"]) for q in qs], pruned, beams, world.stop, 20)
        for q, b in zip(qs, found):
            ids = b[0][0]
            text = world.gpt2_tokenizer.decode(ids, skip_special_tokens=True).strip()
            ok = caption_facts(text) == caption_facts(q["caption"])
            right += ok
            finished += bool(ids) and ids[-1] == world.stop
            a, n = kinds.get(q["kind"], (0, 0))
            kinds[q["kind"]] = (a + ok, n + 1)
    captioner.train()
    return {"budget": budget, "facts_right": right / len(picks), "finished": finished / len(picks),
            "by_kind": {k: a / n for k, (a, n) in sorted(kinds.items())}}


def print_quality(r: dict) -> None:
    kinds = ", ".join(f"{k} {v:.1%}" for k, v in r["by_kind"].items())
    print(f"  validation captions at {r['budget']} kept tokens: facts right {r['facts_right']:.1%} ({kinds}); "
          f"finished {r['finished']:.1%}", flush=True)


@torch.no_grad()
def pipeline_captions(checkpoint: Path, limit: int, budgets: list[int], beams: int, seed: int,
                      chunk: int = 50) -> Path:
    """The `captions` stage (see the module's doc) with the caption model and selector of `checkpoint`: writes
    OUT/captions_train.jsonl and returns its path."""
    ck = torch.load(checkpoint, weights_only=False)
    captioner, selector = Captioner(), build_selector()
    captioner.load_state_dict(ck["captioner"])
    selector.load_state_dict(ck["selector"])
    captioner.eval()
    selector.eval()
    world = World("train")
    rng = np.random.default_rng([seed, 11])
    picks = [world.picks[j] for j in rng.permutation(len(world.picks))[:limit]]
    path, start = OUT / "captions_train.jsonl", time.time()
    rows = []
    for at in range(0, len(picks), chunk):
        part = picks[at:at + chunk]
        qs = [world.split.questions[s][i] for s, i in part]
        kept = [world.pruning.kept(s, q["question"], int(rng.choice(budgets))) for (s, _), q in zip(part, qs)]
        found = captioner.beam_search([world.question_ids(q["question"]) for q in qs],
                                      [world.pruned_embeds(s, k) for (s, _), k in zip(part, kept)], beams, world.stop, 20)
        texts = candidate_texts(world, found)
        picked = selector(candidate_embeddings(world, qs, texts)).argmax(1).tolist()
        for (s, i), k, cands, j in zip(part, kept, texts, picked):
            rows.append({"scene": s, "question": i, "budget": len(k), "kept": k, "candidates": cands, "caption": cands[j]})
        if (at // chunk) % 40 == 0:
            print(f"captions {len(rows)}/{len(picks)} {time.time() - start:5.0f} s", flush=True)
    for kind, (selected, top, any_beam) in candidates_quality(world, rows).items():
        print(f"  {kind}: the question's facts in the selected caption {selected:.1%}, the top beam {top:.1%}, "
              f"any of the {beams} beams {any_beam:.1%}", flush=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(path)
    print(f"captions: {len(rows)} rows -> {path} ({(time.time() - start) / 60:.1f} min)", flush=True)
    return path


def candidates_quality(world: World, rows: list[dict]) -> dict[str, tuple[float, float, float]]:
    """Per question kind over `captions` rows: the share whose selected caption, whose top beam, and whose best
    beam state the gold caption's facts (`caption_facts`)."""
    counts: dict[str, list[int]] = {}
    for r in rows:
        q = world.split.questions[r["scene"]][r["question"]]
        gold = caption_facts(q["caption"])
        right = [caption_facts(c) == gold for c in r["candidates"]]
        c = counts.setdefault(q["kind"], [0, 0, 0, 0])
        c[0] += right[r["candidates"].index(r["caption"])]
        c[1] += right[0]
        c[2] += any(right)
        c[3] += 1
    return {k: (a / n, b / n, c / n) for k, (a, b, c, n) in sorted(counts.items())}


def newest_checkpoint() -> Path:
    return OUT / "kl.pt" if (OUT / "kl.pt").exists() else OUT / "pretrain.pt"


def export() -> None:
    """mapper/, gpt2/, selector_text/, selector/ from the newest checkpoint (kl.pt, else pretrain.pt)."""
    ckpt = newest_checkpoint()
    ck = torch.load(ckpt, weights_only=False)
    captioner = Captioner()
    captioner.load_state_dict(ck["captioner"])
    selector = build_selector()
    selector.load_state_dict(ck["selector"])

    def save_module(module, to: Path) -> None:
        if to.exists():
            shutil.rmtree(to)
        make_accm_fixtures.save_module(module, to)

    save_module(captioner.mapper.eval(), OUT / "mapper")
    save_module(selector.eval(), OUT / "selector")
    for name, model, tok in (("gpt2", captioner.gpt2, "gpt2"),):
        d = OUT / name
        if d.exists():
            shutil.rmtree(d)
        model.save_pretrained(d, safe_serialization=True)
        for f in (family.TOKENIZERS / tok).iterdir():
            shutil.copy(f, d / f.name)
    clip = CLIPModel.from_pretrained(CLIP_DIR)
    text = CLIPTextModelWithProjection(clip.config.text_config)
    text.text_model.load_state_dict(clip.text_model.state_dict(), strict=True)
    text.text_projection.load_state_dict(clip.text_projection.state_dict(), strict=True)
    d = OUT / "selector_text"
    if d.exists():
        shutil.rmtree(d)
    text.save_pretrained(d, safe_serialization=True)
    for f in (family.TOKENIZERS / "clip").iterdir():
        shutil.copy(f, d / f.name)
    print(f"exported {ckpt.name} -> {OUT}/mapper, gpt2, selector_text, selector", flush=True)


if __name__ == "__main__":
    main()
