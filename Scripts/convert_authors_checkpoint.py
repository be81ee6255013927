"""Turn the ACCM authors' released checkpoints into this project's model directory.

The layout is the one Sources/ACCM/ModelDirectory.swift reads (accm.json + one Hugging Face-style
sub-directory per component):

    vision/            CLIPModel (both towers, projections), tokenizer, preprocessor_config.json  ← --clip
    caption/mapper/    accm_caption_mapper (Scripts/accm_modules.py)                              ← --caption
    caption/gpt2/      GPT2LMHeadModel + GPT-2 tokenizer files                                    ← --caption, --gpt2-tokenizer
    selector/text/     CLIPModel / CLIPTextModelWithProjection (LongCLIP in HF layout)            ← --selector-text
    selector/scorer/   accm_caption_selector (Scripts/accm_modules.py)                            ← --selector
    llava/             LlavaForConditionalGeneration + LLaMA tokenizer (e.g. llava-1.5-7b-hf)     ← --llava

Inputs:
  --caption    the ClipCap caption checkpoint (e.g. ClipCap/checkpoints-end2end/coco_prefix-009.pt): a
               pickled state_dict of ClipCaptionModel, `clip_project.*` = the mapper (ACCM's modified
               TransformerMapper, names as in accm_modules.CaptionMapper) and `gpt.*` = GPT2LMHeadModel.
  --selector   the selector checkpoint (e.g. llava-RL_prefix-019.pt): a pickled TransformerSelector
               (state_dict, a dict holding one, or the whole module with --trust-pickle). Layers may sit under
               `transformer.layers.N.` / `layers.N.` / `encoder.layers.N.` (PyTorch TransformerEncoderLayer
               names inside); the scoring head may be `head` / `linear` / `classifier` / `fc`; a leading
               `module.` (DataParallel) is dropped. Anything else is refused with the list of keys.
  --clip, --llava, --selector-text   Hugging Face directories, copied (or symlinked with --link) as
               they are; PyTorch `pytorch_model*.bin` weights are turned into safetensors on the way.
What cannot be read from tensor shapes comes from options: attention heads of the mapper (--mapper-heads,
ClipCap's 8), of the selector (--selector-heads, the authors' 8) and of GPT-2 (from --gpt2-config or the
tokenizer directory's config.json, else --gpt2-heads, 12 for GPT-2 124M).

    python Scripts/convert_authors_checkpoint.py --out models/accm-llava15 \\
        --caption coco_prefix-009.pt --selector llava-RL_prefix-019.pt --gpt2-tokenizer gpt2/ \\
        --clip clip-vit-large-patch14-336/ --llava llava-1.5-7b-hf/ --selector-text longclip-L-hf/

    python Scripts/convert_authors_checkpoint.py --self-test
        builds tiny ClipCaptionModel and selector pickles (several key layouts) with torch.save from the
        parity fixture's modules, converts them, checks that the converted safetensors reload into the
        reference modules with identical outputs, that the converted directory answers the fixture's cases
        exactly as Tests/Fixtures/accm/reference.json says, and that bad checkpoints are refused clearly.
"""

from __future__ import annotations

import argparse
import json
import pickle
import re
import shutil
import sys
import tempfile
import types
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accm_modules import CaptionMapper, CaptionSelector  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json",
                   "added_tokens.json", "tokenizer.model")


class ConversionError(Exception):
    pass


# ---------------------------------------------------------------------------------------------------------
# Reading pickles


def _stub_class(module: str, name: str) -> type:
    """Stands in for a class the pickle names but this process cannot import (the authors' modules)."""
    return type(name, (nn.Module,), {"__module__": module, "forward": lambda self, *a, **k: None})


class _StubUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            return _stub_class(module, name)


_stub_pickle = types.SimpleNamespace(Unpickler=_StubUnpickler, load=pickle.load, __name__="stub_pickle")


def load_state_dict(path: Path, trust_pickle: bool) -> dict[str, torch.Tensor]:
    """A checkpoint's tensors: a state_dict, a dict holding one, or (only with trust_pickle) a whole module."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if not trust_pickle:
            raise ConversionError(
                f"{path} is not a plain state_dict (it pickles objects: {str(error).splitlines()[0]}). If you trust "
                "the file, pass --trust-pickle to unpickle it (unknown classes are stubbed).") from None
        obj = torch.load(path, map_location="cpu", weights_only=False, pickle_module=_stub_pickle)
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in ("state_dict", "model_state_dict", "model", "module", "selector"):
            inner = obj.get(key)
            if isinstance(inner, nn.Module):
                inner = inner.state_dict()
            if isinstance(inner, dict) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
        else:
            raise ConversionError(f"{path}: found a dict with keys {sorted(obj)[:20]} but no state_dict in it")
    if not isinstance(obj, dict) or not obj:
        raise ConversionError(f"{path}: expected a state_dict, found {type(obj).__name__}")
    return {k: v.detach().to(torch.float32) if v.is_floating_point() else v.detach() for k, v in obj.items()}


def strip_module_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if state and all(k.startswith("module.") for k in state):
        return {k.removeprefix("module."): v for k, v in state.items()}
    return state


def refuse_unexpected(what: str, unexpected: list[str], expected_hint: str) -> None:
    if unexpected:
        listing = "\n  ".join(sorted(unexpected))
        raise ConversionError(f"{what}: {len(unexpected)} unexpected key(s):\n  {listing}\nexpected {expected_hint}")


# ---------------------------------------------------------------------------------------------------------
# Caption checkpoint → caption/mapper + caption/gpt2

MAPPER_LAYER_KEYS = {
    "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias", "attn.to_queries.weight",
    "attn.to_keys_values.weight", "attn.project.weight", "attn.project.bias", "mlp.fc1.weight", "mlp.fc1.bias",
    "mlp.fc2.weight", "mlp.fc2.bias",
}
# Causal-mask buffers that old transformers versions keep in GPT-2 state_dicts.
GPT2_BUFFERS = re.compile(r"^transformer\.h\.\d+\.attn\.(bias|masked_bias)$")


def split_caption_checkpoint(state: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    state = strip_module_prefix(state)
    mapper = {k.removeprefix("clip_project."): v for k, v in state.items() if k.startswith("clip_project.")}
    gpt = {k.removeprefix("gpt."): v for k, v in state.items() if k.startswith("gpt.")}
    refuse_unexpected("caption checkpoint", [k for k in state if not k.startswith(("clip_project.", "gpt."))],
                      "ClipCaptionModel keys under clip_project.* (the mapper) and gpt.* (GPT2LMHeadModel)")
    if not mapper or not gpt:
        raise ConversionError("caption checkpoint: needs both clip_project.* and gpt.* tensors "
                              f"(found {len(mapper)} and {len(gpt)})")
    return mapper, gpt


def mapper_module(state: dict[str, torch.Tensor], heads: int) -> CaptionMapper:
    layers = sorted({int(m.group(1)) for k in state if (m := re.match(r"transformer\.layers\.(\d+)\.", k))})
    if layers != list(range(len(layers))) or not layers:
        raise ConversionError(f"caption mapper: layer indices {layers} are not 0..L-1")
    expected = {"linear.weight", "linear.bias", "prefix_const"} | {
        f"transformer.layers.{i}.{k}" for i in layers for k in MAPPER_LAYER_KEYS}
    refuse_unexpected("caption mapper (clip_project.*)", [k for k in state if k not in expected],
                      "the names of Scripts/accm_modules.py CaptionMapper (ACCM's per-token TransformerMapper)")
    missing = sorted(expected - set(state))
    if missing:
        raise ConversionError(f"caption mapper: missing {missing[:10]}")
    hidden, inputs = state["linear.weight"].shape
    prefix_length, width = state["prefix_const"].shape
    if width != hidden:
        raise ConversionError(
            f"caption mapper: linear.weight is [{hidden}, {inputs}] but prefix_const is [{prefix_length}, {width}]; "
            "ACCM's mapper projects every token to the GPT-2 width (the original ClipCap mapper, which expands one "
            "CLIP vector to clip_length × width, is not this layout)")
    mlp = state["transformer.layers.0.mlp.fc1.weight"].shape[0]
    if hidden % heads:
        raise ConversionError(f"caption mapper: width {hidden} is not divisible by --mapper-heads {heads}")
    module = CaptionMapper(inputs, hidden, prefix_length, len(layers), num_heads=heads, mlp_ratio=mlp / hidden)
    if module.transformer.layers[0].mlp.fc1.out_features != mlp:
        raise ConversionError(f"caption mapper: MLP width {mlp} is not int(width × ratio)")
    module.load_state_dict(state, strict=True)
    return module.eval()


def gpt2_model(state: dict[str, torch.Tensor], config_source: Path | None, heads: int):
    from transformers import GPT2Config, GPT2LMHeadModel

    state = {k: v for k, v in state.items() if not GPT2_BUFFERS.match(k)}
    vocab, width = state["transformer.wte.weight"].shape
    positions = state["transformer.wpe.weight"].shape[0]
    layers = len({int(m.group(1)) for k in state if (m := re.match(r"transformer\.h\.(\d+)\.", k))})
    if config_source is not None:
        config = GPT2Config.from_pretrained(config_source)
        for name, value in (("vocab_size", vocab), ("n_embd", width), ("n_positions", positions), ("n_layer", layers)):
            if getattr(config, name) != value:
                raise ConversionError(f"GPT-2: {config_source} says {name} = {getattr(config, name)}, the checkpoint {value}")
    else:
        config = GPT2Config(vocab_size=vocab, n_positions=positions, n_embd=width, n_layer=layers, n_head=heads)
    model = GPT2LMHeadModel(config)
    expected = set(model.state_dict())
    refuse_unexpected("GPT-2 (gpt.*)", [k for k in state if k not in expected], "GPT2LMHeadModel names")
    if "lm_head.weight" in state and not torch.equal(state["lm_head.weight"], state["transformer.wte.weight"]):
        raise ConversionError("GPT-2: lm_head.weight differs from transformer.wte.weight (an untied head is not GPT-2)")
    state.setdefault("lm_head.weight", state["transformer.wte.weight"])
    missing = sorted(expected - set(state))
    if missing:
        raise ConversionError(f"GPT-2: missing {missing[:10]}")
    model.load_state_dict(state, strict=True)
    return model.eval()


# ---------------------------------------------------------------------------------------------------------
# Selector checkpoint → selector/scorer

SELECTOR_LAYER_KEYS = {
    "self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight", "self_attn.out_proj.bias",
    "linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias", "norm1.weight", "norm1.bias",
    "norm2.weight", "norm2.bias",
}
SELECTOR_LAYER_PREFIXES = ("transformer.layers.", "encoder.layers.", "layers.")
SELECTOR_HEADS = ("head", "linear", "classifier", "fc")


def selector_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The selector's tensors under Scripts/accm_modules.py CaptionSelector names."""
    state = strip_module_prefix(state)
    out: dict[str, torch.Tensor] = {}
    unexpected = []
    layer_prefixes_seen = set()
    heads_seen = set()
    for key, value in state.items():
        for prefix in SELECTOR_LAYER_PREFIXES:
            m = re.match(re.escape(prefix) + r"(\d+)\.(.+)$", key)
            if m and m.group(2) in SELECTOR_LAYER_KEYS:
                layer_prefixes_seen.add(prefix)
                out[f"transformer.layers.{m.group(1)}.{m.group(2)}"] = value
                break
        else:
            head = key.rsplit(".", 1)
            if len(head) == 2 and head[0] in SELECTOR_HEADS and head[1] in ("weight", "bias"):
                heads_seen.add(head[0])
                out[f"head.{head[1]}"] = value
            else:
                unexpected.append(key)
    refuse_unexpected(
        "selector checkpoint", unexpected,
        f"TransformerEncoderLayer tensors under {' / '.join(p + 'N.' for p in SELECTOR_LAYER_PREFIXES)} "
        f"({', '.join(sorted(SELECTOR_LAYER_KEYS))}) and a scoring head {' / '.join(SELECTOR_HEADS)}.weight/.bias")
    if len(layer_prefixes_seen) > 1 or len(heads_seen) != 1:
        raise ConversionError(f"selector checkpoint: ambiguous layout (layer prefixes {sorted(layer_prefixes_seen)}, "
                              f"heads {sorted(heads_seen)}); expected one of each")
    return out


def selector_module(state: dict[str, torch.Tensor], heads: int) -> CaptionSelector:
    state = selector_state(state)
    layers = sorted({int(m.group(1)) for k in state if (m := re.match(r"transformer\.layers\.(\d+)\.", k))})
    if not layers or layers != list(range(len(layers))):
        raise ConversionError(f"selector: layer indices {layers} are not 0..L-1")
    width = state["transformer.layers.0.norm1.weight"].shape[0]
    feedforward = state["transformer.layers.0.linear1.weight"].shape[0]
    if state.get("head.weight") is None or tuple(state["head.weight"].shape) != (1, width):
        raise ConversionError(f"selector: the head must be Linear({width}, 1), found "
                              f"{tuple(state['head.weight'].shape) if 'head.weight' in state else 'none'}")
    if width % heads:
        raise ConversionError(f"selector: width {width} is not divisible by --selector-heads {heads}")
    module = CaptionSelector(width, heads, feedforward, len(layers))
    missing = sorted(set(module.state_dict()) - set(state))
    if missing:
        raise ConversionError(f"selector: missing {missing[:10]}")
    module.load_state_dict(state, strict=True)
    return module.eval()


# ---------------------------------------------------------------------------------------------------------
# Hugging Face directories


def save_accm_module(module, to: Path) -> None:
    to.mkdir(parents=True, exist_ok=True)
    (to / "config.json").write_text(json.dumps(module.config(), indent=2) + "\n")
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(to / "model.safetensors"))


def place_hf_directory(source: Path, to: Path, link: bool) -> None:
    """Copies (or links) a Hugging Face directory; pytorch_model*.bin weights become safetensors."""
    if not (source / "config.json").is_file():
        raise ConversionError(f"{source} is not a Hugging Face model directory (no config.json)")
    to.mkdir(parents=True, exist_ok=True)
    has_safetensors = any(source.glob("*.safetensors"))
    for file in sorted(source.iterdir()):
        if not file.is_file() or file.name.startswith("."):
            continue
        if file.suffix == ".bin" and file.name.startswith("pytorch_model"):
            if has_safetensors:
                continue
            state = torch.load(file, map_location="cpu", weights_only=True)
            name = file.name.replace("pytorch_model", "model").replace(".bin", ".safetensors")
            save_file({k: v.contiguous().clone() for k, v in state.items()}, str(to / name), metadata={"format": "pt"})
        elif file.name == "pytorch_model.bin.index.json":
            if has_safetensors:
                continue
            index = json.loads(file.read_text())
            index["weight_map"] = {k: v.replace("pytorch_model", "model").replace(".bin", ".safetensors")
                                   for k, v in index["weight_map"].items()}
            (to / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
        elif link:
            (to / file.name).symlink_to(file.resolve())
        else:
            shutil.copyfile(file, to / file.name)


def convert(args: argparse.Namespace) -> Path:
    out: Path = args.out
    if out.exists() and any(out.iterdir()):
        if not args.force:
            raise ConversionError(f"{out} exists and is not empty (pass --force to replace it)")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)

    mapper_state, gpt_state = split_caption_checkpoint(load_state_dict(args.caption, args.trust_pickle))
    mapper = mapper_module(mapper_state, args.mapper_heads)
    config_source = args.gpt2_config or (args.gpt2_tokenizer if (args.gpt2_tokenizer / "config.json").is_file() else None)
    gpt2 = gpt2_model(gpt_state, config_source, args.gpt2_heads)
    if mapper.hidden_size != gpt2.config.n_embd:
        raise ConversionError(f"the mapper writes width {mapper.hidden_size}, GPT-2 reads {gpt2.config.n_embd}")
    save_accm_module(mapper, out / "caption" / "mapper")
    gpt2.save_pretrained(out / "caption" / "gpt2")
    copied = [f for f in TOKENIZER_FILES if (args.gpt2_tokenizer / f).is_file()]
    if not copied:
        raise ConversionError(f"{args.gpt2_tokenizer} holds no tokenizer files ({', '.join(TOKENIZER_FILES)})")
    for f in copied:
        shutil.copyfile(args.gpt2_tokenizer / f, out / "caption" / "gpt2" / f)

    selector = selector_module(load_state_dict(args.selector, args.trust_pickle), args.selector_heads)
    save_accm_module(selector, out / "selector" / "scorer")

    place_hf_directory(args.clip, out / "vision", args.link)
    place_hf_directory(args.llava, out / "llava", args.link)
    place_hf_directory(args.selector_text or args.clip, out / "selector" / "text", args.link)
    if args.selector_text is None:
        print("note: no --selector-text; the selector reads the vision CLIP's text tower (the authors' selector "
              "was trained on LongCLIP-L's)", file=sys.stderr)

    # Widths that must agree between the components.
    clip_config = json.loads((out / "vision" / "config.json").read_text())
    projection = clip_config.get("projection_dim")
    if projection is not None and projection != mapper.input_size:
        raise ConversionError(f"the mapper reads width {mapper.input_size}, the CLIP projection is {projection}")
    text_config = json.loads((out / "selector" / "text" / "config.json").read_text())
    text_projection = text_config.get("projection_dim")
    if text_projection is not None and text_projection != selector.d_model:
        raise ConversionError(f"the selector reads width {selector.d_model}, its text tower projects to {text_projection}")
    if not (out / "vision" / "preprocessor_config.json").is_file():
        raise ConversionError(f"{args.clip} has no preprocessor_config.json")
    llava_config = json.loads((out / "llava" / "config.json").read_text())

    (out / "accm.json").write_text(json.dumps({
        "format": 1, "vision": "vision", "caption_mapper": "caption/mapper", "caption_language_model": "caption/gpt2",
        "selector_text_encoder": "selector/text", "selector": "selector/scorer", "llava": "llava",
        "image_aspect_ratio": args.image_aspect_ratio,
        "vision_feature_layer": llava_config.get("vision_feature_layer", -2),
        "caption_stop": ".", "caption_beams": args.beams, "caption_max_new_tokens": args.caption_max_new_tokens,
    }, indent=2) + "\n")
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--self-test", action="store_true")
    p.add_argument("--out", type=Path)
    p.add_argument("--caption", type=Path, help="ClipCaptionModel state_dict pickle")
    p.add_argument("--selector", type=Path, help="TransformerSelector pickle")
    p.add_argument("--gpt2-tokenizer", type=Path, help="directory with the GPT-2 tokenizer files")
    p.add_argument("--gpt2-config", type=Path, help="GPT-2 config.json or its directory (default: the tokenizer's)")
    p.add_argument("--gpt2-heads", type=int, default=12)
    p.add_argument("--mapper-heads", type=int, default=8)
    p.add_argument("--selector-heads", type=int, default=8)
    p.add_argument("--clip", type=Path, help="HF CLIPModel directory with preprocessor_config.json")
    p.add_argument("--llava", type=Path, help="HF LlavaForConditionalGeneration directory with its tokenizer")
    p.add_argument("--selector-text", type=Path, help="HF CLIP text tower with projection (LongCLIP); default --clip")
    p.add_argument("--image-aspect-ratio", default="pad", choices=["pad", "crop"])
    p.add_argument("--beams", type=int, default=3)
    p.add_argument("--caption-max-new-tokens", type=int, default=67)
    p.add_argument("--link", action="store_true", help="symlink the Hugging Face directories' files")
    p.add_argument("--trust-pickle", action="store_true", help="allow pickles of whole modules (runs unpickling)")
    p.add_argument("--force", action="store_true", help="replace --out")
    return p


# ---------------------------------------------------------------------------------------------------------
# Self-test


class ClipCaptionModel(nn.Module):
    """The authors' ClipCaptionModel as far as its state_dict goes: clip_project (mapper) + gpt."""

    def __init__(self, mapper: CaptionMapper, gpt):
        super().__init__()
        self.gpt = gpt
        self.clip_project = mapper


class SelectorEncoder(nn.Module):
    """TransformerSelector spelled as `encoder = nn.TransformerEncoder`, `classifier = nn.Linear`."""

    def __init__(self, reference: CaptionSelector):
        super().__init__()
        self.encoder = reference.transformer
        self.classifier = reference.head


class SelectorLayers(nn.Module):
    """TransformerSelector spelled as `layers = ModuleList[TransformerEncoderLayer]`, `fc = nn.Linear`."""

    def __init__(self, reference: CaptionSelector):
        super().__init__()
        self.layers = reference.transformer.layers
        self.fc = reference.head


FAKE_MODULE = "accm_selector_training"


def unimportable_selector(reference: CaptionSelector) -> nn.Module:
    """A TransformerSelector whose class lives in a module that exists only while it is pickled."""
    cls = type("TransformerSelector", (SelectorEncoder,), {"__module__": FAKE_MODULE})
    return cls(reference)


def save_pickle(obj, path: Path) -> None:
    if type(obj).__module__ == FAKE_MODULE:
        fake = types.ModuleType(FAKE_MODULE)
        setattr(fake, type(obj).__name__, type(obj))
        sys.modules[FAKE_MODULE] = fake
        try:
            torch.save(obj, path)
        finally:
            del sys.modules[FAKE_MODULE]
    else:
        torch.save(obj, path)


def self_test() -> None:
    from PIL import Image
    from transformers import GPT2LMHeadModel
    from transformers import logging as hf_logging

    from accm_reference import ACCMReference, Pruner, load_module

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    torch.set_grad_enabled(False)
    fixture = ROOT / "Tests" / "Fixtures" / "accm"
    model = fixture / "model"
    mapper = load_module(model / "caption" / "mapper")
    gpt2 = GPT2LMHeadModel.from_pretrained(model / "caption" / "gpt2").eval()
    selector = load_module(model / "selector" / "scorer")
    gen = torch.Generator().manual_seed(0)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        caption = tmp / "coco_prefix-009.pt"
        state = ClipCaptionModel(mapper, gpt2).state_dict()
        # transformers 4.31 state_dicts carry GPT-2's causal-mask buffers; they must be dropped.
        n = gpt2.config.n_positions
        for i in range(gpt2.config.n_layer):
            state[f"gpt.transformer.h.{i}.attn.bias"] = torch.tril(torch.ones(n, n, dtype=torch.bool))[None, None]
            state[f"gpt.transformer.h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
        torch.save(state, caption)

        variants = {
            "transformer.layers + head (state_dict)": (selector.state_dict(), False),
            "encoder.layers + classifier (DataParallel)": (
                {"module." + k: v for k, v in SelectorEncoder(selector).state_dict().items()}, False),
            "layers + fc (in a training dict)": ({"epoch": 19, "state_dict": SelectorLayers(selector).state_dict()}, False),
            "whole module of an unimportable class (--trust-pickle)": (unimportable_selector(selector), True),
        }
        x = torch.randn(2, 3, selector.d_model, generator=gen)
        tokens = torch.randn(1, 7, mapper.input_size, generator=gen)
        ids = torch.randint(0, gpt2.config.vocab_size, (1, 9), generator=gen)
        for number, (name, (obj, trust)) in enumerate(variants.items()):
            path = tmp / f"selector-{number}.pt"
            save_pickle(obj, path)
            out = tmp / f"converted-{number}"
            args = parser().parse_args([
                "--out", str(out), "--caption", str(caption), "--selector", str(path),
                "--gpt2-tokenizer", str(model / "caption" / "gpt2"), "--clip", str(model / "vision"),
                "--llava", str(model / "llava"), "--selector-text", str(model / "selector" / "text"),
                "--mapper-heads", str(mapper.num_heads), "--selector-heads", str(selector.nhead),
                "--caption-max-new-tokens", "6"] + (["--trust-pickle", "--link"] if trust else []))
            convert(args)
            converted_selector = load_module(out / "selector" / "scorer")
            converted_mapper = load_module(out / "caption" / "mapper")
            converted_gpt2 = GPT2LMHeadModel.from_pretrained(out / "caption" / "gpt2").eval()
            assert torch.equal(converted_selector(x), selector(x)), name
            assert torch.equal(converted_mapper(tokens), mapper(tokens))
            assert torch.equal(converted_gpt2(ids).logits, gpt2(ids).logits)
            print(f"ok  selector {name}: converted modules give identical outputs")

        # Without --trust-pickle a whole-module pickle is refused with a hint.
        expect_error(lambda: load_state_dict(tmp / "selector-3.pt", False), "--trust-pickle")
        # Unknown selector keys are listed.
        bad = dict(selector.state_dict())
        bad["transformer.layers.0.extra_gate.weight"] = torch.zeros(1)
        bad["pos_embedding"] = torch.zeros(3, 24)
        torch.save(bad, tmp / "bad-selector.pt")
        expect_error(lambda: selector_module(load_state_dict(tmp / "bad-selector.pt", False), selector.nhead),
                     "transformer.layers.0.extra_gate.weight", "pos_embedding")
        # An original ClipCap mapper (one CLIP vector expanded to clip_length prefixes) is not this layout.
        original = dict(state)
        original["clip_project.linear.weight"] = torch.zeros(10 * mapper.hidden_size, mapper.input_size)
        original["clip_project.linear.bias"] = torch.zeros(10 * mapper.hidden_size)
        expect_error(lambda: mapper_module(split_caption_checkpoint(original)[0], mapper.num_heads), "original ClipCap")
        # Keys outside clip_project./gpt. are listed.
        expect_error(lambda: split_caption_checkpoint({**state, "prefix_proj.weight": torch.zeros(1)}),
                     "prefix_proj.weight")
        print("ok  bad checkpoints are refused with the offending keys")

        # The converted directory answers the fixture's cases exactly as the reference file says.
        reference = ACCMReference(tmp / "converted-0")
        expected = json.loads((fixture / "reference.json").read_text())["cases"]
        for case in expected:
            result = reference.answer(Image.open(fixture / "images" / case["image"]), case["question"], case["budget"],
                                      Pruner.from_json(case["pruner"]), case["compensate"], case["max_new_tokens"])
            for key in ("kept_indices", "chosen", "caption", "prompt_ids", "answer_ids"):
                assert result[key] == case[key], (case["id"], key, result[key], case[key])
            assert [c["ids"] for c in result["candidates"]] == [c["ids"] for c in case["candidates"]], case["id"]
        print(f"ok  the converted directory reproduces all {len(expected)} fixture cases")
        manifest = json.loads((tmp / "converted-0" / "accm.json").read_text())
        assert manifest == json.loads((model / "accm.json").read_text()), manifest
        print("ok  accm.json equals the fixture's")


def expect_error(action, *fragments: str) -> None:
    try:
        action()
    except ConversionError as error:
        message = str(error)
        for fragment in fragments:
            assert fragment in message, (fragment, message)
        return
    raise AssertionError(f"no ConversionError (expected one mentioning {fragments})")


def main() -> None:
    from transformers import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    args = parser().parse_args()
    if args.self_test:
        self_test()
        return
    needed = ("out", "caption", "selector", "gpt2_tokenizer", "clip", "llava")
    missing = ["--" + n.replace("_", "-") for n in needed if getattr(args, n) is None]
    if missing:
        parser().error("missing " + ", ".join(missing))
    existed = args.out.exists()
    try:
        out = convert(args)
    except ConversionError as error:
        if not existed and args.out.exists():
            shutil.rmtree(args.out)  # nothing half-written is left behind
        raise SystemExit(f"error: {error}") from None
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
