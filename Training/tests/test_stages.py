"""The training stages' fast paths equal their plain definitions (random weights; needs the trained tokenizers,
python Training/make_tokenizers.py, and the validation split; skipped without them).

    python -m unittest discover -s Training/tests
"""

from __future__ import annotations

import sys
import unittest
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT.parent / "Scripts"))
import family  # noqa: E402

READY = (family.TOKENIZERS / "llama" / "tokenizer.json").exists() and (ROOT / "data" / "validation").exists()


@unittest.skipUnless(READY, "needs Training/artifacts/tokenizers and Training/data/validation")
class SharedPrefixTests(unittest.TestCase):
    def test_shared_system_prompt_gives_the_same_logits_and_gradients(self):
        from tiny_llava import Prompts, Sample, TinyLlava

        torch.manual_seed(0)
        model = TinyLlava()
        features = torch.randn(3, family.NUM_PATCHES, family.CLIP_HIDDEN)
        p = Prompts()
        samples = [Sample(p.prompt("What color is the cross?", None), 0, list(range(64)), p.answer("red")),
                   Sample(p.prompt("How many red objects are there?", "There are two red objects."), 1, [3, 9, 40],
                          p.answer("zero")),
                   Sample(p.prompt("Is there a ring?", "There is no ring."), 2, [], p.answer("no"))]
        targets = torch.tensor([t for s in samples for t in s.answer])
        results = []
        for forward in (model.answer_logits, model.answer_logits_unshared):
            model.zero_grad()
            logits = torch.cat(forward(samples, features))
            torch.nn.functional.cross_entropy(logits, targets).backward()
            results.append((logits.detach(), {n: q.grad.clone() for n, q in model.named_parameters() if q.grad is not None}))
        (a, grads_a), (b, grads_b) = results
        self.assertLess((a - b).abs().max().item(), 1e-5)
        self.assertEqual(grads_a.keys(), grads_b.keys())
        for name in grads_b:
            self.assertLess((grads_a[name] - grads_b[name]).abs().max().item(), 1e-5, name)
        first = model.first_answer_logits(samples, features)
        self.assertLess((first - torch.stack([x[0] for x in model.answer_logits_unshared(samples, features, False)]))
                        .abs().max().item(), 1e-5)


class CaptionFactsTests(unittest.TestCase):
    def test_facts_ignore_size_and_region_only(self):
        from train_captioner import caption_facts

        self.assertEqual(caption_facts("There is a small green cross at the top right."), "There is a green cross")
        self.assertEqual(caption_facts("There is a large green cross at the bottom."),
                         caption_facts("There is a small green cross at the top right."))
        self.assertNotEqual(caption_facts("There is a small red cross at the top."),
                            caption_facts("There is a small green cross at the top."))
        self.assertEqual(caption_facts("The blue triangle is left of the red ring."),
                         "The blue triangle is left of the red ring")
        self.assertNotEqual(caption_facts("There are two triangles."), caption_facts("There are three triangles."))


@unittest.skipUnless(READY, "needs Training/artifacts/tokenizers and Training/data/validation")
class PipelineSampleTests(unittest.TestCase):
    def test_the_pipelines_kept_patches_and_caption_with_the_true_answer(self):
        import numpy as np
        from tiny_llava import Prompts
        from train_clip import Split
        from train_decoder import pipeline_sample

        split, prompts = Split("validation"), Prompts()
        q = split.questions[3][1]
        row = {"scene": 3, "question": 1, "kept": [40, 2, 17, 9], "caption": "There are two red objects."}
        with_caption = pipeline_sample(split, prompts, row, np.random.default_rng(0), caption_share=1.0)
        self.assertEqual(with_caption.scene, 3)
        self.assertEqual(with_caption.patches, [2, 9, 17, 40])  # the kept patches, in image order
        self.assertEqual(with_caption.prompt, prompts.prompt(q["question"], row["caption"]))
        self.assertEqual(with_caption.answer, prompts.answer(q["answer"]))  # the truth, not the caption's claim
        without = pipeline_sample(split, prompts, row, np.random.default_rng(0), caption_share=0.0)
        self.assertEqual(without.prompt, prompts.prompt(q["question"], None))
        self.assertEqual(without.patches, [2, 9, 17, 40])


@unittest.skipUnless(READY, "needs Training/artifacts/tokenizers and Training/data/validation")
class BeamSearchTests(unittest.TestCase):
    def test_batched_cached_beam_search_is_clipcaps_generate_beam(self):
        from accm_reference import ACCMReference, Margins
        from transformers import AutoTokenizer
        from train_captioner import Captioner

        torch.manual_seed(1)
        captioner = Captioner().eval()
        tokenizer = AutoTokenizer.from_pretrained(family.TOKENIZERS / "gpt2")
        stop = tokenizer.encode(".")[0]
        # steer the random model toward "." so that beams stop at different lengths
        with torch.no_grad():
            captioner.gpt2.lm_head.weight[stop] += 0.05 * torch.randn(family.CAPTION_HIDDEN)
        reference = ACCMReference.__new__(ACCMReference)
        reference.gpt2, reference.gpt2_tokenizer = captioner.gpt2, tokenizer
        reference.beams, reference.caption_max_new_tokens, reference.stop_token = 3, 12, "."
        questions = ["What color is the cross?", "How many triangles are there?", "Is there a red ring?"]
        question_ids = [tokenizer.encode(q) for q in questions]
        pruned = [torch.randn(n, family.CLIP_PROJECTION) for n in (60, 56, 48)]
        batched = captioner.beam_search(question_ids, pruned, 3, stop, 12)
        with torch.no_grad():
            for q, p, got in zip(question_ids, pruned, batched):
                embed = torch.cat([captioner.gpt2.transformer.wte(torch.tensor(q))[None], captioner.mapper(p[None])], 1)
                want = reference.generate_beam(embed, Margins())
                self.assertEqual([ids for ids, _ in got], [w["ids"] for w in want])
                for (_, score), w in zip(got, want):
                    self.assertAlmostEqual(score, w["beam_score"], places=4)


SHIPPED = ROOT.parent / "Models" / "accm-world"


@unittest.skipUnless((family.TOKENIZERS / "llama" / "tokenizer.json").exists(), "needs Training/artifacts/tokenizers")
class SeedFromModelTests(unittest.TestCase):
    def test_the_shipped_weights_come_back_unchanged_through_the_training_modules(self):
        import tempfile

        from safetensors.torch import load_file
        from seed_from_model import load_captioner, load_decoder
        from tiny_llava import export_llava

        with tempfile.TemporaryDirectory() as tmp:
            export_llava(load_decoder(SHIPPED), SHIPPED / "vision", SHIPPED / "llava", Path(tmp) / "llava")
            exported = load_file(f"{tmp}/llava/model.safetensors")
        shipped = load_file(str(SHIPPED / "llava" / "model.safetensors"))
        self.assertEqual(exported.keys(), shipped.keys())
        for name, t in shipped.items():
            self.assertTrue(torch.equal(exported[name], t), name)
        captioner, selector = load_captioner(SHIPPED)
        for module, file in ((captioner.mapper, "caption/mapper"), (captioner.gpt2, "caption/gpt2"),
                             (selector, "selector/scorer")):
            state = module.state_dict()
            for name, t in load_file(str(SHIPPED / file / "model.safetensors")).items():
                self.assertTrue(torch.equal(state[name], t), f"{file}: {name}")
        self.assertTrue(torch.equal(captioner.gpt2.lm_head.weight, captioner.gpt2.transformer.wte.weight))


if __name__ == "__main__":
    unittest.main()


class PatchTagTests(unittest.TestCase):
    def test_tags_name_each_patch_object_and_mark_centers(self):
        from train_clip import COLORS, NO_OBJECT, SHAPES, patch_tags

        # a red cross over patches 0, 1, 8, 9 centred in patch 9; a blue ring sharing patch 9's neighbour 10,
        # centred in patch 11 (patch 10 is nearer the ring's center than the cross's)
        cross = {"shape": "cross", "color": "red", "cx": 9.0, "cy": 9.0, "patches": [0, 1, 8, 9]}
        ring = {"shape": "ring", "color": "blue", "cx": 27.0, "cy": 10.0, "patches": [10, 11, 2, 3]}
        shape, color, center = patch_tags([cross, ring])
        self.assertEqual([shape[p] for p in (0, 1, 8, 9)], [SHAPES.index("cross")] * 4)
        self.assertEqual([color[p] for p in (2, 3, 10, 11)], [COLORS.index("blue")] * 4)
        self.assertEqual(shape[63], NO_OBJECT)
        self.assertEqual(color[63], NO_OBJECT)
        self.assertEqual([p for p in range(64) if center[p]], [9, 11])

    def test_shared_patch_goes_to_the_nearer_object(self):
        from train_clip import SHAPES, patch_tags

        a = {"shape": "square", "color": "red", "cx": 4.0, "cy": 4.0, "patches": [0, 1]}
        b = {"shape": "circle", "color": "red", "cx": 14.0, "cy": 4.0, "patches": [1, 2]}
        shape, _, _ = patch_tags([a, b])
        self.assertEqual(shape[1], SHAPES.index("circle"))  # patch 1's center x=12 is 2 px from b, 8 from a
        self.assertEqual(shape[0], SHAPES.index("square"))
