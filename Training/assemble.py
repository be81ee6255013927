"""Assemble the trained family into one ACCM model directory (the layout of Sources/ACCM/ModelDirectory.swift).

    python Training/assemble.py                       # -> Models/accm-world/
    python Training/assemble.py --out /tmp/model      # elsewhere

Reads artifacts/clip/hf (vision/), artifacts/decoder/hf (llava/) and artifacts/captioner/{mapper,gpt2,
selector_text,selector} (run `train_captioner.py export` first). Only the files `accm ask` reads are copied;
the total is checked against family.WEIGHT_BUDGET_MB.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import family  # noqa: E402

DEFAULT_OUT = family.ROOT.parent / "Models" / "accm-world"
# sub-directory in the model -> artifact directory
PARTS = {
    "vision": family.ARTIFACTS / "clip" / "hf",
    "llava": family.ARTIFACTS / "decoder" / "hf",
    "caption/mapper": family.ARTIFACTS / "captioner" / "mapper",
    "caption/gpt2": family.ARTIFACTS / "captioner" / "gpt2",
    "selector/text": family.ARTIFACTS / "captioner" / "selector_text",
    "selector/scorer": family.ARTIFACTS / "captioner" / "selector",
}
FILES = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "preprocessor_config.json",
         "generation_config.json"}
MANIFEST = {
    "format": 1, "vision": "vision", "caption_mapper": "caption/mapper", "caption_language_model": "caption/gpt2",
    "selector_text_encoder": "selector/text", "selector": "selector/scorer", "llava": "llava",
    "image_aspect_ratio": "pad", "vision_feature_layer": -2, "caption_stop": ".", "caption_beams": 3,
    # the world's captions are at most 11 GPT-2 tokens; the authors' 67 stays as the bound
    "caption_max_new_tokens": 67,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    out: Path = args.out
    if out.exists():
        shutil.rmtree(out)
    total = 0
    for sub, source in PARTS.items():
        if not source.exists():
            sys.exit(f"{source} is missing: train (and export) its stage first")
        (out / sub).mkdir(parents=True)
        for f in sorted(source.iterdir()):
            if f.name in FILES:
                shutil.copy(f, out / sub / f.name)
                total += f.stat().st_size
    (out / "accm.json").write_text(json.dumps(MANIFEST, indent=2) + "\n")
    mb = total / 1e6
    print(f"{out}: {mb:.1f} MB")
    assert mb <= family.WEIGHT_BUDGET_MB, f"{mb:.1f} MB is over the family's {family.WEIGHT_BUDGET_MB} MB budget"


if __name__ == "__main__":
    main()
