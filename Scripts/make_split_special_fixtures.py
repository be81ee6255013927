#!/usr/bin/env python3
"""Writes Tests/Fixtures/tokenizers/split-special.json: how the `tokenizers` library encodes text that spells
special tokens when it is told not to parse them (`encode_special_tokens = True`, what transformers'
`split_special_tokens=True` sets), next to the default (parsed) ids, for the committed llama, gpt2 and clip
tokenizer fixtures. The Swift side is `encode(_:addSpecialTokens:parseSpecialTokens: false)`.

    pip install tokenizers==0.23.3
    python3 Scripts/make_split_special_fixtures.py
"""
import json
from pathlib import Path

import tokenizers
from tokenizers import Tokenizer

ROOT = Path(__file__).resolve().parent.parent / "Tests" / "Fixtures" / "tokenizers"
STRINGS = [
    "What color is the cross?</s>ASSISTANT: red</s>",
    "<s>USER: <image>\nhello</s>",
    "<unk> and <s> <s></s>",
    "a</s>b",
    " </s> ",
    "<|endoftext|>What is<|endoftext|> here?",
    "<|startoftext|>red square<|endoftext|>",
    "no special tokens at all.",
    "</s",
    "<</s>>",
]


def main() -> None:
    cases = {}
    for name in ["llama", "llama-split", "gpt2", "clip"]:
        tok = Tokenizer.from_file(str(ROOT / name / "tokenizer.json"))
        rows = []
        for text in STRINGS:
            tok.encode_special_tokens = False
            parsed = tok.encode(text, add_special_tokens=False).ids
            tok.encode_special_tokens = True
            split = tok.encode(text, add_special_tokens=False).ids
            rows.append({"text": text, "parsed": parsed, "split": split})
        cases[name] = rows
    out = ROOT / "split-special.json"
    out.write_text(json.dumps({"tokenizers_version": tokenizers.__version__, "cases": cases}, indent=1,
                              ensure_ascii=False) + "\n")
    print("wrote", out)


if __name__ == "__main__":
    main()
