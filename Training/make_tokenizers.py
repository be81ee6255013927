"""Trains the family's three tokenizers on the world's text and saves them the way transformers does.

    python Training/make_tokenizers.py       # needs Training/data/train (python Training/make_dataset.py)

Writes Training/artifacts/tokenizers/{clip,gpt2,llama}/ (git-ignored; the shipped model directories copy them):
  clip   CLIP-style BPE (`</w>`), CLIPTokenizer layout           -> CLIP text tower, selector inputs
  gpt2   GPT-2 byte-level BPE, `<|endoftext|>`                    -> caption language model
  llama  SentencePiece BPE with byte fallback, converted by transformers' LlamaTokenizer (legacy=False),
         `<image>` added as a special token                       -> LLaVA decoder

The training functions are Scripts/make_tokenizer_fixtures.py's (the same ones the Swift parity fixtures come
from), loaded by path; only the corpus and the vocabulary sizes differ. The corpus is every distinct text of
the train split (descriptions, questions, captions, answers) plus the prompt templates the stages wrap them in.
Deterministic for a given train split.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from transformers import AddedToken, AutoTokenizer, CLIPTokenizer, GPT2TokenizerFast, LlamaTokenizer  # noqa: E402
from transformers import logging as hf_logging  # noqa: E402

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
DATA = ROOT / "data" / "train"
OUT = ROOT / "artifacts" / "tokenizers"

# Vocabulary targets. The world has 48 words, so BPE runs out of merges first for CLIP (every word a token);
# the byte-level and SentencePiece ones keep 256 byte symbols for text outside the world.
VOCAB = {"clip": 1000, "gpt2": 512, "llama": 512}

SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
          "The assistant gives helpful, detailed, and polite answers to the user's questions.")


def fixtures_module():
    path = REPO / "Scripts" / "make_tokenizer_fixtures.py"
    spec = importlib.util.spec_from_file_location("make_tokenizer_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def world_corpus() -> list[str]:
    scenes = DATA / "scenes.jsonl"
    questions = DATA / "questions.jsonl"
    if not scenes.exists():
        sys.exit(f"{scenes} is missing: run python Training/make_dataset.py")
    lines: list[str] = []
    with scenes.open(encoding="utf-8") as f:
        for line in f:
            lines.append(json.loads(line)["description"])
    with questions.open(encoding="utf-8") as f:
        for line in f:
            q = json.loads(line)
            lines += [q["question"], q["caption"], q["answer"],
                      # the prompt shapes of the later stages (decoder, selector)
                      f"USER: <image>\nadditional information: {q['caption']}{q['question']} ASSISTANT: {q['answer']}",
                      f"Question: {q['question']}  Supplemental information for questions: {q['caption']}"]
    lines += [SYSTEM] * 50
    return lines


def main() -> None:
    hf_logging.set_verbosity_error()
    fx = fixtures_module()
    corpus = world_corpus()
    print(f"corpus: {len(corpus)} lines, {len(set(corpus))} distinct")
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    probe = "USER: <image>\nadditional information: There is a large red circle at the top left.What color is the cross? ASSISTANT: green"

    # CLIP-style BPE (the fixtures' deterministic plain BPE).
    fx.VOCAB_SIZE = VOCAB["clip"]
    d = OUT / "clip"
    d.mkdir()
    trained = fx.train_clip_bpe(corpus)
    data = json.loads(trained.to_str())
    clip = CLIPTokenizer(vocab=data["model"]["vocab"], merges=[tuple(m) for m in data["model"]["merges"]])
    clip.save_pretrained(d)
    fx.save_bpe_files(trained, d)
    fx.tidy_tokenizer_config(d, model_max_length=32)
    fx.rewrite_tokenizer_json(d / "tokenizer.json")

    # GPT-2 byte-level BPE.
    fx.VOCAB_SIZE = VOCAB["gpt2"]
    d = OUT / "gpt2"
    d.mkdir()
    tok = fx.train_byte_level_bpe(corpus)
    eot = "<|endoftext|>"
    GPT2TokenizerFast(tokenizer_object=tok, bos_token=eot, eos_token=eot, unk_token=eot).save_pretrained(d)
    fx.save_bpe_files(tok, d)
    fx.tidy_tokenizer_config(d)
    fx.rewrite_tokenizer_json(d / "tokenizer.json")

    # LLaMA SentencePiece BPE with byte fallback, converted by transformers, + <image>.
    fx.VOCAB_SIZE = VOCAB["llama"]
    d = OUT / "llama"
    d.mkdir()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model = fx.train_sentencepiece(corpus, tmp)
        spm_dir = tmp / "spm"
        spm_dir.mkdir()
        shutil.copy(model, spm_dir / "tokenizer.model")
        llama = LlamaTokenizer.from_pretrained(spm_dir, legacy=False, add_bos_token=True, add_eos_token=False)
        llama.add_tokens([AddedToken("<image>", special=True, normalized=False)], special_tokens=True)
        llama.save_pretrained(d)
    fx.tidy_tokenizer_config(d, add_bos_token=True, add_eos_token=False, legacy=False)
    fx.rewrite_tokenizer_json(d / "tokenizer.json")

    for name in ("clip", "gpt2", "llama"):
        t = AutoTokenizer.from_pretrained(OUT / name)
        ids = t.encode(probe)
        print(f"{name:6s} {type(t).__name__:22s} vocab {len(t):5d}  probe -> {len(ids)} tokens: "
              f"{t.convert_ids_to_tokens(ids)[:14]}...")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
