"""Time Hugging Face tokenizers on a text file, one thread, the way `accm bench tokenizer` times ours.

Usage:  RAYON_NUM_THREADS=1 python Scripts/bench_tokenizer_hf.py TOKENIZER_DIR TEXT_FILE [--repeat 3]
(`accm bench tokenizer --python PATH` runs it on the same text for each tokenizer.)

Encodes paragraph by paragraph with `tokenizers.Tokenizer.encode` (tokenizer.json) and with the
transformers tokenizer of the directory, and once as a single string; prints MB of UTF-8 input per second.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import tokenizers  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402
from transformers import logging as hf_logging  # noqa: E402


def median_seconds(body, repeats: int) -> float:
    body()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        body()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("directory")
    parser.add_argument("text")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    hf_logging.set_verbosity_error()
    text = open(args.text, encoding="utf-8").read()
    paragraphs = [p for p in text.split("\n\n") if p]
    megabytes = len(text.encode("utf-8")) / 1e6
    label = f"{'':18}HF"
    path = os.path.join(args.directory, "tokenizer.json")
    if os.path.exists(path):
        tok = tokenizers.Tokenizer.from_file(path)
        per_paragraph = median_seconds(lambda: [tok.encode(p, add_special_tokens=False) for p in paragraphs], args.repeat)
        whole = median_seconds(lambda: tok.encode(text, add_special_tokens=False), args.repeat)
        print(f"{label} tokenizers {tokenizers.__version__}: encode {megabytes / per_paragraph:6.2f} MB/s per paragraph, "
              f"{megabytes / whole:6.2f} MB/s one string")
    auto = AutoTokenizer.from_pretrained(args.directory)
    per_paragraph = median_seconds(lambda: [auto.encode(p, add_special_tokens=False) for p in paragraphs], args.repeat)
    print(f"{label} transformers AutoTokenizer: encode {megabytes / per_paragraph:6.2f} MB/s per paragraph")


if __name__ == "__main__":
    main()
