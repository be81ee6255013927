"""The family's LLaVA: the frozen CLIP vision tower's penultimate-layer patch features -> mlp2x_gelu projector ->
LLaMA decoder, with the prompts `accm ask` builds (vicuna_v1, `tokenizer_image_token`, ACCM's caption line).

Shared by the decoder stage (train_decoder.py) and the KL stage (train_captioner.py):

- `Prompts` turns (question, caption or None) into token ids with one IMAGE slot, exactly as
  Scripts/accm_reference.py (and so Sources/ACCM/DecoderStage.swift) does, and answers into target ids;
- `TinyLlava` holds projector + LlamaForCausalLM and runs batches of samples whose visual tokens are any subset
  of the 64 patches (all, pruned, or none), returning the logits at the answer positions;
- `export_llava` writes a standard LlavaForConditionalGeneration directory (vision tower = the CLIP's).
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "Scripts"))
import family  # noqa: E402
from training_utils import pad_right  # noqa: E402
from accm_reference import IMAGE_TOKEN_INDEX, tokenizer_image_token, vicuna_v1_prompt  # noqa: E402

from transformers import AutoTokenizer, CLIPModel, LlamaForCausalLM  # noqa: E402


class Prompts:
    """Token ids of decoder prompts and answers, with caches (the world has few distinct texts)."""

    def __init__(self, tokenizer_dir: Path = family.TOKENIZERS / "llama"):
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        self.eos = self.tokenizer.eos_token_id
        self._prompt: dict[str, list[int]] = {}
        self._caption: dict[str, list[int]] = {}
        self._answer: dict[str, list[int]] = {}
        self._turn: dict[str, list[int]] = {}
        # tokens of "additional information:" before every caption (the pre-tokenizer splits at spaces)
        self.caption_offset = len(self.tokenizer("additional information:").input_ids) - 1

    def prompt(self, question: str, caption: str | None) -> list[int]:
        """vicuna_v1 ids with one IMAGE_TOKEN_INDEX; the caption line after the image line (accm_reference)."""
        ids = self._prompt.get(question)
        if ids is None:
            ids = tokenizer_image_token(vicuna_v1_prompt(question), self.tokenizer)
            self._prompt[question] = ids
        if caption is None:
            return ids
        at = ids.index(IMAGE_TOKEN_INDEX) + 3
        return ids[:at] + self.caption_ids(caption) + ids[at:]

    def turn(self, question: str) -> list[int]:
        """A later turn of a vicuna_v1 conversation, after the previous answer's </s>: "USER: q ASSISTANT:"."""
        ids = self._turn.get(question)
        if ids is None:
            ids = self.tokenizer("USER: " + question + " ASSISTANT:").input_ids[1:]
            self._turn[question] = ids
        return ids

    def caption_ids(self, caption: str) -> list[int]:
        """The ids of "additional information: <caption>" without BOS (its first caption_offset are the label)."""
        extra = self._caption.get(caption)
        if extra is None:
            extra = self.tokenizer("additional information: " + caption).input_ids[1:]
            label = self.tokenizer("additional information:").input_ids[1:]
            assert extra[:len(label)] == label, caption
            self._caption[caption] = extra
        return extra

    def answer(self, answer: str) -> list[int]:
        """The ids after "ASSISTANT:" for ' answer', then </s> (checked to be context-free once per answer)."""
        ids = self._answer.get(answer)
        if ids is None:
            probe = vicuna_v1_prompt("Is there a red square?")
            base = tokenizer_image_token(probe, self.tokenizer)
            full = tokenizer_image_token(probe + " " + answer, self.tokenizer)
            assert full[:len(base)] == base, answer
            ids = full[len(base):] + [self.eos]
            self._answer[answer] = ids
        return ids


@dataclass
class Sample:
    """One decoder input: prompt ids (one IMAGE slot), which patches fill the slot, the answer's ids."""
    prompt: list[int]
    scene: int
    patches: list[int]  # ascending patch indices (empty: no visual tokens)
    answer: list[int]
    # Spans of prompt[start:end] (after the image) that are targets too (decoder training only): `turns`, the
    # answers of earlier turns of a multi-turn conversation (weighted as answers); `dense`, the caption line
    # predicted from the image (LLaVA's captioning-style supervision).
    turns: tuple[tuple[int, int], ...] = ()
    dense: tuple[tuple[int, int], ...] = ()

    def shifted(self, by: int) -> "Sample":
        """The sample with its prompt cut `by` tokens from the front (spans shifted alike)."""
        move = lambda spans: tuple((a - by, b - by) for a, b in spans)  # noqa: E731
        return Sample(self.prompt[by:], self.scene, self.patches, self.answer, move(self.turns), move(self.dense))


class Projector(nn.Module):
    """LLaVA-1.5 mlp2x_gelu (multi_modal_projector.linear_1 / linear_2)."""

    def __init__(self, vision: int = family.CLIP_HIDDEN, hidden: int = family.DECODER_HIDDEN):
        super().__init__()
        self.linear_1 = nn.Linear(vision, hidden)
        self.linear_2 = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.gelu(self.linear_1(x)))


class TinyLlava(nn.Module):
    def __init__(self):
        super().__init__()
        self.projector = Projector()
        self.lm = LlamaForCausalLM(family.decoder_config())

    def embed_batch(self, samples: list[Sample], features: torch.Tensor, with_answer: bool = True):
        """inputs_embeds [B, L, D] (right-padded), attention mask [B, L], and for each sample the positions
        whose logits predict the answer's tokens (the last prompt position and the answer's own, minus the last)."""
        embed = self.lm.get_input_embeddings()
        pieces, predict = [], []
        for s in samples:
            at = s.prompt.index(IMAGE_TOKEN_INDEX)
            text = s.prompt[:at] + s.prompt[at + 1:] + (s.answer[:-1] if with_answer else [])
            e = embed(torch.tensor(text))
            parts = [e[:at]]
            if s.patches:
                parts.append(self.projector(features[s.scene][s.patches].float()))
            parts.append(e[at:])
            x = torch.cat(parts)
            prompt_len = len(s.prompt) - 1 + len(s.patches)
            n_predict = len(s.answer) if with_answer else 1
            positions = list(range(prompt_len - 1, prompt_len - 1 + n_predict))
            if with_answer:
                # prompt index j > at sits at j - 1 + len(patches) and is predicted one position earlier
                positions += [j - 2 + len(s.patches) for span in s.turns + s.dense for j in range(*span)]
            predict.append(positions)
            pieces.append(x)
        batch, mask = pad_right(pieces)
        return batch, mask, predict

    def answer_logits(self, samples: list[Sample], features: torch.Tensor, with_answer: bool = True) -> list[torch.Tensor]:
        """Per sample, the logits [answer length (or 1), vocab] at the positions that predict the answer.

        The prompt before the image (BOS, the vicuna system line, "USER:": 67 of ~145 tokens) is the same for
        every sample, so it runs once per batch and its KV cache is shared by all rows (differentiable: the
        gradient of every row flows into it). Equal to running each sample whole (checked to ~1e-6)."""
        at = samples[0].prompt.index(IMAGE_TOKEN_INDEX)
        prefix = samples[0].prompt[:at]
        assert all(s.prompt[:at] == prefix and s.prompt[at] == IMAGE_TOKEN_INDEX for s in samples)
        cache = self.lm.model(input_ids=torch.tensor([prefix]), use_cache=True).past_key_values
        cache.batch_repeat_interleave(len(samples))
        rest = [s.shifted(at) for s in samples]
        x, mask, predict = self.embed_batch(rest, features, with_answer)
        mask = torch.cat([torch.ones(len(samples), at, dtype=torch.long), mask], 1)
        position = torch.arange(at, at + x.shape[1])[None].expand(len(samples), -1)
        hidden = self.lm.model(inputs_embeds=x, attention_mask=mask, position_ids=position, past_key_values=cache,
                               use_cache=True).last_hidden_state
        return self._logits_at(hidden, predict)

    def answer_logits_unshared(self, samples: list[Sample], features: torch.Tensor, with_answer: bool = True) -> list[torch.Tensor]:
        """`answer_logits` without the shared prefix: every sample runs whole (the check of the fast path)."""
        x, mask, predict = self.embed_batch(samples, features, with_answer)
        hidden = self.lm.model(inputs_embeds=x, attention_mask=mask).last_hidden_state
        return self._logits_at(hidden, predict)

    def _logits_at(self, hidden: torch.Tensor, predict: list[list[int]]) -> list[torch.Tensor]:
        """The LM head on row i's positions predict[i] only (one matrix product for the batch), split per row."""
        logits = self.lm.lm_head(torch.cat([hidden[i, p] for i, p in enumerate(predict)]))
        return list(logits.split([len(p) for p in predict]))

    @torch.no_grad()
    def first_answer_logits(self, samples: list[Sample], features: torch.Tensor) -> torch.Tensor:
        """Logits [B, vocab] of each sample's first answer token (inference only)."""
        return torch.cat(self.answer_logits(samples, features, with_answer=False))

    def loss(self, samples: list[Sample], features: torch.Tensor, dense_weight: float = 0.5):
        """Cross-entropy of the answers (final and earlier turns) + dense_weight x that of the caption targets;
        returns (loss, answer loss, dense loss or None)."""
        logits = self.answer_logits(samples, features)
        answer_rows, answer_targets, dense_rows, dense_targets = [], [], [], []
        for lg, s in zip(logits, samples):
            n_turns = sum(b - a for a, b in s.turns)
            answer_rows.append(lg[:len(s.answer) + n_turns])
            answer_targets += s.answer + [t for a, b in s.turns for t in s.prompt[a:b]]
            dense_rows.append(lg[len(s.answer) + n_turns:])
            dense_targets += [t for a, b in s.dense for t in s.prompt[a:b]]
        answer_loss = F.cross_entropy(torch.cat(answer_rows), torch.tensor(answer_targets))
        if not dense_targets:
            return answer_loss, answer_loss, None
        dense_loss = F.cross_entropy(torch.cat(dense_rows), torch.tensor(dense_targets))
        return answer_loss + dense_weight * dense_loss, answer_loss, dense_loss


def clip_features(clip_dir: Path, images_uint8: torch.Tensor, layer: int = -2, batch: int = 500) -> torch.Tensor:
    """hidden_states[layer] of the CLIP vision tower without the class token: [N, 64, width] (float16)."""
    from train_clip import pixels

    clip = CLIPModel.from_pretrained(clip_dir).eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(images_uint8), batch):
            h = clip.vision_model(pixel_values=pixels(images_uint8[s:s + batch]), output_hidden_states=True)
            out.append(h.hidden_states[layer][:, 1:].to(torch.float16))
    return torch.cat(out)


def export_llava(model: TinyLlava, clip_dir: Path, tokenizer_dir: Path, directory: Path) -> None:
    """A LlavaForConditionalGeneration directory: vision tower = the CLIP's, the projector, the decoder, tokenizer."""
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    clip = CLIPModel.from_pretrained(clip_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlavaConfig(
        vision_config=clip.config.vision_config.to_dict(), text_config=family.decoder_config().to_dict(),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"), projector_hidden_act="gelu",
        vision_feature_layer=-2, vision_feature_select_strategy="default", image_seq_length=family.NUM_PATCHES)
    llava = LlavaForConditionalGeneration(config).eval()
    llava.model.vision_tower.load_state_dict(clip.vision_model.state_dict(), strict=True)
    llava.model.multi_modal_projector.load_state_dict(model.projector.state_dict(), strict=True)
    llava.model.language_model.load_state_dict(model.lm.model.state_dict(), strict=True)
    llava.lm_head.load_state_dict(model.lm.lm_head.state_dict(), strict=True)
    llava.generation_config.eos_token_id = tokenizer.eos_token_id
    llava.generation_config.pad_token_id = tokenizer.eos_token_id
    if directory.exists():
        shutil.rmtree(directory)
    llava.save_pretrained(directory, safe_serialization=True)
    for f in tokenizer_dir.iterdir():
        shutil.copy(f, directory / f.name)
