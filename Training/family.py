"""The tiny model family's configurations, in one place.

Every training stage builds its model from here, so the shapes the Swift engine loads are decided once.
The family is sized for the synthetic world (64 x 64 images, 8 x 8 patches, a 48-word vocabulary) and a
2-core CPU: all components together stay within WEIGHT_BUDGET_MB of fp32 weights.

    python Training/family.py          # the budget table (parameters and MB per component)

Vocabulary sizes come from the trained tokenizers (Training/make_tokenizers.py) when they exist under
Training/artifacts/tokenizers/, else from the defaults below (the sizes those tokenizers have).

Components (the stage that trains each in brackets):
  clip        CLIPModel, vision 64/8 + text tower               [train_clip.py]
  projector   LLaVA mlp2x_gelu, CLIP hidden -> decoder width    [decoder visual stage]
  decoder     LlamaForCausalLM                                  [decoder text stage, then visual stage]
  caption_lm  GPT2LMHeadModel                                   [caption pre-training]
  mapper      accm_caption_mapper (ClipCap transformer mapper)  [caption pre-training, KL stage]
  selector    accm_caption_selector                             [KL stage]
"""

from __future__ import annotations

import json
from pathlib import Path

from transformers import CLIPConfig, CLIPTextConfig, CLIPVisionConfig, GPT2Config, LlamaConfig

ROOT = Path(__file__).resolve().parent
ARTIFACTS = ROOT / "artifacts"
TOKENIZERS = ARTIFACTS / "tokenizers"
WEIGHT_BUDGET_MB = 40.0

# Vocabulary sizes of the trained tokenizers (used until they exist; make_tokenizers.py prints the real ones).
DEFAULT_VOCAB = {"clip": 400, "gpt2": 400, "llama": 512}

IMAGE_SIZE = 64
PATCH_SIZE = 8
NUM_PATCHES = (IMAGE_SIZE // PATCH_SIZE) ** 2  # 64
CLIP_HIDDEN = 128
CLIP_PROJECTION = 64
CLIP_TEXT_CONTEXT = 32
DECODER_HIDDEN = 192
CAPTION_HIDDEN = 128
CAPTION_PREFIX = 8  # mapper prefix length (GPT-2 positions it uses)

OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def vocab_size(name: str) -> int:
    """The size of tokenizer `name` (len(tokenizer) incl. added tokens), from its tokenizer.json if trained."""
    path = TOKENIZERS / name / "tokenizer.json"
    if not path.exists():
        return DEFAULT_VOCAB[name]
    data = json.loads(path.read_text(encoding="utf-8"))
    ids = set(data["model"]["vocab"].values()) | {t["id"] for t in data.get("added_tokens", [])}
    return max(ids) + 1


def clip_config() -> CLIPConfig:
    vision = CLIPVisionConfig(
        image_size=IMAGE_SIZE, patch_size=PATCH_SIZE, num_channels=3, hidden_size=CLIP_HIDDEN,
        intermediate_size=4 * CLIP_HIDDEN, num_hidden_layers=4, num_attention_heads=4, hidden_act="quick_gelu",
        layer_norm_eps=1e-5, projection_dim=CLIP_PROJECTION)
    # CLIPTokenizer ids: <|startoftext|> and <|endoftext|> are the last two; pad = <|endoftext|>.
    n = vocab_size("clip")
    text = CLIPTextConfig(
        vocab_size=n, hidden_size=CLIP_HIDDEN, intermediate_size=4 * CLIP_HIDDEN, num_hidden_layers=4,
        num_attention_heads=4, max_position_embeddings=CLIP_TEXT_CONTEXT, hidden_act="quick_gelu",
        layer_norm_eps=1e-5, projection_dim=CLIP_PROJECTION, bos_token_id=n - 2, eos_token_id=n - 1,
        pad_token_id=n - 1)
    return CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=CLIP_PROJECTION,
                      logit_scale_init_value=2.6592)


def decoder_config() -> LlamaConfig:
    """The LLaVA language model (vicuna_v1 prompts): 4 layers, width 192; <image> is a tokenizer entry."""
    return LlamaConfig(
        vocab_size=vocab_size("llama"), hidden_size=DECODER_HIDDEN, intermediate_size=512, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256, rms_norm_eps=1e-5,
        rope_theta=10000.0, hidden_act="silu", tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)


def projector_shapes() -> dict:
    """LLaVA-1.5 mlp2x_gelu: Linear(CLIP hidden, D) -> GELU -> Linear(D, D), on penultimate-layer features."""
    return {"mm_projector_type": "mlp2x_gelu", "mm_hidden_size": CLIP_HIDDEN, "hidden_size": DECODER_HIDDEN,
            "mm_vision_select_layer": -2, "mm_vision_select_feature": "patch"}


def caption_lm_config() -> GPT2Config:
    return GPT2Config(
        vocab_size=vocab_size("gpt2"), n_positions=96, n_embd=CAPTION_HIDDEN, n_layer=3, n_head=4,
        activation_function="gelu_new", bos_token_id=vocab_size("gpt2") - 1, eos_token_id=vocab_size("gpt2") - 1)


def mapper_config() -> dict:
    """config.json of the caption mapper (Sources/Models/CaptionMapper.swift): pruned patches' projected
    CLIP embeddings (projection_dim) -> prefix of GPT-2 embeddings."""
    return {"model_type": "accm_caption_mapper", "input_size": CLIP_PROJECTION, "hidden_size": CAPTION_HIDDEN,
            "prefix_length": CAPTION_PREFIX, "num_layers": 2, "num_heads": 4, "mlp_ratio": 2.0, "layer_norm_eps": 1e-5}


def selector_config() -> dict:
    """config.json of the caption selector (Sources/Models/CaptionSelector.swift), over CLIP text embeddings."""
    return {"model_type": "accm_caption_selector", "hidden_size": CLIP_PROJECTION, "num_heads": 4,
            "intermediate_size": 4 * CLIP_PROJECTION, "num_layers": 2, "layer_norm_eps": 1e-5, "hidden_act": "gelu"}


# ------------------------------------------------------------------------------------------------
# Parameter counts (from the shapes; the HF ones are checked against instantiated models in main()).
# ------------------------------------------------------------------------------------------------


def count_projector() -> int:
    p = projector_shapes()
    return p["mm_hidden_size"] * p["hidden_size"] + p["hidden_size"] + p["hidden_size"] ** 2 + p["hidden_size"]


def count_mapper() -> int:
    c = mapper_config()
    i, h, f, n = c["input_size"], c["hidden_size"], int(c["hidden_size"] * c["mlp_ratio"]), c["num_layers"]
    per_layer = 4 * h + h * h + 2 * h * h + h * h + h + h * f + f + f * h + h  # norms, q, kv, proj(+b), fc1, fc2
    return i * h + h + c["prefix_length"] * h + n * per_layer


def count_selector() -> int:
    c = selector_config()
    h, f, n = c["hidden_size"], c["intermediate_size"], c["num_layers"]
    per_layer = 4 * h + 3 * h * h + 3 * h + h * h + h + h * f + f + f * h + h
    return n * per_layer + h + 1


def budget() -> list[tuple[str, int]]:
    import torch
    from transformers import CLIPModel, GPT2LMHeadModel, LlamaForCausalLM

    torch.manual_seed(0)

    def n(model) -> int:
        return sum(p.numel() for p in model.parameters())

    clip = CLIPModel(clip_config())
    rows = [
        ("clip.vision (+visual_projection)", n(clip.vision_model) + n(clip.visual_projection)),
        ("clip.text (+text_projection)", n(clip.text_model) + n(clip.text_projection)),
        ("projector (mlp2x_gelu)", count_projector()),
        ("decoder (LLaMA)", n(LlamaForCausalLM(decoder_config()))),
        ("caption_lm (GPT-2, tied head)", n(GPT2LMHeadModel(caption_lm_config()))),
        ("mapper", count_mapper()),
        ("selector", count_selector()),
    ]
    return rows


def main() -> None:
    rows = budget()
    total = sum(r[1] for r in rows)
    vocab = {k: vocab_size(k) for k in DEFAULT_VOCAB}
    trained = {k: (TOKENIZERS / k / "tokenizer.json").exists() for k in DEFAULT_VOCAB}
    print("vocabularies:", ", ".join(f"{k} {v}{'' if trained[k] else ' (default; tokenizer not trained)'}"
                                     for k, v in vocab.items()))
    print(f"{'component':36s} {'params':>10s} {'fp32 MB':>8s}")
    for name, count in rows:
        print(f"{name:36s} {count:10,d} {count * 4 / 1e6:8.2f}")
    print(f"{'total':36s} {total:10,d} {total * 4 / 1e6:8.2f}   (budget {WEIGHT_BUDGET_MB:.0f} MB)")
    assert total * 4 / 1e6 <= WEIGHT_BUDGET_MB, "over the family's weight budget"


if __name__ == "__main__":
    main()
