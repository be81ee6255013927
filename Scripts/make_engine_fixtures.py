"""Generate the numerical parity fixtures under Tests/Fixtures/engine/.

Every fixture is a tiny model with random (seeded) weights, saved in Hugging
Face layout (config.json + safetensors), plus `reference.safetensors` holding
the inputs and the reference outputs that PyTorch computes for them in float32.
Nothing is downloaded: all models are built from configs.

Usage:  python Scripts/make_engine_fixtures.py [fixture ...]   (default: every fixture)
See Tests/Fixtures/engine/README.md for the list of fixtures.
"""

import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn
from transformers import (
    CLIPConfig,
    CLIPModel,
    CLIPVisionConfig,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    LlavaConfig,
    LlavaForConditionalGeneration,
)
from transformers import logging as hf_logging

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accm_modules import CaptionMapper, CaptionSelector  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "Tests" / "Fixtures" / "engine"

SEED = 0

# Shared by the clip and llava fixtures.
VISION_CONFIG = dict(
    image_size=30,
    patch_size=6,  # 5x5 = 25 patches + CLS = 26 tokens
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=3,
    num_attention_heads=4,
    hidden_act="quick_gelu",
    layer_norm_eps=1e-5,
)


def is_norm(module: nn.Module) -> bool:
    return isinstance(module, nn.LayerNorm) or "RMSNorm" in type(module).__name__


@torch.no_grad()
def randomize(model: nn.Module, gen: torch.Generator) -> None:
    """Re-initialise every parameter so that the fixtures are not trivial.

    Norm weights ~ 1 + N(0, 0.1); all other matrices / embeddings ~ N(0, 0.2);
    biases and other vectors ~ N(0, 0.1). Scalars (e.g. CLIP's logit_scale)
    are left alone. Tied parameters are drawn once.
    """
    seen = set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if param.dim() == 0 or id(param) in seen:
                continue
            seen.add(id(param))
            if is_norm(module) and name == "weight":
                param.normal_(0.0, 0.1, generator=gen).add_(1.0)
            elif param.dim() >= 2:
                param.normal_(0.0, 0.2, generator=gen)
            else:
                param.normal_(0.0, 0.1, generator=gen)


def new_model(build, *args) -> tuple[nn.Module, torch.Generator]:
    """Build a model under torch.manual_seed(SEED), then randomize it.

    The re-initialisation and the fixture inputs draw from a dedicated
    generator, so they do not depend on how many random numbers the library's
    own initialisation consumes.
    """
    torch.manual_seed(SEED)
    model = build(*args)
    gen = torch.Generator().manual_seed(SEED)
    randomize(model, gen)
    return model.eval(), gen


def randint(gen, low, high, shape) -> torch.Tensor:
    """Random int64 ids in [low, high] (inclusive)."""
    return torch.randint(low, high + 1, shape, generator=gen, dtype=torch.int64)


def fixture_dir(name: str) -> Path:
    path = OUT / name
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def check_finite(reference: dict, max_abs: float = 50.0) -> None:
    for name, tensor in reference.items():
        if tensor.is_floating_point():
            assert torch.isfinite(tensor).all(), f"{name} has NaN/inf"
            assert tensor.abs().max() < max_abs, f"{name} magnitude {tensor.abs().max():.1f} >= {max_abs}"


def save_reference(path: Path, reference: dict) -> None:
    check_finite(reference)
    tensors = {}
    for name, tensor in reference.items():
        tensor = tensor.detach()
        tensor = tensor.float() if tensor.is_floating_point() else tensor.to(torch.int64)
        # clone: some outputs alias each other (e.g. hidden_states[-1] and
        # last_hidden_state), which save_file refuses.
        tensors[name] = tensor.contiguous().clone()
    save_file(tensors, str(path / "reference.safetensors"))


def save_module(path: Path, module: nn.Module) -> None:
    """Save an ACCM module: hand-written config.json + its state_dict."""
    (path / "config.json").write_text(json.dumps(module.config(), indent=2) + "\n")
    state = {k: v.contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(path / "model.safetensors"))


def round_weights(model: nn.Module, dtype: torch.dtype) -> None:
    """Convert the parameters to `dtype` in place, for saving in that dtype.

    Buffers are left in float32 on purpose: `model.to(dtype)` would also
    round the RoPE `inv_freq` buffer, which HF keeps in float32 when it loads
    a half-precision checkpoint, and the reference would then be off.
    """
    for param in model.parameters():
        param.data = param.data.to(dtype)
    model.config.dtype = dtype


def causal_lm_reference(model, gen, input_ids, hidden: int, embeds_len: int | None) -> dict:
    out = model(input_ids=input_ids, output_hidden_states=True)
    reference = {"input_ids": input_ids, "logits": out.logits}
    for i, h in enumerate(out.hidden_states):
        reference[f"hidden_states.{i}"] = h
    if embeds_len is not None:
        embeds = torch.randn(1, embeds_len, hidden, generator=gen) * 0.5
        reference["embeds.input"] = embeds
        reference["embeds.logits"] = model(inputs_embeds=embeds).logits
    return reference


# --------------------------------------------------------------------- fixtures


def make_clip() -> None:
    path = fixture_dir("clip")
    config = CLIPConfig(
        vision_config=VISION_CONFIG,
        text_config=dict(
            vocab_size=100,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=20,
            hidden_act="quick_gelu",
            eos_token_id=99,
            bos_token_id=98,
            pad_token_id=0,
        ),
        projection_dim=16,
    )
    model, gen = new_model(CLIPModel, config)
    model.save_pretrained(path)

    ref = {}
    # Vision tower.
    pixel_values = torch.randn(2, 3, 30, 30, generator=gen)
    ref["pixel_values"] = pixel_values
    vision = model.vision_model
    captured = {}
    last_attn = vision.encoder.layers[-1].self_attn
    hooks = [
        last_attn.q_proj.register_forward_hook(lambda m, i, o: captured.__setitem__("q", o)),
        last_attn.k_proj.register_forward_hook(lambda m, i, o: captured.__setitem__("k", o)),
    ]
    vout = vision(pixel_values=pixel_values, output_hidden_states=True)
    for hook in hooks:
        hook.remove()
    # hidden_states[0] is the embedding output after pre_layrnorm.
    for i, h in enumerate(vout.hidden_states):
        ref[f"vision.hidden_states.{i}"] = h
    ref["vision.last_hidden_state"] = vout.last_hidden_state
    q, k = captured["q"], captured["k"]
    ref["vision.last_layer_q"] = q
    ref["vision.last_layer_k"] = k
    # LLaVA-PruMerge: CLS -> patch attention as a single head over the full width.
    attention = torch.softmax(q @ k.transpose(1, 2) / q.shape[-1] ** 0.5, dim=-1)
    ref["vision.cls_attention"] = attention[:, 0, 1:]
    ref["vision.token_embeds"] = model.visual_projection(vision.post_layernorm(vout.last_hidden_state))
    ref["vision.image_embeds"] = model.get_image_features(pixel_values=pixel_values).pooler_output

    # Text tower: row 0 is padded after EOS, row 1 fills the whole context.
    input_ids = torch.zeros(2, 20, dtype=torch.int64)
    input_ids[0, :14] = torch.cat([torch.tensor([98]), randint(gen, 1, 97, (12,)), torch.tensor([99])])
    input_ids[1] = torch.cat([torch.tensor([98]), randint(gen, 1, 97, (18,)), torch.tensor([99])])
    ref["text.input_ids"] = input_ids
    tout = model.text_model(input_ids=input_ids)  # no attention_mask on purpose
    eos_positions = torch.tensor([13, 19])
    assert torch.equal(tout.pooler_output, tout.last_hidden_state[torch.arange(2), eos_positions]), (
        "HF CLIP does not pool at the first EOS (99) for this config"
    )
    ref["text.last_hidden_state"] = tout.last_hidden_state
    ref["text.pooled"] = tout.pooler_output
    ref["text.text_embeds"] = model.text_projection(tout.pooler_output)
    save_reference(path, ref)


def make_gpt2() -> None:
    path = fixture_dir("gpt2")
    config = GPT2Config(
        vocab_size=120,
        n_positions=64,
        n_embd=32,
        n_layer=3,
        n_head=4,
        activation_function="gelu_new",
        layer_norm_epsilon=1e-5,
        # GPT-2's defaults (50256) lie outside this vocabulary.
        bos_token_id=119,
        eos_token_id=119,
    )
    model, gen = new_model(GPT2LMHeadModel, config)
    model.save_pretrained(path)
    input_ids = randint(gen, 0, 119, (2, 10))
    # The last hidden state has ln_f applied (as HF returns it).
    save_reference(path, causal_lm_reference(model, gen, input_ids, hidden=32, embeds_len=7))


def make_llama() -> None:
    path = fixture_dir("llama")
    config = LlamaConfig(
        vocab_size=128,
        hidden_size=48,
        intermediate_size=96,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,  # GQA
        head_dim=12,
        max_position_embeddings=128,
        rope_theta=500000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        hidden_act="silu",
        attention_bias=False,
        mlp_bias=False,
    )
    model, gen = new_model(LlamaForCausalLM, config)
    round_weights(model, torch.bfloat16)
    model.save_pretrained(path)
    model.float()  # reference in float32 from the bf16-rounded weights
    input_ids = randint(gen, 0, 127, (2, 9))
    # The last hidden state has the final norm applied (as HF returns it).
    save_reference(path, causal_lm_reference(model, gen, input_ids, hidden=48, embeds_len=8))


def make_gpt2_bf16() -> None:
    """GPT-2 with bf16 weights on disk (Conv1D `[in, out]` in bf16), reference in float32 from them."""
    path = fixture_dir("gpt2_bf16")
    config = GPT2Config(
        vocab_size=96,
        n_positions=32,
        n_embd=64,
        n_layer=2,
        n_head=4,
        activation_function="gelu_new",
        layer_norm_epsilon=1e-5,
        bos_token_id=95,
        eos_token_id=95,
    )
    model, gen = new_model(GPT2LMHeadModel, config)
    round_weights(model, torch.bfloat16)
    model.save_pretrained(path)
    model.float()
    input_ids = randint(gen, 0, 95, (2, 9))
    save_reference(path, causal_lm_reference(model, gen, input_ids, hidden=64, embeds_len=None))


def make_llama_blocks() -> None:
    """A bf16 LLaMA whose every matrix holds whole blocks of 32 inputs (64 wide, MLP 128): the int8/int4
    quantization fixture (no matrix falls back), and a second bf16 parity case."""
    path = fixture_dir("llama_blocks")
    config = LlamaConfig(
        vocab_size=96,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        rope_theta=10000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
    )
    model, gen = new_model(LlamaForCausalLM, config)
    round_weights(model, torch.bfloat16)
    model.save_pretrained(path)
    model.float()
    input_ids = randint(gen, 0, 95, (2, 11))
    reference = causal_lm_reference(model, gen, input_ids, hidden=64, embeds_len=None)
    # The same model with every matrix (embedding, projections, head) replaced by its Q8_0 / Q4_0 round trip,
    # as the engine quantizes at load: the engine's prefill (fp32 compute on dequantized blocks) must match.
    weights = {name: p.detach().clone() for name, p in model.named_parameters()}
    for fmt, quantize in (("int8", q8_0_round_trip), ("int4", q4_0_round_trip)):
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(quantize(weights[name]) if p.dim() == 2 else weights[name])
        reference[f"logits.{fmt}"] = model(input_ids=input_ids).logits
    save_reference(path, reference)


def q8_0_round_trip(w: torch.Tensor) -> torch.Tensor:
    """llama.cpp's quantize_row_q8_0_ref + dequantize, along the last dimension in blocks of 32 (fp32 math,
    the scale stored in fp16, q = roundf(x / d): halves away from zero)."""
    blocks = w.float().reshape(-1, 32)
    d = blocks.abs().amax(dim=1, keepdim=True) / 127.0
    inverse = torch.where(d != 0, 1.0 / d, torch.zeros_like(d))
    scaled = blocks * inverse
    q = torch.sign(scaled) * torch.floor(scaled.abs() + 0.5)
    return (q * d.half().float()).reshape(w.shape)


def q4_0_round_trip(w: torch.Tensor) -> torch.Tensor:
    """llama.cpp's quantize_row_q4_0_ref + dequantize: d = (the value of largest magnitude) / -8,
    q = min(15, trunc(x / d + 8.5)), weight = (q - 8) · fp16(d)."""
    blocks = w.float().reshape(-1, 32)
    extreme = blocks.gather(1, blocks.abs().argmax(dim=1, keepdim=True))
    d = extreme / -8.0
    inverse = torch.where(d != 0, 1.0 / d, torch.zeros_like(d))
    q = torch.clamp(torch.trunc(blocks * inverse + 8.5), max=15)
    return ((q - 8) * d.half().float()).reshape(w.shape)


def make_llama_tied() -> None:
    path = fixture_dir("llama_tied")
    config = LlamaConfig(
        vocab_size=128,
        hidden_size=32,
        intermediate_size=80,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=1,  # MQA
        rope_theta=10000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
    )
    model, gen = new_model(LlamaForCausalLM, config)
    round_weights(model, torch.float16)
    model.save_pretrained(path, max_shard_size="20KB")
    shards = sorted(path.glob("model-*.safetensors"))
    assert (path / "model.safetensors.index.json").exists() and len(shards) >= 2, "expected a sharded checkpoint"
    model.float()
    input_ids = randint(gen, 0, 127, (1, 12))
    out = model(input_ids=input_ids)
    save_reference(path, {"input_ids": input_ids, "logits": out.logits})


def make_llava() -> None:
    path = fixture_dir("llava")
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(**VISION_CONFIG),
        text_config=LlamaConfig(
            vocab_size=128,
            hidden_size=48,
            intermediate_size=96,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
        ),
        projector_hidden_act="gelu",
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        image_token_index=127,
    )
    model, gen = new_model(LlavaForConditionalGeneration, config)
    model.save_pretrained(path)
    projector_input = torch.randn(2, 5, 32, generator=gen)
    projector_output = model.model.multi_modal_projector(projector_input)
    save_reference(path, {"projector.input": projector_input, "projector.output": projector_output})

    # Record the tensor names as this transformers version writes them to disk.
    names = []
    for file in sorted(path.glob("*.safetensors")):
        if file.name != "reference.safetensors":
            with safe_open(file, "pt") as f:
                names.extend(f.keys())
    (path / "TENSOR_NAMES.txt").write_text("".join(f"{n}\n" for n in sorted(names)))


def make_mapper() -> None:
    path = fixture_dir("mapper")
    model, gen = new_model(CaptionMapper, 16, 32, 5, 2, 4, 2.0)
    save_module(path, model)
    x = torch.randn(2, 7, 16, generator=gen)
    save_reference(path, {"input": x, "output": model(x)})


def make_selector() -> None:
    path = fixture_dir("selector")
    model, gen = new_model(CaptionSelector, 32, 4, 64, 3, 1e-5)
    save_module(path, model)
    x = torch.randn(2, 3, 32, generator=gen)
    save_reference(path, {"input": x, "scores": model(x)})


FIXTURES = [
    make_clip, make_gpt2, make_gpt2_bf16, make_llama, make_llama_blocks, make_llama_tied, make_llava, make_mapper,
    make_selector,
]


def main() -> None:
    torch.set_grad_enabled(False)
    hf_logging.disable_progress_bar()
    wanted = set(sys.argv[1:])
    known = {make.__name__.removeprefix("make_") for make in FIXTURES}
    if wanted - known:
        sys.exit(f"unknown fixture(s) {sorted(wanted - known)}; known: {sorted(known)}")
    for make in FIXTURES:
        if not wanted or make.__name__.removeprefix("make_") in wanted:
            make()
    files = sorted(p for p in OUT.rglob("*") if p.is_file())
    for file in files:
        print(f"{file.stat().st_size:>9}  {file.relative_to(OUT)}")
    total = sum(p.stat().st_size for p in files)
    print(f"{total:>9}  total ({total / 2**20:.2f} MiB)")


if __name__ == "__main__":
    main()
