"""Measures training / inference throughput of the later stages' models at family.py's sizes on this machine.

    python Training/speed_probe.py [--threads 2] [--seconds 20]

Random weights and random token ids of the lengths the stages will use (see below); the point is seconds per
sample, not learning. Prints samples/s and the achieved GFLOP/s (FLOPs counted as 2 x matmul MACs forward,
3x that for forward + backward, attention score/value products included), so the recipe can be planned.

Sequence lengths (tokens, from the trained tokenizers on the world's prompts):
  decoder text stage:    system prompt + USER: + description + question + ASSISTANT: + answer  ~ --text-len
  decoder visual stage:  the same with 64 visual tokens instead of the description             ~ --visual-len
  caption pre-training:  mapper over the pruned patches (64 - keep) + prefix; GPT-2 over prefix + question + caption
  KL stage (inference):  decoder forwards (full tokens; pruned + caption x 3 candidates) + beam search
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import family  # noqa: E402

from transformers import GPT2LMHeadModel, LlamaForCausalLM  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def accm_modules():
    spec = importlib.util.spec_from_file_location("accm_modules", REPO / "Scripts" / "accm_modules.py")
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


def timed(fn, seconds: float) -> float:
    """Seconds per call (after at least 3 s of warm-up calls: the first ones run far slower), over `seconds`."""
    start = time.time()
    while time.time() - start < 3:
        fn()
    n, start = 0, time.time()
    while time.time() - start < seconds or n < 2:
        fn()
        n += 1
    return (time.time() - start) / n


def llama_flops(cfg, tokens: int) -> float:
    """Forward FLOPs of one sequence."""
    h, f, L, v = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers, cfg.vocab_size
    per_token = L * (4 * h * h + 3 * h * f) + h * v
    return 2 * (tokens * per_token + L * 2 * tokens * tokens * h)


def gpt2_flops(cfg, tokens: int) -> float:
    h, L, v = cfg.n_embd, cfg.n_layer, cfg.vocab_size
    return 2 * (tokens * (L * 12 * h * h + h * v) + L * 2 * tokens * tokens * h)


def mapper_flops(c: dict, tokens: int) -> float:
    h, f, L = c["hidden_size"], int(c["hidden_size"] * c["mlp_ratio"]), c["num_layers"]
    t = tokens + c["prefix_length"]
    return 2 * (tokens * c["input_size"] * h + t * L * (4 * h * h + 2 * h * f) + L * 2 * t * t * h)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--text-len", type=int, default=0, help="0: measured from the llama tokenizer")
    ap.add_argument("--keep", type=int, default=8, help="visual tokens kept (caption / KL stage)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    # Prompt lengths from the real tokenizers.
    from transformers import AutoTokenizer
    llama_tok = AutoTokenizer.from_pretrained(family.TOKENIZERS / "llama")
    gpt2_tok = AutoTokenizer.from_pretrained(family.TOKENIZERS / "gpt2")
    system = ("A chat between a curious user and an artificial intelligence assistant. "
              "The assistant gives helpful, detailed, and polite answers to the user's questions.")
    desc = ("There is a large red triangle at the top. There is a small green cross at the top right. "
            "There is a small blue triangle at the left. There is a large white ring at the bottom.")
    q, cap = "Is the blue triangle above the red triangle?", "The blue triangle is below the red triangle."
    text_len = args.text_len or len(llama_tok.encode(f"{system} USER: {desc}\n{q} ASSISTANT: no</s>"))
    visual_len = len(llama_tok.encode(f"{system} USER: <image>\n{q} ASSISTANT: no</s>")) - 1 + family.NUM_PATCHES
    pruned_len = len(llama_tok.encode(f"{system} USER: <image>\nadditional information: {cap}{q} ASSISTANT: no</s>")) - 1 + args.keep
    no_sys = len(llama_tok.encode(f"USER: {desc}\n{q} ASSISTANT: no</s>"))
    cap_len = family.CAPTION_PREFIX + len(gpt2_tok.encode(q)) + len(gpt2_tok.encode(" " + cap)) + 1
    print(f"sequence lengths: decoder text {text_len} (without the system prompt {no_sys}), visual {visual_len}, "
          f"pruned+caption {pruned_len} (keep {args.keep}); caption LM {cap_len}; mapper {64 - args.keep}+{family.CAPTION_PREFIX}")

    rows = []
    dec_cfg = family.decoder_config()
    dec = LlamaForCausalLM(dec_cfg)
    opt = torch.optim.AdamW(dec.parameters(), lr=1e-4)

    def train_step(model, opt, ids, **kw):
        out = model(input_ids=ids, labels=ids, **kw)
        opt.zero_grad()
        out.loss.backward()
        opt.step()

    for name, length, batch in (("decoder text stage (train)", text_len, 32),
                                ("decoder visual stage, 64 tokens (train)", visual_len, 32)):
        ids = torch.randint(0, dec_cfg.vocab_size, (batch, length))
        s = timed(lambda: train_step(dec, opt, ids), args.seconds)
        rows.append((name, batch / s, 3 * llama_flops(dec_cfg, length) * batch / s / 1e9))

    # Caption pre-training: mapper + GPT-2 (train), CLIP patch embeddings cached.
    m = accm_modules()
    mc = family.mapper_config()
    mapper = m.CaptionMapper(mc["input_size"], mc["hidden_size"], mc["prefix_length"], mc["num_layers"],
                             mc["num_heads"], mc["mlp_ratio"], mc["layer_norm_eps"])
    gcfg = family.caption_lm_config()
    gpt2 = GPT2LMHeadModel(gcfg)
    copt = torch.optim.AdamW(list(mapper.parameters()) + list(gpt2.parameters()), lr=1e-4)
    batch = 64
    patches = torch.randn(batch, 64 - args.keep, mc["input_size"])
    text_ids = torch.randint(0, gcfg.vocab_size, (batch, cap_len - family.CAPTION_PREFIX))

    def caption_step():
        prefix = mapper(patches)
        emb = torch.cat([prefix, gpt2.transformer.wte(text_ids)], 1)
        logits = gpt2(inputs_embeds=emb).logits[:, family.CAPTION_PREFIX:-1]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), text_ids[:, 1:].reshape(-1))
        copt.zero_grad()
        loss.backward()
        copt.step()

    s = timed(caption_step, args.seconds)
    rows.append(("caption pre-training (mapper + GPT-2, train)", batch / s,
                 3 * (gpt2_flops(gcfg, cap_len) + mapper_flops(mc, 64 - args.keep)) * batch / s / 1e9))

    # KL stage, per sample: decoder forward with all tokens + 3 pruned+caption forwards (no grad), beam search
    # of 3 beams x ~14 new tokens (KV cache), then one caption-model training step on the pseudo-label.
    batch = 32

    @torch.no_grad()
    def kl_forwards():
        dec(input_ids=torch.randint(0, dec_cfg.vocab_size, (batch, visual_len)))
        dec(input_ids=torch.randint(0, dec_cfg.vocab_size, (3 * batch, pruned_len)))

    s_fwd = timed(kl_forwards, args.seconds)

    @torch.no_grad()
    def beam():
        prefix = mapper(patches[:batch])
        q_ids = text_ids[:batch, :10]
        emb = torch.cat([prefix, gpt2.transformer.wte(q_ids)], 1).repeat_interleave(3, 0)
        out = gpt2(inputs_embeds=emb, use_cache=True)
        past, nxt = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
        for _ in range(14):
            out = gpt2(input_ids=nxt, past_key_values=past, use_cache=True)
            past, nxt = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)

    s_beam = timed(beam, args.seconds)
    kl_flops = (llama_flops(dec_cfg, visual_len) + 3 * llama_flops(dec_cfg, pruned_len)) * batch
    rows.append(("KL stage: decoder full + 3x pruned forwards", batch / s_fwd, kl_flops / s_fwd / 1e9))
    rows.append(("KL stage: beam search 3 x 14 tokens (KV cache)", batch / s_beam, float("nan")))
    print(f"{'stage':50s} {'samples/s':>10s} {'GFLOP/s':>8s}")
    for name, rate, gf in rows:
        print(f"{name:50s} {rate:10.1f} {gf:8.1f}")


if __name__ == "__main__":
    main()
