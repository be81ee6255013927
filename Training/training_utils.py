"""Small pieces every training stage uses: the AdamW set-up, checkpoints saved atomically, caches keyed to the CLIP export they came from,
right-padding of variable-length rows."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

import torch


def adamw(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW (betas 0.9/0.98, eps 1e-6) with weight decay on matrices only (not on embeddings, norms, biases)."""
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embed" not in n)]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.98), eps=1e-6)


def save_atomically(obj, path: Path) -> None:
    """torch.save to a temporary file beside `path`, then rename it over `path`: a run killed mid-save leaves
    the previous checkpoint whole (a plain torch.save killed midway leaves a truncated zip)."""
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    torch.save(obj, partial)
    os.replace(partial, path)


def clip_stamp(clip_dir: Path) -> float:
    """What identifies a CLIP export: its weights file's modification time."""
    return (clip_dir / "model.safetensors").stat().st_mtime


def cached_for_clip(path: Path, clip_dir: Path, compute: Callable[[], object], what: str):
    """`compute()`'s result, saved at `path` and reused while the CLIP export in `clip_dir` is the same one."""
    stamp = clip_stamp(clip_dir)
    if path.exists():
        saved = torch.load(path)
        if saved.get("clip_mtime") == stamp and "value" in saved:
            return saved["value"]
    t = time.time()
    value = compute()
    save_atomically({"value": value, "clip_mtime": stamp}, path)
    print(f"{what} in {time.time() - t:.0f} s", flush=True)
    return value


def load_cached_for_clip(path: Path, clip_dir: Path, made_by: str):
    """A cache written by `cached_for_clip`, which must come from the current CLIP export."""
    saved = torch.load(path)
    assert saved["clip_mtime"] == clip_stamp(clip_dir), f"{path} is from another CLIP: rerun {made_by}"
    return saved["value"]


def pad_right(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, L, D] with each row's [l_i, D] at the start, zeros after, and the [B, L] attention mask."""
    length = max(r.shape[0] for r in rows)
    batch = torch.zeros(len(rows), length, rows[0].shape[1])
    mask = torch.zeros(len(rows), length, dtype=torch.long)
    for i, r in enumerate(rows):
        batch[i, :r.shape[0]] = r
        mask[i, :r.shape[0]] = 1
    return batch, mask
