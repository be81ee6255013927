"""PyTorch CPU baseline for `accm bench engine`.

Times, with PyTorch in float32 (eval mode, torch.inference_mode(), random
weights built from configs; nothing is downloaded), the same shapes that the
Swift engine's `accm bench engine` times, through the transformers modules that
the Swift models are checked against:

  vit            CLIP ViT-L/14-336 vision tower, one 336x336 image (577 tokens),
                 output_hidden_states=True, SDPA attention
  vit-eager      the same with transformers' eager attention
  gpt2-prefill   GPT-2 124M, 64 tokens, use_cache=True, logits of every position
  gpt2-decode    GPT-2 124M, one token at position 64 on the prefill's cache
  llama-prefill  one LLaMA-7B decoder layer, 640 tokens, RoPE + causal mask
  llama-decode   the same layer, one token at position 640 on a 640-entry cache

Each case is run once to warm up, then --repeat times; the table reports the
median wall time, GFLOP/s and, for decode cases, the fp32 weight bandwidth.
Work is counted with the same convention as `accm bench engine`, so the two
tables can be compared row by row (the GFLOP column must match the Swift one):

  linear over R rows    2 * R * in * out   (LM heads and the CLIP patch
                                            embedding included)
  attention             4 * heads * head_dim * P, P = (query, key) pairs:
                        Tq * Tk non-causal, T(T+1)/2 causal prefill,
                        cache + 1 per decoded token
  element-wise work     not counted (norms, activations, softmax, RoPE,
                        embedding look-ups)
  decode weight bytes   4 * weights multiplied by in the step (every Linear /
                        Conv1D weight and the LM head; GPT-2's LM head is the
                        tied token embedding, which is therefore read)

Usage:
  python Scripts/bench_engine_torch.py [--threads 2] [--repeat 3]
      [--cases vit,gpt2-decode,...] [--json results.json]
"""

import argparse
import copy
import json
import statistics
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Callable

import torch
import transformers
from torch import nn
from transformers import (
    CLIPVisionConfig,
    CLIPVisionModel,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
)
from transformers import logging as hf_logging
from transformers.cache_utils import DynamicCache
from transformers.masking_utils import create_causal_mask
from transformers.models.llama.modeling_llama import LlamaDecoderLayer, LlamaRotaryEmbedding
from transformers.pytorch_utils import Conv1D

SEED = 0
GPT2_PREFILL = 64
LLAMA_PREFILL = 640


def vit_config(attn_implementation: str) -> CLIPVisionConfig:
    return CLIPVisionConfig(
        image_size=336,
        patch_size=14,
        hidden_size=1024,
        intermediate_size=4096,
        num_hidden_layers=24,
        num_attention_heads=16,
        hidden_act="quick_gelu",
        attn_implementation=attn_implementation,
    )


GPT2_CONFIG = GPT2Config()
LLAMA_CONFIG = LlamaConfig(
    hidden_size=4096,
    intermediate_size=11008,
    num_attention_heads=32,
    num_key_value_heads=32,
    max_position_embeddings=4096,
    num_hidden_layers=1,  # one layer: sizes the DynamicCache, does not change the layer
    attn_implementation="sdpa",
)


# --- Work counted per case (the convention shared with `accm bench engine`) ---


def linear_flop(rows: int, n_in: int, n_out: int) -> int:
    return 2 * rows * n_in * n_out


def attention_flop(heads: int, head_dim: int, pairs: int) -> int:
    return 4 * heads * head_dim * pairs


def causal_pairs(tokens: int) -> int:
    return tokens * (tokens + 1) // 2


def gpt2_weight_params(c: GPT2Config) -> int:
    """Weights one token is multiplied by: 12 blocks of c_attn, attn c_proj,
    c_fc, mlp c_proj, plus the (tied) LM head."""
    d = c.n_embd
    per_block = d * 3 * d + d * d + d * 4 * d + 4 * d * d
    return c.n_layer * per_block + d * c.vocab_size


def llama_layer_weight_params(c: LlamaConfig) -> int:
    """q, k, v, o projections and the gate / up / down MLP of one layer."""
    d, f = c.hidden_size, c.intermediate_size
    head_dim = d // c.num_attention_heads
    kv = c.num_key_value_heads * head_dim
    return d * d + 2 * d * kv + d * d + 3 * d * f


def vit_work(c: CLIPVisionConfig) -> tuple[int, None]:
    patches = (c.image_size // c.patch_size) ** 2
    tokens = patches + 1
    d, f, heads = c.hidden_size, c.intermediate_size, c.num_attention_heads
    flop = linear_flop(patches, 3 * c.patch_size**2, d)
    per_layer = 4 * linear_flop(tokens, d, d) + linear_flop(tokens, d, f) + linear_flop(tokens, f, d)
    per_layer += attention_flop(heads, d // heads, tokens * tokens)
    return flop + c.num_hidden_layers * per_layer, None


def gpt2_prefill_work(c: GPT2Config, tokens: int) -> tuple[int, None]:
    flop = 2 * tokens * gpt2_weight_params(c)
    flop += c.n_layer * attention_flop(c.n_head, c.n_embd // c.n_head, causal_pairs(tokens))
    return flop, None


def gpt2_decode_work(c: GPT2Config, cached: int) -> tuple[int, int]:
    flop = 2 * gpt2_weight_params(c)
    flop += c.n_layer * attention_flop(c.n_head, c.n_embd // c.n_head, cached + 1)
    return flop, 4 * gpt2_weight_params(c)


def llama_layer_prefill_work(c: LlamaConfig, tokens: int) -> tuple[int, None]:
    head_dim = c.hidden_size // c.num_attention_heads
    flop = 2 * tokens * llama_layer_weight_params(c)
    flop += attention_flop(c.num_attention_heads, head_dim, causal_pairs(tokens))
    return flop, None


def llama_layer_decode_work(c: LlamaConfig, cached: int) -> tuple[int, int]:
    head_dim = c.hidden_size // c.num_attention_heads
    flop = 2 * llama_layer_weight_params(c)
    flop += attention_flop(c.num_attention_heads, head_dim, cached + 1)
    return flop, 4 * llama_layer_weight_params(c)


def matmul_weight_params(module: nn.Module) -> int:
    """Counts Linear / Conv1D weights, to check the formulas against the model."""
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, (nn.Linear, Conv1D)))


# --- Models and timed steps ---
#
# Each setup returns (prepare, step): prepare() runs untimed before every call
# and returns the argument of step(), which is the timed region.


@cache
def gpt2() -> tuple[GPT2LMHeadModel, torch.Tensor]:
    torch.manual_seed(SEED)
    model = GPT2LMHeadModel(GPT2_CONFIG).eval()
    assert matmul_weight_params(model) == gpt2_weight_params(GPT2_CONFIG)
    ids = torch.randint(0, GPT2_CONFIG.vocab_size, (1, GPT2_PREFILL))
    return model, ids


@cache
def llama_layer() -> tuple[LlamaDecoderLayer, LlamaRotaryEmbedding, torch.Tensor]:
    torch.manual_seed(SEED)
    layer = LlamaDecoderLayer(LLAMA_CONFIG, layer_idx=0).eval()
    assert matmul_weight_params(layer) == llama_layer_weight_params(LLAMA_CONFIG)
    rotary = LlamaRotaryEmbedding(LLAMA_CONFIG).eval()
    hidden = torch.randn(1, LLAMA_PREFILL, LLAMA_CONFIG.hidden_size)
    return layer, rotary, hidden


def llama_layer_forward(hidden: torch.Tensor, kv: DynamicCache) -> torch.Tensor:
    """What LlamaModel.forward does around each decoder layer."""
    layer, rotary, _ = llama_layer()
    past = kv.get_seq_length()
    position_ids = (torch.arange(hidden.shape[1]) + past).unsqueeze(0)
    mask = create_causal_mask(
        config=LLAMA_CONFIG,
        inputs_embeds=hidden,
        attention_mask=None,
        cache=kv,
        position_ids=position_ids,
    )
    return layer(
        hidden,
        attention_mask=mask,
        position_ids=position_ids,
        cache=kv,
        use_cache=True,
        position_embeddings=rotary(hidden, position_ids=position_ids),
    )


def setup_vit(attn_implementation: str):
    torch.manual_seed(SEED)
    model = CLIPVisionModel(vit_config(attn_implementation)).eval()
    pixels = torch.randn(1, 3, 336, 336)
    return lambda: pixels, lambda x: model(pixel_values=x, output_hidden_states=True)


def setup_gpt2_prefill():
    model, ids = gpt2()
    return lambda: ids, lambda x: model(input_ids=x, use_cache=True)


def setup_gpt2_decode():
    model, ids = gpt2()
    prefilled = model(input_ids=ids, use_cache=True).cache
    assert prefilled.get_seq_length() == GPT2_PREFILL
    token = torch.randint(0, GPT2_CONFIG.vocab_size, (1, 1))
    return (
        lambda: copy.deepcopy(prefilled),
        lambda kv: model(input_ids=token, cache=kv, use_cache=True),
    )


def setup_llama_prefill():
    _, _, hidden = llama_layer()
    return lambda: DynamicCache(config=LLAMA_CONFIG), lambda kv: llama_layer_forward(hidden, kv)


def setup_llama_decode():
    _, _, hidden = llama_layer()
    prefilled = DynamicCache(config=LLAMA_CONFIG)
    llama_layer_forward(hidden, prefilled)
    assert prefilled.get_seq_length() == LLAMA_PREFILL
    token = torch.randn(1, 1, LLAMA_CONFIG.hidden_size)
    return lambda: copy.deepcopy(prefilled), lambda kv: llama_layer_forward(token, kv)


@dataclass
class Case:
    key: str
    name: str
    work: tuple[int, int | None]  # (FLOP, decode weight bytes or None)
    setup: Callable


CASES = [
    Case("vit", "clip-vit-l14-336 forward", vit_work(vit_config("sdpa")), lambda: setup_vit("sdpa")),
    Case("vit-eager", "clip-vit-l14-336 forward (eager attn)", vit_work(vit_config("eager")),
         lambda: setup_vit("eager")),
    Case("gpt2-prefill", f"gpt2-124m prefill {GPT2_PREFILL}", gpt2_prefill_work(GPT2_CONFIG, GPT2_PREFILL),
         setup_gpt2_prefill),
    Case("gpt2-decode", "gpt2-124m decode", gpt2_decode_work(GPT2_CONFIG, GPT2_PREFILL), setup_gpt2_decode),
    Case("llama-prefill", f"llama-7b layer prefill {LLAMA_PREFILL}",
         llama_layer_prefill_work(LLAMA_CONFIG, LLAMA_PREFILL), setup_llama_prefill),
    Case("llama-decode", "llama-7b layer decode", llama_layer_decode_work(LLAMA_CONFIG, LLAMA_PREFILL),
         setup_llama_decode),
]


def time_case(case: Case, repeat: int) -> float:
    """Median seconds of `repeat` timed steps after one warm-up step."""
    with torch.inference_mode():
        prepare, step = case.setup()
        times = []
        for i in range(repeat + 1):
            arg = prepare()
            start = time.perf_counter()
            step(arg)
            if i > 0:
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def main() -> None:
    keys = [c.key for c in CASES]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cases", default=",".join(keys), help="comma list of: " + ", ".join(keys))
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    chosen = args.cases.split(",")
    unknown = sorted(set(chosen) - set(keys))
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(keys)}")

    hf_logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}")
    print(f"threads {torch.get_num_threads()}, CPU {cpu_model()}")
    print(
        f"MKL {torch.backends.mkl.is_available()}, oneDNN (mkldnn) {torch.backends.mkldnn.is_available()}, "
        f"OpenMP {torch.backends.openmp.is_available()}"
    )
    print(f"float32, median of {args.repeat} after 1 warm-up\n")

    header = f"{'case':<40} {'GFLOP':>9} {'median ms':>11} {'GFLOP/s':>9} {'GB/s':>7}"
    print(header)
    print("-" * len(header))
    results = []
    for case in (c for c in CASES if c.key in chosen):
        flop, weight_bytes = case.work
        seconds = time_case(case, args.repeat)
        gb_per_s = weight_bytes / seconds / 1e9 if weight_bytes is not None else None
        results.append(
            dict(
                case=case.name,
                seconds=seconds,
                gflops=flop / 1e9,
                gflop_per_s=flop / seconds / 1e9,
                gb_per_s=gb_per_s,
            )
        )
        bandwidth = f"{gb_per_s:7.2f}" if gb_per_s is not None else f"{'-':>7}"
        print(f"{case.name:<40} {flop / 1e9:9.3f} {seconds * 1e3:11.2f} {flop / seconds / 1e9:9.1f} {bandwidth}",
              flush=True)

    print("\ndecode weight bytes (fp32):")
    for case in (c for c in CASES if c.key in chosen and c.work[1] is not None):
        print(f"  {case.name:<38} {case.work[1]:,}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
