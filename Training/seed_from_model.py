"""Seed Training/artifacts/ from an ACCM model directory, so that any stage continues from its weights.

    python Training/seed_from_model.py                         # from Models/accm-world (the shipped family)
    python Training/seed_from_model.py --model DIR --force     # another directory; replaces existing artifacts

The shipped family comes from staged runs whose checkpoints are not committed; this turns its exported weights
back into what the stages read and write, so that, for example,

    python Training/make_dataset.py --splits train validation
    python Training/seed_from_model.py
    python Training/train_captioner.py captions
    python Training/train_decoder.py --resume --restart-schedule --minutes 30 --pipeline 0.6 ...

fine-tunes the shipped decoder. It writes
  - artifacts/tokenizers/{clip,gpt2,llama}: the tokenizer files of vision/, caption/gpt2/ and llava/;
  - artifacts/clip/hf: vision/ (the CLIPModel, both towers);
  - artifacts/decoder/checkpoint.pt: train_decoder.py's checkpoint (projector + LLaMA from llava/, a fresh
    AdamW state, step 0, a one-minute time budget), so `--resume --restart-schedule --minutes N` continues from it;
  - artifacts/captioner/kl.pt: train_captioner.py's checkpoint (mapper + GPT-2 from caption/, the selector from
    selector/scorer/, fresh optimizer states, a one-minute time budget): what `captions`, `eval` and `export` read,
    and `kl --resume --extend-minutes N` continues.
The selector's text tower is the CLIP's own text tower (as train_captioner.py exports it); a model directory
whose selector/text differs from it is refused. `export` + `assemble.py` after seeding give back the same
tensors (Training/tests/test_stages.py).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
import family  # noqa: E402
from assemble import MANIFEST, PARTS  # noqa: E402
from training_utils import adamw, save_atomically  # noqa: E402

DEFAULT_MODEL = family.ROOT.parent / "Models" / "accm-world"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
TOKENIZER_SOURCES = {"clip": "vision", "gpt2": "caption/gpt2", "llama": "llava"}


def renamed(tensors: dict[str, torch.Tensor], prefixes: dict[str, str]) -> dict[str, torch.Tensor]:
    """The tensors whose names start with one of `prefixes`' keys, renamed to its value; others are dropped."""
    out = {}
    for name, t in tensors.items():
        for old, new in prefixes.items():
            if name.startswith(old):
                out[new + name[len(old):]] = t
                break
    return out


def decoder_state(llava_dir: Path) -> dict[str, torch.Tensor]:
    """TinyLlava's state_dict from a LlavaForConditionalGeneration export (tiny_llava.export_llava's tensor names;
    its vision tower is not read)."""
    return renamed(load_file(str(llava_dir / "model.safetensors")),
                   {"multi_modal_projector.": "projector.", "language_model.model.": "lm.model.",
                    "language_model.lm_head.": "lm.lm_head."})


def load_decoder(model: Path):
    """The model directory's projector + LLaMA as train_decoder.py's TinyLlava (needs the family's tokenizers in
    artifacts/tokenizers: the vocabulary sizes come from them)."""
    from tiny_llava import TinyLlava

    decoder = TinyLlava()
    decoder.load_state_dict(decoder_state(model / "llava"), strict=True)
    return decoder


def load_captioner(model: Path):
    """The model directory's caption model (mapper + GPT-2) and selector as train_captioner.py builds them."""
    from train_captioner import Captioner, build_selector

    captioner, selector = Captioner(), build_selector()
    captioner.mapper.load_state_dict(load_file(str(model / "caption" / "mapper" / "model.safetensors")), strict=True)
    gpt2 = load_file(str(model / "caption" / "gpt2" / "model.safetensors"))
    gpt2.setdefault("lm_head.weight", gpt2["transformer.wte.weight"])  # tied head: saved once
    captioner.gpt2.load_state_dict(gpt2, strict=True)
    selector.load_state_dict(load_file(str(model / "selector" / "scorer" / "model.safetensors")), strict=True)
    return captioner, selector


def check_selector_text(model: Path) -> None:
    """Refuse a selector text tower other than the CLIP's own (train_captioner.py trains with the CLIP's)."""
    text = load_file(str(model / "selector" / "text" / "model.safetensors"))
    clip = load_file(str(model / "vision" / "model.safetensors"))
    for name, t in text.items():
        if name not in clip or not torch.equal(clip[name], t):
            sys.exit(f"{model}/selector/text: {name} is not the CLIP's own; train_captioner.py cannot continue it")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--force", action="store_true", help="replace artifacts that exist")
    args = ap.parse_args()
    model: Path = args.model
    manifest = json.loads((model / "accm.json").read_text())
    for key, sub in MANIFEST.items():
        if sub in PARTS and manifest.get(key) != sub:  # the six components' sub-directories
            sys.exit(f"{model}/accm.json: {key} is {manifest.get(key)!r}, expected {sub!r} (assemble.py's layout)")
    targets = [family.TOKENIZERS, family.ARTIFACTS / "clip" / "hf", family.ARTIFACTS / "decoder" / "checkpoint.pt",
               family.ARTIFACTS / "captioner" / "kl.pt"]
    present = [t for t in targets if t.exists()]
    if present and not args.force:
        sys.exit("already there (--force replaces them): " + ", ".join(str(p) for p in present))
    check_selector_text(model)

    for name, sub in TOKENIZER_SOURCES.items():
        d = family.TOKENIZERS / name
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        for f in TOKENIZER_FILES:
            shutil.copy(model / sub / f, d / f)
    clip_dir = family.ARTIFACTS / "clip" / "hf"
    if clip_dir.exists():
        shutil.rmtree(clip_dir)
    shutil.copytree(model / "vision", clip_dir)

    # a one-minute time budget (the stages' least): a continuation sets its own with --minutes / --extend-minutes
    from train_captioner import checkpoint as caption_checkpoint, optimizers as caption_optimizers
    from train_decoder import checkpoint as decoder_checkpoint

    decoder = load_decoder(model)
    (family.ARTIFACTS / "decoder").mkdir(parents=True, exist_ok=True)
    save_atomically(decoder_checkpoint(decoder, adamw(decoder, 1e-3, 0.05), 0, [], 0.0, 60.0, 0,
                                       {"seeded_from": str(model)}),
                    family.ARTIFACTS / "decoder" / "checkpoint.pt")
    captioner, selector = load_captioner(model)
    (family.ARTIFACTS / "captioner").mkdir(parents=True, exist_ok=True)
    save_atomically(caption_checkpoint(captioner, selector, *caption_optimizers(captioner, selector, 1e-5, 5e-4), 0,
                                       0.0, 60.0, []),
                    family.ARTIFACTS / "captioner" / "kl.pt")
    print(f"seeded {family.ARTIFACTS} from {model}: tokenizers, clip/hf, decoder/checkpoint.pt, captioner/kl.pt",
          flush=True)


if __name__ == "__main__":
    main()
