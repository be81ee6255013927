"""A Python/PyTorch reference of the whole ACCM pipeline, on top of transformers.

It reads an ACCM model directory (the layout of Sources/ACCM/ModelDirectory.swift: accm.json, vision/,
caption/mapper/, caption/gpt2/, selector/text/, selector/scorer/, llava/) and answers one question about
one image the way the authors' code does (ASGO-MM/ACCM at 0c5f932, as described in
/work/shared/reference/accm-paper.md §1.1-1.9), with this project's documented options where it
deliberately differs (Sources/ACCM/TokenPruner.swift):

vision    LLaVA's expand2square (pad mode) + CLIPImageProcessor (PIL path); CLIPModel with hooks on the
          LAST layer's q_proj/k_proj; CLS attention = softmax(q kᵀ / sqrt(C)) as ONE head over the full
          width, row 0, patches only; IQR outliers with numpy float32 percentiles (Q3 + 1.5 IQR); the
          question's first line through the CLIP text tower (truncated to its context, end token kept);
          distances ‖t‖² + ‖v‖² − 2 t·v between the L2-normalised projected end-of-text embedding and every
          patch's visual_projection(post_layernorm(h)); topk largest = least similar (the authors' code),
          topk smallest = most similar (the paper's wording).
pruners   none | random (partial Fisher-Yates driven by SplitMix64(seed)) | uniform
          (candidates[(2i+1)·n/(2k)]) | cls-attention (top-K) | text-guided (top-K by ranking) | accm:
          CLS outliers ∪ text picks (default table {288:150,144:70,72:40,36:20,18:12}, else
          round-half-up(0.55·K)), capped by `highest-index` (the authors' unique[-K:]) or `score`
          (alternate the text-ranked and attention-ranked lists, text first, skipping duplicates),
          then filled with evenly spaced not-yet-kept patches (the project's exact-budget fill; the authors
          use arange(0, N, ceil(N/need)) and a random pad). Kept indices are returned ascending.
caption   the pruned patches' projected embeddings (ascending) → CaptionMapper → prefix; GPT-2 input =
          [wte(question ids) ; prefix]; ClipCap's generate_beam (re-runs the whole sequence every step,
          log(softmax), length-normalised scores, stopped beams frozen with token 0, stop token ".").
selector  'Question: ' + q.strip() + '  Supplemental information for questions: ' + caption, through the
          selector's CLIP text tower (end-of-text pooling + projection) → CaptionSelector → argmax.
decoder   vicuna_v1 prompt with LLaVA's tokenizer_image_token (-200 for the image); 'additional
          information: ' + caption tokenized without BOS inserted at index(-200) + 3 (after "▁", "\n");
          the kept patches of the LLaVA vision tower's hidden_states[-2] through the multi-modal projector
          at the image position; greedy decoding with the KV cache (checked against model.generate).

Besides the outputs it measures every decision's margin (how far the chosen value is from the next one),
so that fixtures can avoid near-ties that a 1e-6 float difference would flip.

Usage (one question):
    python Scripts/accm_reference.py --model Tests/Fixtures/accm/model --image X.png "What color is it?"
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file
from transformers import (
    AutoTokenizer,
    CLIPImageProcessorPil,
    CLIPModel,
    CLIPTextModelWithProjection,
    GPT2LMHeadModel,
    LlavaForConditionalGeneration,
)
from transformers import logging as hf_logging

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accm_modules import CaptionMapper, CaptionSelector  # noqa: E402

# transformers 5.24 renames LlavaForConditionalGeneration.forward's past_key_values; the old name still works.
warnings.filterwarnings("ignore", message=".*past_key_values.*is deprecated", category=FutureWarning)

IMAGE_TOKEN_INDEX = -200
VICUNA_V1_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
TEXT_PICKS = {288: 150, 144: 70, 72: 40, 36: 20, 18: 12}
MASK64 = (1 << 64) - 1


# ---------------------------------------------------------------------------------------------------------
# Small pieces with exactly the project's documented rules


class SplitMix64:
    """Sources/ACCM/TokenPruner.swift's SplitMix64, with uint64 wrap-around."""

    def __init__(self, seed: int):
        self.state = seed & MASK64

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)


def random_indices(n: int, budget: int, seed: int) -> list[int]:
    generator = SplitMix64(seed)
    all_ = list(range(n))
    for i in range(budget):  # partial Fisher-Yates
        j = i + generator.next() % (n - i)
        all_[i], all_[j] = all_[j], all_[i]
    return sorted(all_[:budget])


def evenly_spaced(count: int, candidates: list[int]) -> list[int]:
    if count <= 0 or not candidates:
        return []
    total = len(candidates)
    k = min(count, total)
    return [candidates[(2 * i + 1) * total // (2 * k)] for i in range(k)]


def default_text_picks(budget: int) -> int:
    if budget in TEXT_PICKS:
        return TEXT_PICKS[budget]
    x = budget * 0.55  # Swift's Double.rounded(): half away from zero (not Python's banker's round)
    return max(1, int(math.floor(x)) + (1 if x - math.floor(x) >= 0.5 else 0))


def outlier_ratio(attention: torch.Tensor) -> tuple[float, float]:
    """The authors' (LLaVA-PruMerge's) outlier_dectection: share of values above Q3 + 1.5·IQR."""
    values = attention.to(dtype=torch.float32).cpu().numpy().flatten()
    q1 = np.percentile(values, 25)
    q3 = np.percentile(values, 75)
    upper = q3 + 1.5 * (q3 - q1)
    outliers = np.where(values > upper)[0]
    return len(outliers) / len(values), float(upper)


def expand2square(im: Image.Image, background: tuple[int, ...]) -> Image.Image:
    """LLaVA-1.5's llava/mm_utils.py expand2square, verbatim."""
    width, height = im.size
    if width == height:
        return im
    if width > height:
        result = Image.new(im.mode, (width, width), background)
        result.paste(im, (0, (width - height) // 2))
        return result
    result = Image.new(im.mode, (height, height), background)
    result.paste(im, ((height - width) // 2, 0))
    return result


def tokenizer_image_token(prompt: str, tokenizer, image_token_index: int = IMAGE_TOKEN_INDEX) -> list[int]:
    """LLaVA's llava/mm_utils.py tokenizer_image_token, verbatim (without the tensor return)."""
    prompt_chunks = [tokenizer(chunk).input_ids for chunk in prompt.split("<image>")]

    def insert_separator(x, sep):
        return [ele for sublist in zip(x, [sep] * len(x)) for ele in sublist][:-1]

    input_ids = []
    offset = 0
    if len(prompt_chunks) > 0 and len(prompt_chunks[0]) > 0 and prompt_chunks[0][0] == tokenizer.bos_token_id:
        offset = 1
        input_ids.append(prompt_chunks[0][0])
    for x in insert_separator(prompt_chunks, [image_token_index] * (offset + 1)):
        input_ids.extend(x[offset:])
    return input_ids


def vicuna_v1_prompt(question: str) -> str:
    """conv_templates['vicuna_v1'] with the user message '<image>\\n' + question and no answer yet."""
    return VICUNA_V1_SYSTEM + " " + "USER: " + "<image>\n" + question + " " + "ASSISTANT:"


def guiding_text(question: str) -> str:
    """The text the ACCM modules see: the question's first line (model_vqa_loader.py)."""
    return question.split("\n")[0]


def gaps(sorted_values: list[float]) -> list[float]:
    return [abs(a - b) for a, b in zip(sorted_values, sorted_values[1:])]


@dataclass
class Pruner:
    method: str  # none | random | uniform | cls-attention | text-guided | accm
    seed: int = 0
    ranking: str = "most-similar"  # most-similar | least-similar
    cap: str = "score"  # score | highest-index
    text_picks: int | None = None

    def to_json(self) -> dict:
        out = {"method": self.method}
        if self.method == "random":
            out["seed"] = self.seed
        if self.method in ("text-guided", "accm"):
            out["ranking"] = self.ranking
        if self.method == "accm":
            out["cap"] = self.cap
            if self.text_picks is not None:
                out["text_picks"] = self.text_picks
        return out

    @staticmethod
    def from_json(d: dict) -> "Pruner":
        return Pruner(d["method"], d.get("seed", 0), d.get("ranking", "most-similar"), d.get("cap", "score"),
                      d.get("text_picks"))

    @property
    def needs_attention(self) -> bool:
        return self.method in ("cls-attention", "accm")

    @property
    def needs_similarity(self) -> bool:
        return self.method in ("text-guided", "accm")


@dataclass
class Margins:
    """Every decision's margin, by kind (the units differ)."""

    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, kind: str, *margins: float) -> None:
        self.values.setdefault(kind, []).extend(float(m) for m in margins)

    def summary(self) -> dict[str, float]:
        return {k: min(v) for k, v in sorted(self.values.items()) if v}


# ---------------------------------------------------------------------------------------------------------
# The model


class ACCMReference:
    def __init__(self, directory: str | Path):
        directory = Path(directory)
        manifest = json.loads((directory / "accm.json").read_text())
        assert manifest["format"] == 1, manifest
        self.manifest = manifest
        path = lambda key: directory / manifest[key]  # noqa: E731
        torch.set_grad_enabled(False)

        # Vision stage: CLIPModel (both towers + projections), its tokenizer and image processor.
        self.clip = CLIPModel.from_pretrained(path("vision"), dtype=torch.float32).eval()
        self.clip_tokenizer = AutoTokenizer.from_pretrained(path("vision"))
        self.processor = CLIPImageProcessorPil.from_pretrained(path("vision"))
        self.pad = manifest.get("image_aspect_ratio", "pad") == "pad"
        self.feature_layer = manifest.get("vision_feature_layer", -2)

        # Caption stage.
        self.mapper = load_module(path("caption_mapper"))
        self.gpt2 = GPT2LMHeadModel.from_pretrained(path("caption_language_model"), dtype=torch.float32).eval()
        self.gpt2_tokenizer = AutoTokenizer.from_pretrained(path("caption_language_model"))
        self.beams = manifest.get("caption_beams", 3)
        self.caption_max_new_tokens = manifest.get("caption_max_new_tokens", 67)
        self.stop_token = manifest.get("caption_stop", ".")

        # Selector stage.
        self.selector_text = CLIPTextModelWithProjection.from_pretrained(
            path("selector_text_encoder"), dtype=torch.float32).eval()
        self.selector_tokenizer = AutoTokenizer.from_pretrained(path("selector_text_encoder"))
        self.selector = load_module(path("selector"))

        # Decoder stage.
        self.llava = LlavaForConditionalGeneration.from_pretrained(path("llava"), dtype=torch.float32).eval()
        self.llama_tokenizer = AutoTokenizer.from_pretrained(path("llava"))
        assert self.llama_tokenizer.eos_token_id is not None, "the LLaVA tokenizer names no end-of-sequence token"

    # -- vision -------------------------------------------------------------------------------------------

    def pixels(self, image: Image.Image) -> torch.Tensor:
        image = image.convert("RGB")
        if self.pad:
            image = expand2square(image, tuple(int(x * 255) for x in self.processor.image_mean))
        return self.processor(images=[image], return_tensors="pt")["pixel_values"]

    def vision(self, pixels: torch.Tensor) -> dict:
        """CLS attention (last layer, one head over the full width) and every patch's projected embedding."""
        captured = {}
        attention = self.clip.vision_model.encoder.layers[-1].self_attn
        hooks = [
            attention.q_proj.register_forward_hook(lambda m, i, o: captured.__setitem__("q", o)),
            attention.k_proj.register_forward_hook(lambda m, i, o: captured.__setitem__("k", o)),
        ]
        try:
            out = self.clip.vision_model(pixel_values=pixels, output_hidden_states=True)
        finally:
            for h in hooks:
                h.remove()
        q, k = captured["q"][0], captured["k"][0]  # [T, C]
        c = q.shape[-1]
        logits = q @ k.T * c**-0.5
        cls_logits = logits[0]  # [T]
        cls_attention = logits.softmax(dim=-1)[0, 1:]
        image_embeds = self.clip.visual_projection(self.clip.vision_model.post_layernorm(out.last_hidden_state))
        return {
            "cls_attention": cls_attention,
            "cls_logits": cls_logits[1:],  # log-attention up to a constant: gaps here are log-ratios
            "patch_embeds": image_embeds[0, 1:],  # [N, P]
        }

    def question_embedding(self, text: str) -> torch.Tensor:
        context = self.clip.config.text_config.max_position_embeddings
        ids = self.clip_tokenizer(text, padding="max_length", max_length=context, truncation=True,
                                  return_tensors="pt").input_ids
        pooled = self.clip.text_model(input_ids=ids).pooler_output
        return self.clip.text_projection(pooled)[0]

    def keep(self, pruner: Pruner, budget: int, seen: dict, question: str, margins: Margins) -> tuple[list[int], dict]:
        n = seen["patch_embeds"].shape[0]
        info: dict = {}
        if pruner.method == "none":
            return list(range(n)), info
        assert 1 <= budget <= n, (budget, n)
        if pruner.method == "random":
            return random_indices(n, budget, pruner.seed), info
        if pruner.method == "uniform":
            return evenly_spaced(budget, list(range(n))), info

        attention = seen["cls_attention"]
        log_attention = seen["cls_logits"].tolist()
        distances = None
        if pruner.needs_similarity:
            t = self.question_embedding(question)
            t = t / t.norm()
            v = seen["patch_embeds"] / seen["patch_embeds"].norm(dim=-1, keepdim=True)
            distances = (t**2).sum() + (v**2).sum(dim=-1) - 2 * (v @ t)  # = 2 − 2·cos
            info["distances"] = [round(x, 6) for x in distances.tolist()]
        largest = pruner.ranking == "least-similar"

        def ranked(values: list[float], descending: bool) -> list[int]:
            # the order of torch.topk(..., sorted=True) when there are no ties
            return sorted(range(len(values)), key=lambda i: (-values[i] if descending else values[i], i))

        # Ties (exactly equal scores) go to the lower index, as in Sources/ACCM/TokenPruner.swift; torch.topk
        # leaves their order open, so the rankings below are explicit sorts (equal to topk without ties).
        if pruner.method == "cls-attention":
            order = ranked(log_attention, True)
            margins.add("attention_log", log_attention[order[budget - 1]] - log_attention[order[budget]])
            return sorted(order[:budget]), info
        if pruner.method == "text-guided":
            d = distances.tolist()
            order = ranked(d, largest)
            margins.add("text_distance", abs(d[order[budget - 1]] - d[order[budget]]))
            return sorted(order[:budget]), info

        # ACCM: CLS-attention outliers (IQR) ∪ question-guided picks, capped at the budget, filled to it.
        ratio, upper = outlier_ratio(attention)
        cls_count = int(n * ratio)
        values = attention.tolist()
        cls_idx = torch.tensor(ranked(values, True)[:cls_count], dtype=torch.long)
        margins.add("iqr_relative", min(abs(a - upper) / upper for a in values))
        picks = min(pruner.text_picks if pruner.text_picks is not None else default_text_picks(budget), n)
        d = distances.tolist()
        text_order = ranked(d, largest)
        text_idx = torch.tensor(text_order[:picks], dtype=torch.long)
        if picks < n:
            margins.add("text_distance", abs(d[text_order[picks - 1]] - d[text_order[picks]]))
        union = torch.unique(torch.cat([text_idx, cls_idx]))  # sorted
        info.update(outliers=cls_count, text_picks=picks, union=int(union.numel()))
        if union.numel() > budget:
            info["branch"] = "capped"
            if pruner.cap == "highest-index":
                kept = union[-budget:].tolist()  # the authors' code: the largest raster indices
            else:
                # The order inside both ranked lists decides which tokens survive the cap.
                margins.add("text_distance", *gaps([d[i] for i in text_order[:picks]]))
                margins.add("attention_log", *gaps([log_attention[i] for i in cls_idx.tolist()]))
                kept, seen_ = [], set()
                lists = [text_idx.tolist(), cls_idx.tolist()]
                for rank in range(max(len(lists[0]), len(lists[1]))):
                    for lst in lists:
                        if rank < len(lst) and len(kept) < budget and lst[rank] not in seen_:
                            seen_.add(lst[rank])
                            kept.append(lst[rank])
        else:
            info["branch"] = "filled" if union.numel() < budget else "exact"
            kept = union.tolist()
            taken = set(kept)
            kept += evenly_spaced(budget - len(kept), [i for i in range(n) if i not in taken])
        assert len(kept) == budget and len(set(kept)) == budget
        return sorted(kept), info

    # -- caption ------------------------------------------------------------------------------------------

    def generate_beam(self, embed: torch.Tensor, margins: Margins) -> list[dict]:
        """ClipCap's decoding_scheme.generate_beam (beam_size, entry_length, stop token, temperature 1),
        returning every beam (token ids, length-normalised score), best first."""
        model, tokenizer = self.gpt2, self.gpt2_tokenizer
        beam_size = self.beams
        stop_token_index = tokenizer.encode(self.stop_token)[0]
        tokens = None
        scores = None
        seq_lengths = torch.ones(beam_size)
        is_stopped = torch.zeros(beam_size, dtype=torch.bool)
        generated = embed
        for _ in range(self.caption_max_new_tokens):
            outputs = model(inputs_embeds=generated)
            logits = outputs.logits
            logits = logits[:, -1, :] / 1.0
            logits = logits.softmax(-1).log()
            if scores is None:
                top = logits[0].topk(beam_size + 1).values
                margins.add("beam_logprob", (top[beam_size - 1] - top[beam_size]).item())
                scores, next_tokens = logits.topk(beam_size, -1)
                generated = generated.expand(beam_size, *generated.shape[1:])
                next_tokens, scores = next_tokens.permute(1, 0), scores.squeeze(0)
                tokens = next_tokens
            else:
                logits[is_stopped] = -float(np.inf)
                logits[is_stopped, 0] = 0
                scores_sum = scores[:, None] + logits
                seq_lengths[~is_stopped] += 1
                scores_sum_average = scores_sum / seq_lengths[:, None]
                top = scores_sum_average.view(-1).topk(beam_size + 1).values
                if torch.isfinite(top[beam_size]):
                    margins.add("beam_logprob", (top[beam_size - 1] - top[beam_size]).item())
                scores_sum_average, next_tokens = scores_sum_average.view(-1).topk(beam_size, -1)
                next_tokens_source = next_tokens // scores_sum.shape[1]
                seq_lengths = seq_lengths[next_tokens_source]
                next_tokens = next_tokens % scores_sum.shape[1]
                next_tokens = next_tokens.unsqueeze(1)
                tokens = tokens[next_tokens_source]
                tokens = torch.cat((tokens, next_tokens), dim=1)
                generated = generated[next_tokens_source]
                scores = scores_sum_average * seq_lengths
                is_stopped = is_stopped[next_tokens_source]
            next_token_embed = model.transformer.wte(next_tokens.squeeze()).view(generated.shape[0], 1, -1)
            generated = torch.cat((generated, next_token_embed), dim=1)
            is_stopped = is_stopped + next_tokens.eq(stop_token_index).squeeze()
            if is_stopped.all():
                break
        scores = scores / seq_lengths
        order = scores.argsort(descending=True).tolist()
        ordered = [scores[i].item() for i in order]
        margins.add("beam_order", *gaps(ordered))
        out = []
        for i in order:
            ids = tokens[i, : int(seq_lengths[i].item())].tolist()
            out.append({
                "ids": ids,
                # The authors decode without skipping special tokens; the candidates here never hold one
                # (checked by the fixture script), so skipping or not gives the same text.
                "text": tokenizer.decode(ids),
                "beam_score": scores[i].item(),
                "stopped": bool(is_stopped[i].item()),
            })
        return out

    def caption(self, question: str, pruned: torch.Tensor, margins: Margins) -> list[dict]:
        prefix = self.mapper(pruned[None])  # [1, P, H]
        ids = self.gpt2_tokenizer.encode(question)
        parts = [self.gpt2.transformer.wte(torch.tensor(ids))[None]] if ids else []
        return self.generate_beam(torch.cat(parts + [prefix], dim=1), margins)

    # -- selector -----------------------------------------------------------------------------------------

    @staticmethod
    def selector_string(question: str, caption: str) -> str:
        return "Question: " + question.strip() + "  Supplemental information for questions: " + caption

    def select(self, question: str, captions: list[str], margins: Margins) -> tuple[list[float], int]:
        texts = [self.selector_string(question, c) for c in captions]
        context = self.selector_text.config.max_position_embeddings
        ids = self.selector_tokenizer(texts, padding="max_length", max_length=context, truncation=True,
                                      return_tensors="pt").input_ids
        embeddings = self.selector_text(input_ids=ids).text_embeds  # [C, D]
        scores = self.selector(embeddings[None])[0]
        top = sorted(scores.tolist(), reverse=True)
        if len(top) > 1:
            margins.add("selector", top[0] - top[1])
        return scores.tolist(), int(scores.argmax().item())

    # -- decoder ------------------------------------------------------------------------------------------

    def prompt_ids(self, question: str, caption: str | None) -> list[int]:
        """The input ids with one IMAGE_TOKEN_INDEX where the visual tokens go (llava_arch.py's insertion)."""
        ids = tokenizer_image_token(vicuna_v1_prompt(question), self.llama_tokenizer)
        if caption is not None:
            img_pos = ids.index(IMAGE_TOKEN_INDEX) + 3
            # The authors' +3 assumes the image line ends in "▁", "\n" right after the image.
            assert "\n" in self.llama_tokenizer.decode([ids[img_pos - 1]]), self.llama_tokenizer.convert_ids_to_tokens(ids)
            caption_ids = self.llama_tokenizer("additional information: " + caption).input_ids[1:]
            ids = ids[:img_pos] + caption_ids + ids[img_pos:]
        return ids

    def visual_features(self, pixels: torch.Tensor, kept: list[int]) -> torch.Tensor:
        """LLaVA's own vision tower (hidden_states[feature_layer], class token dropped) → projector, kept rows."""
        out = self.llava.model.vision_tower(pixel_values=pixels, output_hidden_states=True)
        features = out.hidden_states[self.feature_layer][0, 1:]
        return self.llava.model.multi_modal_projector(features[kept])

    def generate(self, ids: list[int], visual: torch.Tensor, max_new_tokens: int, margins: Margins) -> list[int]:
        embed = self.llava.get_input_embeddings()
        at = ids.index(IMAGE_TOKEN_INDEX)
        k = visual.shape[0]
        assert ids[at:at + 1] == [IMAGE_TOKEN_INDEX]
        parts = [embed(torch.tensor(ids[:at])), visual, embed(torch.tensor(ids[at + 1:]))]
        inputs = torch.cat(parts, dim=0)[None]
        assert inputs.shape[1] == len(ids) - 1 + k
        eos = self.llama_tokenizer.eos_token_id
        # Greedy with the KV cache, by hand (to see every step's margin).
        out = self.llava(inputs_embeds=inputs, use_cache=True)
        answer: list[int] = []
        for _ in range(max_new_tokens):
            logits = out.logits[0, -1]
            top = logits.topk(2)
            margins.add("greedy_logit", (top.values[0] - top.values[1]).item())
            token = int(top.indices[0].item())
            if token == eos:
                break
            answer.append(token)
            if len(answer) == max_new_tokens:
                break
            out = self.llava(input_ids=torch.tensor([[token]]), past_key_values=out.past_key_values, use_cache=True)
        # The same through model.generate.
        generated = self.llava.generate(
            inputs_embeds=inputs, attention_mask=torch.ones(inputs.shape[:2], dtype=torch.long),
            max_new_tokens=max_new_tokens, do_sample=False, num_beams=1, eos_token_id=eos,
            pad_token_id=eos)[0].tolist()
        if generated and generated[-1] == eos:
            generated = generated[:-1]
        assert generated == answer, (generated, answer)
        return answer

    # -- the whole pipeline -------------------------------------------------------------------------------

    def answer(self, image: Image.Image, question: str, budget: int, pruner: Pruner, compensate: bool = True,
               max_new_tokens: int = 8) -> dict:
        margins = Margins()
        pixels = self.pixels(image)
        seen = self.vision(pixels)
        guide = guiding_text(question)
        kept, info = self.keep(pruner, budget, seen, guide, margins)
        n = seen["patch_embeds"].shape[0]
        taken = set(kept)
        pruned_idx = [i for i in range(n) if i not in taken]
        result: dict = {"kept_indices": kept, "pruning": {k: v for k, v in info.items() if k != "distances"}}
        caption = None
        if compensate and pruned_idx:
            candidates = self.caption(guide, seen["patch_embeds"][pruned_idx], margins)
            scores, chosen = self.select(guide, [c["text"] for c in candidates], margins)
            caption = candidates[chosen]["text"]
            result.update(candidates=candidates, selector_scores=scores, chosen=chosen)
        else:
            result.update(candidates=[], selector_scores=[], chosen=None)
        result["caption"] = caption
        ids = self.prompt_ids(question, caption)
        at = ids.index(IMAGE_TOKEN_INDEX)
        result["prompt_ids"] = ids[:at] + [IMAGE_TOKEN_INDEX] * len(kept) + ids[at + 1:]
        visual = self.visual_features(pixels, kept)
        answer = self.generate(ids, visual, max_new_tokens, margins)
        result["answer_ids"] = answer
        result["answer_text"] = self.llama_tokenizer.decode(answer, skip_special_tokens=True)
        result["finish"] = "length" if len(answer) == max_new_tokens else "stop"
        result["margins"] = margins.summary()
        return result


def load_module(directory: str | Path) -> torch.nn.Module:
    """An ACCM module directory (Scripts/accm_modules.py): config.json + model.safetensors."""
    directory = Path(directory)
    config = json.loads((directory / "config.json").read_text())
    state = load_file(str(directory / "model.safetensors"))
    if config["model_type"] == "accm_caption_mapper":
        module = CaptionMapper(config["input_size"], config["hidden_size"], config["prefix_length"],
                               config["num_layers"], config.get("num_heads", 8), config.get("mlp_ratio", 2.0),
                               config.get("layer_norm_eps", 1e-5))
    elif config["model_type"] == "accm_caption_selector":
        assert config.get("hidden_act", "gelu") == "gelu"
        module = CaptionSelector(config["hidden_size"], config["num_heads"], config["intermediate_size"],
                                 config["num_layers"], config.get("layer_norm_eps", 1e-5))
    else:
        raise ValueError(f"unknown ACCM module type {config['model_type']!r} in {directory}")
    module.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return module.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--image", required=True)
    parser.add_argument("--keep", type=int, default=9)
    parser.add_argument("--pruner", default="accm",
                        choices=["none", "random", "uniform", "cls-attention", "text-guided", "accm"])
    parser.add_argument("--ranking", default="most-similar", choices=["most-similar", "least-similar"])
    parser.add_argument("--cap", default="score", choices=["score", "highest-index"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-caption", action="store_true")
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("question")
    args = parser.parse_args()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    reference = ACCMReference(args.model)
    result = reference.answer(Image.open(args.image), args.question, args.keep,
                              Pruner(args.pruner, args.seed, args.ranking, args.cap), not args.no_caption,
                              args.max_tokens)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
