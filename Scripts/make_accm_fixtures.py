"""Build Tests/Fixtures/accm/: a complete tiny ACCM model directory with seeded random weights, a few
images, and the answers of Scripts/accm_reference.py for a matrix of cases (reference.json).

    model/                 the layout of Sources/ACCM/ModelDirectory.swift
      accm.json
      vision/              CLIPModel: 48 px / patch 8 (36 patches), width 32, 3 layers, projection 16;
                           text tower context 20 on the clip fixture tokenizer; preprocessor_config.json
      caption/mapper/      CaptionMapper 16 → 32, prefix 4, 2 layers
      caption/gpt2/        GPT2LMHeadModel, width 32, 2 layers, the gpt2 fixture tokenizer
      selector/text/       CLIPTextModelWithProjection, context 64, projection 24, the clip fixture tokenizer
      selector/scorer/     CaptionSelector, width 24, 2 layers
      llava/               LlavaForConditionalGeneration: the vision/ tower's weights, projector 32 → 48,
                           2-layer LLaMA width 48 on the llama fixture tokenizer
    images/*.png           crops of Training/test images (square, landscape, portrait)
    reference.json         every case's kept indices, candidates, selector scores, prompt ids, answer ids,
                           and the decision margins (the smallest is checked to exceed MIN_MARGIN)

Nothing is downloaded. Run from anywhere: /root/venv-accm/bin/python Scripts/make_accm_fixtures.py
(`--seed N` builds the weights from another seed; `--search K` tries K seeds from --seed on and keeps the
first whose every decision margin exceeds MIN_MARGIN.)
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn
from transformers import (
    CLIPConfig,
    CLIPModel,
    CLIPTextConfig,
    CLIPTextModelWithProjection,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    PreTrainedTokenizerFast,
)
from transformers import logging as hf_logging

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accm_modules import CaptionMapper, CaptionSelector  # noqa: E402
from accm_reference import ACCMReference, Pruner, guiding_text  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "Tests" / "Fixtures" / "accm"
TOKENIZERS = ROOT / "Tests" / "Fixtures" / "tokenizers"
TRAINING_IMAGES = ROOT / "Training" / "test" / "images"

DEFAULT_SEED = 17
MIN_MARGIN = 1e-3
MAX_NEW_TOKENS = 8
CAPTION_MAX_NEW_TOKENS = 6
GPT2_STD = 1.2
SELECTOR_CONTEXT = 96
LLAMA_STD = 0.5
# GPT-2's last hidden feature is made constant (ln_f weight 0, bias GPT2_BIAS_FEATURE), so the tied
# embedding's last column acts as a per-token logit bias: tokens that are not plain ASCII words get a large
# negative one (the small CLIP tokenizer maps characters it does not know to <|endoftext|>, which would end
# every selector text there), "." a positive one so that some beams stop.
GPT2_BIAS_FEATURE = 4.0
GPT2_NON_WORD_BIAS = -2.5
GPT2_STOP_BIAS = 4.5

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

VISION = dict(image_size=48, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
              num_attention_heads=4, hidden_act="quick_gelu", layer_norm_eps=1e-5)
# The clip fixture tokenizer: 1456 ids, <|startoftext|> 1454, <|endoftext|> 1455 (also the pad token).
CLIP_TEXT = dict(vocab_size=1456, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                 hidden_act="quick_gelu", layer_norm_eps=1e-5, bos_token_id=1454, eos_token_id=1455,
                 pad_token_id=1455)

IMAGES = {
    # name: (source, crop box or None)
    "square_64x64.png": ("00000.png", None),
    "landscape_64x40.png": ("00001.png", (0, 12, 64, 52)),
    "portrait_36x60.png": ("00002.png", (14, 0, 50, 60)),
    "square_57x57.png": ("00003.png", (4, 4, 61, 61)),
}
QUESTIONS = [
    "What color is the cross?",
    "How many triangles are there?\nAnswer the question using a single word or phrase.",
    # Longer than the vision text tower's context (20): truncated there, whole in the selector's (64).
    "Is the small blue triangle at the top left above or below the large red ring near the bottom of the image?",
]
# Text rules checked without running the models: the guiding text (first line; "\r\n" ends a line at its
# "\n", as Python's split does), the selector text (Python's str.strip, whose whitespace includes
# U+001C-U+001F), and the decoder prompt (special-token text inside the question or caption is tokenized
# as transformers does, and only the leading BOS of a chunk is dropped).
TEXT_CHECKS = [
    ("What is this?\r\nAnswer the question using a single word or phrase.", "a red cube."),
    ("  Is there a <s> in it? ", None),
    ("\x1cHow many circles?\x1f\nAnswer briefly.", "two </s> circles <s> here."),
    ("\u3000Where is it?\u2003", "it is at the top left"),
]
PRUNERS = [
    Pruner("none"),
    Pruner("random", seed=3),
    Pruner("uniform"),
    Pruner("cls-attention"),
    Pruner("text-guided", ranking="most-similar"),
    Pruner("text-guided", ranking="least-similar"),
    Pruner("accm", ranking="most-similar", cap="score"),
    Pruner("accm", ranking="least-similar", cap="highest-index"),
]


def cases() -> list[dict]:
    """25 cases: every pruner at both budgets with a caption, some without, ACCM on every image."""
    images = list(IMAGES)
    out = []

    def add(image: int, question: int, budget: int, pruner: Pruner, compensate: bool) -> None:
        name = pruner.method + ("-" + pruner.ranking if pruner.method == "text-guided" else "")
        if pruner.method == "accm":
            name += f"-{pruner.cap}-{pruner.ranking}"
        if pruner.method == "random":
            name += f"-{pruner.seed}"
        out.append({
            "id": f"{len(out):02d}-{name}-k{budget}-{'caption' if compensate else 'nocaption'}",
            "image": images[image], "question": QUESTIONS[question], "budget": budget,
            "pruner": pruner.to_json(), "compensate": compensate, "max_new_tokens": MAX_NEW_TOKENS,
        })

    # No pruning: nothing is pruned, so there is never a caption (also when one is asked for).
    add(0, 0, 4, PRUNERS[0], False)
    add(1, 1, 9, PRUNERS[0], False)
    add(2, 2, 9, PRUNERS[0], True)
    # Every pruner at both budgets, with a caption.
    for p, pruner in enumerate(PRUNERS[1:], start=1):
        for b, budget in enumerate((4, 9)):
            add((p + b) % 4, (2 * p + b) % 3, budget, pruner, True)
    # Pruning alone.
    add(2, 0, 9, PRUNERS[1], False)
    add(3, 1, 4, PRUNERS[3], False)
    add(0, 2, 9, PRUNERS[5], False)
    add(1, 0, 4, PRUNERS[6], False)
    # ACCM on the images and questions the loop above left out.
    add(0, 2, 9, PRUNERS[6], True)
    add(1, 1, 4, PRUNERS[6], True)
    add(1, 2, 4, PRUNERS[7], True)
    add(2, 1, 9, PRUNERS[7], True)
    return out


# ---------------------------------------------------------------------------------------------------------
# Models


def is_norm(module: nn.Module) -> bool:
    return isinstance(module, nn.LayerNorm) or "RMSNorm" in type(module).__name__


@torch.no_grad()
def randomize(model: nn.Module, gen: torch.Generator, std: float) -> None:
    """Norm weights ~ 1 + N(0, 0.1); matrices and embeddings ~ N(0, std); vectors ~ N(0, 0.1)."""
    seen = set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if param.dim() == 0 or id(param) in seen:
                continue
            seen.add(id(param))
            if is_norm(module) and name == "weight":
                param.normal_(0.0, 0.1, generator=gen).add_(1.0)
            elif param.dim() >= 2:
                param.normal_(0.0, std, generator=gen)
            else:
                param.normal_(0.0, 0.1, generator=gen)


def build(seed: int, factory, std: float) -> nn.Module:
    torch.manual_seed(seed)
    model = factory()
    randomize(model, torch.Generator().manual_seed(seed), std)
    return model.eval()


def copy_tokenizer(name: str, to: Path) -> None:
    for file in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(TOKENIZERS / name / file, to / file)


def save_module(module, to: Path) -> None:
    to.mkdir(parents=True, exist_ok=True)
    (to / "config.json").write_text(json.dumps(module.config(), indent=2) + "\n")
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(to / "model.safetensors"))


@torch.no_grad()
def steer_to_words(gpt2: GPT2LMHeadModel) -> None:
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(TOKENIZERS / "gpt2" / "tokenizer.json"))
    words = re.compile(r"^ ?[A-Za-z]+[.,?]?$")
    j = gpt2.config.n_embd - 1
    gpt2.transformer.ln_f.weight[j] = 0.0
    gpt2.transformer.ln_f.bias[j] = GPT2_BIAS_FEATURE
    wte = gpt2.transformer.wte.weight
    for token in range(wte.shape[0]):
        if not words.match(tokenizer.decode([token])):
            wte[token, j] = GPT2_NON_WORD_BIAS
    wte[tokenizer.convert_tokens_to_ids("."), j] = GPT2_STOP_BIAS


def make_model(directory: Path, seed: int) -> None:
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)

    # vision/: the pruner's CLIP (both towers); its vision tower also feeds the language model.
    clip_config = CLIPConfig(text_config=dict(CLIP_TEXT, max_position_embeddings=20), vision_config=VISION,
                             projection_dim=16)
    clip = build(seed, lambda: CLIPModel(clip_config), 0.2)
    clip.save_pretrained(directory / "vision")
    copy_tokenizer("clip", directory / "vision")
    (directory / "vision" / "preprocessor_config.json").write_text(json.dumps({
        "crop_size": {"height": 48, "width": 48}, "do_center_crop": True, "do_convert_rgb": True,
        "do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": CLIP_MEAN, "image_std": CLIP_STD,
        "image_processor_type": "CLIPImageProcessor", "resample": 3, "rescale_factor": 1 / 255,
        "size": {"shortest_edge": 48},
    }, indent=2) + "\n")

    # caption/: the mapper and GPT-2 (vocabulary of the gpt2 fixture tokenizer: 1549 ids).
    mapper = build(seed + 1, lambda: CaptionMapper(16, 32, 4, 2, num_heads=4, mlp_ratio=2.0), 0.2)
    save_module(mapper, directory / "caption" / "mapper")
    gpt2_config = GPT2Config(vocab_size=1549, n_positions=64, n_embd=32, n_layer=2, n_head=4, bos_token_id=0,
                             eos_token_id=0, activation_function="gelu_new")
    gpt2 = build(seed + 2, lambda: GPT2LMHeadModel(gpt2_config), GPT2_STD)
    steer_to_words(gpt2)
    gpt2.save_pretrained(directory / "caption" / "gpt2")
    copy_tokenizer("gpt2", directory / "caption" / "gpt2")

    # selector/: a CLIP text tower with projection (LongCLIP's role) and the scorer.
    text_config = CLIPTextConfig(**CLIP_TEXT, max_position_embeddings=SELECTOR_CONTEXT, projection_dim=24)
    text = build(seed + 3, lambda: CLIPTextModelWithProjection(text_config), 0.2)
    text.save_pretrained(directory / "selector" / "text")
    copy_tokenizer("clip", directory / "selector" / "text")
    selector = build(seed + 4, lambda: CaptionSelector(24, 2, 48, 2), 0.3)
    save_module(selector, directory / "selector" / "scorer")

    # llava/: vision tower = vision/'s, projector 32 → 48, LLaMA on the llama fixture tokenizer (2003 ids).
    llava_config = LlavaConfig(
        vision_config=dict(VISION, model_type="clip_vision_model"),
        text_config=LlamaConfig(vocab_size=2003, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                                bos_token_id=1, eos_token_id=2, rms_norm_eps=1e-6, tie_word_embeddings=False),
        image_token_index=2000, projector_hidden_act="gelu", vision_feature_layer=-2,
        vision_feature_select_strategy="default", image_seq_length=36)
    llava = build(seed + 5, lambda: LlavaForConditionalGeneration(llava_config), LLAMA_STD)
    tower = llava.model.vision_tower.state_dict()
    source = clip.vision_model.state_dict()
    tower_keys = {k.removeprefix("vision_model."): k for k in tower}
    assert set(tower_keys) == set(source), sorted(set(tower_keys) ^ set(source))
    llava.model.vision_tower.load_state_dict({tower_keys[k]: v for k, v in source.items()}, strict=True)
    llava.generation_config.eos_token_id = 2
    llava.generation_config.pad_token_id = 2
    llava.save_pretrained(directory / "llava")
    copy_tokenizer("llama", directory / "llava")

    (directory / "accm.json").write_text(json.dumps({
        "format": 1, "vision": "vision", "caption_mapper": "caption/mapper", "caption_language_model": "caption/gpt2",
        "selector_text_encoder": "selector/text", "selector": "selector/scorer", "llava": "llava",
        "image_aspect_ratio": "pad", "vision_feature_layer": -2, "caption_stop": ".", "caption_beams": 3,
        "caption_max_new_tokens": CAPTION_MAX_NEW_TOKENS,
    }, indent=2) + "\n")


def make_images(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, (source, box) in IMAGES.items():
        image = Image.open(TRAINING_IMAGES / source).convert("RGB")
        if box is not None:
            image = image.crop(box)
        image.save(directory / name, optimize=True)


# ---------------------------------------------------------------------------------------------------------
# References


def run_cases(reference: ACCMReference, images: Path) -> list[dict]:
    results = []
    for case in cases():
        image = Image.open(images / case["image"])
        result = reference.answer(image, case["question"], case["budget"], Pruner.from_json(case["pruner"]),
                                  case["compensate"], case["max_new_tokens"])
        results.append({**case, **result})
    return results


def check(results: list[dict], reference: ACCMReference) -> list[str]:
    """What the fixture must show; returns the problems (empty when it is good)."""
    problems = []
    for r in results:
        for kind, margin in r["margins"].items():
            if margin <= MIN_MARGIN:
                problems.append(f"{r['id']}: {kind} margin {margin:.2e}")
        for c in r["candidates"]:
            if any(i in reference.gpt2_tokenizer.all_special_ids for i in c["ids"]):
                problems.append(f"{r['id']}: candidate holds a special token {c['ids']}")
        for c in r["candidates"]:
            text = reference.selector_string(r["question"].split("\n")[0], c["text"])
            if len(reference.selector_tokenizer(text).input_ids) > SELECTOR_CONTEXT:
                problems.append(f"{r['id']}: a selector text is longer than the selector's context")
        texts = [c["text"] for c in r["candidates"]]
        if len(set(texts)) != len(texts):
            problems.append(f"{r['id']}: two candidates have the same text")
    branches = {(r["pruner"].get("cap"), r["pruning"].get("branch")) for r in results if r["pruner"]["method"] == "accm"}
    for cap in ("score", "highest-index"):
        if (cap, "capped") not in branches:
            problems.append(f"no accm case with cap {cap} is capped")
        if (cap, "filled") not in branches:
            problems.append(f"no accm case with cap {cap} is filled")
    captioned = [r for r in results if r["candidates"]]
    if not any(c["stopped"] and len(c["ids"]) < CAPTION_MAX_NEW_TOKENS for r in captioned for c in r["candidates"]):
        problems.append("no beam stops at the stop token before the last step (frozen beams are not exercised)")
    if not any(not c["stopped"] for r in captioned for c in r["candidates"]):
        problems.append("every beam stops at the stop token")
    if len({r["chosen"] for r in captioned}) < 2:
        problems.append("the selector always picks the same candidate index")
    if min(len(r["answer_ids"]) for r in results) < 2:
        problems.append("an answer is shorter than 2 tokens")
    return problems


def text_checks(reference: ACCMReference) -> list[dict]:
    out = []
    for question, caption in TEXT_CHECKS:
        guide = guiding_text(question)
        out.append({
            "question": question, "caption": caption, "guiding_text": guide,
            "selector_text": reference.selector_string(guide, caption if caption is not None else ""),
            "prompt_ids": reference.prompt_ids(question, caption),
        })
    return out


def global_margins(results: list[dict]) -> dict[str, float]:
    out: dict[str, float] = {}
    for r in results:
        for kind, margin in r["margins"].items():
            out[kind] = min(out.get(kind, float("inf")), margin)
    return dict(sorted(out.items()))


def write_readme(out: Path, results: list[dict], seed: int) -> None:
    questions = {q: f"q{i}" for i, q in enumerate(QUESTIONS)}
    rows = []
    for r in results:
        p = r["pruner"]
        method = p["method"] + "".join(f" {p[k]}" for k in ("seed", "ranking", "cap") if k in p)
        branch = r["pruning"].get("branch", "")
        if branch:
            branch = f"{branch} ({r['pruning']['outliers']} outliers ∪ {r['pruning']['text_picks']} text picks)"
        caption = "yes" if r["candidates"] else ("asked, nothing pruned" if r["compensate"] else "no")
        rows.append(f"| {r['id'][:2]} | {r['image']} | {questions[r['question']]} | {r['budget']} | {method} | {branch} "
                    f"| {caption} | {len(r['answer_ids'])} ({r['finish']}) |")
    margins = global_margins(results)
    text = f"""# ACCM pipeline parity fixture

Every file in this directory (this README included) is generated by `Scripts/make_accm_fixtures.py`
(seed {seed}); never edit them by hand. To regenerate (byte-for-byte deterministic):
`/root/venv-accm/bin/python Scripts/make_accm_fixtures.py` (any environment with `Scripts/requirements.txt`).

- `model/`: a complete ACCM model directory in the layout of `Sources/ACCM/ModelDirectory.swift`, every
  component a tiny seeded random model in Hugging Face layout (f32 safetensors), tokenizers copied from
  `Tests/Fixtures/tokenizers/` (clip, gpt2, llama). `llava/`'s vision tower has exactly `vision/`'s weights.
  GPT-2's last hidden feature is held constant so that its embedding column acts as a per-token bias: it
  keeps captions to plain ASCII word pieces (the small CLIP tokenizer maps characters it does not know to
  `<|endoftext|>`, which would end every selector text there) and makes "." likely enough that beams stop.
- `images/`: crops of `Training/test/images` (square, landscape and portrait, so pad mode matters).
- `reference.json`: for every case, what `Scripts/accm_reference.py` (transformers + the authors' ACCM
  code) produces: kept indices, the 3 candidate captions (ids, text, beam score), selector scores and the
  chosen index, the decoder prompt ids (−200 once per visual token), the greedy answer ids and text; then
  `text_checks` (guiding text, selector text and prompt ids for awkward questions and captions).
  `Tests/ACCMTests/ACCMReferenceParityTests.swift` runs every case through `ACCMPipeline.load` +
  `answer` from the PNG bytes.

Every decision is kept at least {MIN_MARGIN:g} away from a tie (the script tries seeds until it is), so a
float difference of 1e-6 cannot flip an id. Smallest margins (units in `reference.json`'s `margin_units`):
{", ".join(f"{k} {v:.4g}" for k, v in margins.items())}.

Questions: {"; ".join(f"q{i} = {json.dumps(q)}" for i, q in enumerate(QUESTIONS))}.

| # | image | question | budget | pruner | ACCM selection | caption | answer tokens |
|---|---|---|---|---|---|---|---|
""" + "\n".join(rows) + "\n"
    (out / "README.md").write_text(text)


def fixture_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--search", type=int, default=1, help="seeds to try, from --seed on")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    torch.set_num_threads(1)

    make_images(args.out / "images")
    for seed in range(args.seed, args.seed + args.search):
        make_model(args.out / "model", seed)
        reference = ACCMReference(args.out / "model")
        results = run_cases(reference, args.out / "images")
        problems = check(results, reference)
        print(f"seed {seed}: {len(problems)} problem(s); margins {global_margins(results)}")
        for p in problems[:20]:
            print("   ", p)
        if not problems:
            break
    else:
        raise SystemExit("no seed gives a fixture without problems")

    document = {
        "generator": "Scripts/make_accm_fixtures.py (reference: Scripts/accm_reference.py)",
        "seed": seed,
        "min_margin_required": MIN_MARGIN,
        "min_margins": global_margins(results),
        "margin_units": {
            "attention_log": "pre-softmax CLS logits q·k/sqrt(C) (differences of log-attention) at a top-k boundary "
                             "or between neighbours of a ranked list whose order matters",
            "iqr_relative": "|attention − (Q3 + 1.5·IQR)| / (Q3 + 1.5·IQR), the closest patch to the outlier bound",
            "text_distance": "2 − 2·cos at a top-k boundary or between neighbours of a ranked list whose order matters",
            "beam_logprob": "length-normalised log-probability, 3rd best vs 4th best (beam, token) at each step",
            "beam_order": "final length-normalised scores of neighbouring candidates",
            "selector": "best vs second-best selector logit",
            "greedy_logit": "best vs second-best LLaMA logit at each answer token",
        },
        "image_token_placeholder": -200,
        "cases": results,
        "text_checks": text_checks(reference),
    }
    (args.out / "reference.json").write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
    write_readme(args.out, results, seed)
    size = fixture_size(args.out)
    print(f"{len(results)} cases; {args.out} holds {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
