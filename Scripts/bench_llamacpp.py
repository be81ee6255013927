"""Time llama.cpp (through llama-cpp-python) on a LLaMA-7B-shaped model with random weights, next to
`accm bench engine --cases llama-model` on the same shapes and weight type, alternately in one run.

The model: `--layers` LLaMA-7B layers (hidden 4096, MLP 11008, 32 heads) + the 32000-token embedding and
head, every matrix in the chosen type (f32, bf16, q8_0, q4_0 = accm's f32, bf16, int8, int4), written as
a GGUF file with gguf-py (a placeholder vocabulary). Measured: prefill of 640 tokens and a decode step at a
context of 640 (logits of the last position only, as accm's case), median [fastest-slowest] of --repeat.
Both keep the KV cache in f16 (llama.cpp's default; accm's `--kv-cache f16`).

Needs `pip install llama-cpp-python gguf` (llama-cpp-python builds llama.cpp from source; none of it is part
of this project). Usage:
    python Scripts/bench_llamacpp.py --layers 2 --types f32 bf16 q8_0 q4_0 --accm .build/release/accm
    python Scripts/bench_llamacpp.py --layers 32 --types bf16 q8_0 q4_0 --prompts 187 666 --repeat 1
"""

import argparse
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

HIDDEN, MLP, HEADS, VOCAB = 4096, 11008, 32, 32000
ACCM_DTYPE = {"f32": "f32", "bf16": "bf16", "q8_0": "int8", "q4_0": "int4"}


def write_model(path: Path, layers: int, kind: str) -> None:
    import gguf

    qtype = {"f32": gguf.GGMLQuantizationType.F32, "bf16": gguf.GGMLQuantizationType.BF16,
             "q8_0": gguf.GGMLQuantizationType.Q8_0, "q4_0": gguf.GGMLQuantizationType.Q4_0}[kind]
    file_type = {"f32": gguf.LlamaFileType.ALL_F32, "bf16": gguf.LlamaFileType.MOSTLY_BF16,
                 "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0, "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0}[kind]
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(4096)
    writer.add_embedding_length(HIDDEN)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(MLP)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(HEADS)
    writer.add_rope_dimension_count(HIDDEN // HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(file_type)
    # A placeholder SentencePiece vocabulary: the control tokens, the 256 byte tokens, then filler pieces.
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL] + [gguf.TokenType.BYTE] * 256
    tokens += [f"▁t{i}" for i in range(VOCAB - len(tokens))]
    types += [gguf.TokenType.NORMAL] * (VOCAB - len(types))
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * VOCAB)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)

    rng = np.random.default_rng(0)
    amplitude = np.float32(0.02 * 3 ** 0.5)

    def matrix(name: str, rows: int, cols: int) -> None:
        values = rng.uniform(-amplitude, amplitude, size=(rows, cols)).astype(np.float32)
        data = values if kind == "f32" else gguf.quants.quantize(values, qtype)
        writer.add_tensor(name, data, raw_dtype=None if kind == "f32" else qtype)

    def ones(name: str) -> None:
        writer.add_tensor(name, np.ones(HIDDEN, dtype=np.float32))

    matrix("token_embd.weight", VOCAB, HIDDEN)
    for i in range(layers):
        ones(f"blk.{i}.attn_norm.weight")
        for part in ("attn_q", "attn_k", "attn_v", "attn_output"):
            matrix(f"blk.{i}.{part}.weight", HIDDEN, HIDDEN)
        ones(f"blk.{i}.ffn_norm.weight")
        matrix(f"blk.{i}.ffn_gate.weight", MLP, HIDDEN)
        matrix(f"blk.{i}.ffn_up.weight", MLP, HIDDEN)
        matrix(f"blk.{i}.ffn_down.weight", HIDDEN, MLP)
    ones("output_norm.weight")
    matrix("output.weight", VOCAB, HIDDEN)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def spread(samples: list[float], unit: float = 1.0) -> str:
    s = sorted(x * unit for x in samples)
    return f"{statistics.median(s):.2f} [{s[0]:.2f}-{s[-1]:.2f}]"


def time_llamacpp(path: Path, threads: int, repeat: int, prompt_length: int = 640) -> tuple[list[float], list[float]]:
    """Prefill of `prompt_length` tokens and a decode step at that context, `repeat` times after a warm-up."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), n_ctx=prompt_length + 64, n_batch=prompt_length, n_ubatch=prompt_length,
                n_threads=threads, n_threads_batch=threads, verbose=False)
    prompt = np.random.default_rng(1).integers(3 + 256, VOCAB, prompt_length).tolist()
    prefill, decode = [], []
    for i in range(repeat + 1):
        llm.reset()
        start = time.perf_counter()
        llm.eval(prompt)
        if i:
            prefill.append(time.perf_counter() - start)
    for i in range(repeat + 1):
        llm.n_tokens = prompt_length  # eval drops the cache beyond n_tokens, so each step decodes at that context again
        start = time.perf_counter()
        llm.eval([prompt[0]])
        if i:
            decode.append(time.perf_counter() - start)
    return prefill, decode


def time_accm(accm: str, layers: int, kind: str, threads: int, repeat: int) -> str:
    """accm's decode on the same model (llama-model); its prefill per layer from llama-prefill (warmed up and
    repeated: llama-model's prefill is one cold run), times the layers (the head adds one row's logits)."""
    out = subprocess.run([accm, "bench", "engine", "--cases", "llama-prefill", "llama-model", "--layers", str(layers),
                          "--dtype", ACCM_DTYPE[kind], "--kv-cache", "f16", "--threads", str(threads),
                          "--repeat", str(repeat)],
                         capture_output=True, text=True, check=True).stdout
    prefill = re.search(r"layer prefill 640\s+([0-9.]+ m?s\s*\[[^\]]+\])", out).group(1)
    decode = re.search(r"decode at 640\s+([0-9.]+ ms \[[^\]]+\])", out).group(1)
    whole = re.search(r"layers prefill 640: ([0-9.]+ s)", out).group(1)
    return f"prefill 640 {prefill} a layer ({whole} for the whole model, one cold run), decode {decode}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--types", nargs="+", default=["f32", "bf16", "q8_0", "q4_0"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--prompts", type=int, nargs="+", default=[640],
                        help="prompt lengths: a prefill of each, then a decode step at that context")
    parser.add_argument("--accm", help="the accm binary, to time it alternately on the same shapes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.types:
            path = Path(tmp) / f"llama7b-{args.layers}-{kind}.gguf"
            write_model(path, args.layers, kind)
            for length in args.prompts:
                prefill, decode = time_llamacpp(path, args.threads, args.repeat, length)
                print(f"llama.cpp {kind:5} {args.layers} layers + head: prefill {length} {spread(prefill)} s, "
                      f"decode at {length} {spread(decode, 1000)} ms", flush=True)
            path.unlink()
            if args.accm:
                print(f"accm      {ACCM_DTYPE[kind]:5} {args.layers} layers + head: "
                      f"{time_accm(args.accm, args.layers, kind, args.threads, args.repeat)}", flush=True)


if __name__ == "__main__":
    main()
