"""Checks of the world generator: determinism, geometry, answers, text, and the committed test split.

    python -m unittest discover -s Training/tests
"""

from __future__ import annotations

import json
import re
import sys
import unittest
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

TRAINING = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TRAINING))

import language as lang  # noqa: E402
import questions as qs  # noqa: E402
import world  # noqa: E402
from make_dataset import DEFAULT_SEED, generate  # noqa: E402

SCENES = 300


def _sample(count: int = SCENES, seed: int = 7):
    return list(generate("validation", count, seed))


class Determinism(unittest.TestCase):
    def test_same_seed_same_scene(self):
        a_img, a_scene = world.make_scene(np.random.default_rng([1, 2, 3]))
        b_img, b_scene = world.make_scene(np.random.default_rng([1, 2, 3]))
        np.testing.assert_array_equal(a_img, b_img)
        self.assertEqual(a_scene, b_scene)

    def test_split_is_reproducible(self):
        first = [(i.tobytes(), s, q) for _, i, s, q in generate("train", 30, 11)]
        second = [(i.tobytes(), s, q) for _, i, s, q in generate("train", 30, 11)]
        self.assertEqual(first, second)

    def test_scenes_differ(self):
        images = {img.tobytes() for _, img, _, _ in generate("train", 30, 11)}
        self.assertEqual(len(images), 30)


class Geometry(unittest.TestCase):
    def test_objects(self):
        for _, image, scene, _ in _sample():
            self.assertEqual(image.shape, (64, 64, 3))
            self.assertEqual(image.dtype, np.uint8)
            self.assertTrue(world.MIN_OBJECTS <= len(scene.objects) <= world.MAX_OBJECTS)
            for o in scene.objects:
                x0, y0, x1, y1 = o.bbox
                self.assertTrue(1 <= x0 < x1 <= 63 and 1 <= y0 < y1 <= 63, o)
                self.assertTrue(1 <= len(o.patches) <= 4, o)
                cols = {p % world.GRID for p in o.patches}
                rows = {p // world.GRID for p in o.patches}
                self.assertTrue(max(cols) - min(cols) <= 1 and max(rows) - min(rows) <= 1, o)
                for p in o.patches:  # every touched patch meets the bounding box
                    px, py = (p % world.GRID) * 8, (p // world.GRID) * 8
                    self.assertTrue(px < x1 and px + 8 > x0 and py < y1 and py + 8 > y0, o)
                self.assertEqual(o.region, world.region_of(o.cx, o.cy))
                side = {"small": (8, 9.5), "large": (12, 14)}[o.size]
                self.assertTrue(side[0] <= o.side <= side[1], o)
            for a in scene.objects:  # no two footprints closer than the gap
                for b in scene.objects:
                    if a is b:
                        continue
                    ax0, ay0, ax1, ay1 = a.bbox
                    bx0, by0, bx1, by1 = b.bbox
                    self.assertTrue(ax1 <= bx0 or bx1 <= ax0 or ay1 <= by0 or by1 <= ay0, (a, b))
            self.assertEqual(list(scene.objects), sorted(scene.objects, key=lambda o: (o.cy, o.cx)))

    def test_object_color_is_drawn(self):
        for _, image, scene, _ in _sample(50):
            for o in scene.objects:
                if o.shape == "ring":
                    continue  # the hole is background
                color = np.array(world.COLORS[o.color])
                pixel = image[int(o.cy), int(o.cx)].astype(int)
                self.assertLess(np.abs(pixel - color).max(), 40, o)


def _named(scene, color, shape):
    return [i for i, o in enumerate(scene.objects) if o.color == color and o.shape == shape]


class Answers(unittest.TestCase):
    """Recompute every answer from the structured scene by reading the question text."""

    def test_answers(self):
        shapes = "|".join(world.SHAPES)
        colors = "|".join(world.COLOR_NAMES)
        plurals = {lang.plural(s): s for s in world.SHAPES}
        for _, _, scene, asked in _sample():
            objs = scene.objects
            self.assertTrue(qs.MIN_QUESTIONS <= len(asked) <= qs.MAX_QUESTIONS)
            self.assertEqual(len({q.caption for q in asked}), len(asked))
            for q in asked:
                if q.kind == "color":
                    (shape,) = re.fullmatch(rf"What color is the ({shapes})\?", q.question).groups()
                    (i,) = [i for i, o in enumerate(objs) if o.shape == shape]
                    self.assertEqual((q.answer, q.objects), (objs[i].color, (i,)))
                elif q.kind == "shape":
                    (color,) = re.fullmatch(rf"What shape is the ({colors}) object\?", q.question).groups()
                    (i,) = [i for i, o in enumerate(objs) if o.color == color]
                    self.assertEqual((q.answer, q.objects), (objs[i].shape, (i,)))
                elif q.kind == "count":
                    m = re.fullmatch(r"How many (\w+)(?: objects)? are there\?", q.question)
                    word = m.group(1)
                    idx = tuple(i for i, o in enumerate(objs) if (o.shape == plurals.get(word) or o.color == word))
                    self.assertEqual((q.answer, q.objects), (lang.NUMBERS[len(idx)], idx))
                elif q.kind == "exists":
                    color, shape = re.fullmatch(rf"Is there a ({colors}) ({shapes})\?", q.question).groups()
                    idx = tuple(_named(scene, color, shape))
                    self.assertEqual((q.answer, q.objects), ("yes" if idx else "no", idx))
                elif q.kind == "position":
                    m = re.fullmatch(
                        rf"Is the ({colors}) ({shapes}) (left of|right of|above|below) the ({colors}) ({shapes})\?",
                        q.question,
                    )
                    c1, s1, rel, c2, s2 = m.groups()
                    (i,), (j,) = _named(scene, c1, s1), _named(scene, c2, s2)
                    a, b = objs[i], objs[j]
                    delta = {"left of": b.cx - a.cx, "right of": a.cx - b.cx, "above": b.cy - a.cy, "below": a.cy - b.cy}[rel]
                    self.assertGreaterEqual(abs(delta), qs.POSITION_MARGIN)
                    self.assertEqual((q.answer, q.objects), ("yes" if delta > 0 else "no", (i, j)))
                else:
                    self.fail(q.kind)

    def test_no_constant_answer_wins(self):
        by_kind = {}
        for _, _, _, asked in generate("train", 2000, 3):
            for q in asked:
                by_kind.setdefault(q.kind, Counter())[q.answer] += 1
        self.assertEqual(set(by_kind), set(qs.KINDS))
        for kind, counts in by_kind.items():
            share = max(counts.values()) / sum(counts.values())
            self.assertLess(share, 0.55 if kind in ("exists", "position") else 0.40, (kind, counts))


class Text(unittest.TestCase):
    def test_captions_and_descriptions(self):
        vocabulary = set(lang.vocabulary())
        for _, _, scene, asked in _sample():
            description = lang.describe(scene.objects)
            self.assertEqual(description.count("."), len(scene.objects))
            texts = [description]
            for q in asked:
                self.assertTrue(q.caption.endswith(".") and q.caption.count(".") == 1, q.caption)
                self.assertTrue(q.question.endswith("?") and q.question.count("?") == 1, q.question)
                self.assertRegex(q.answer, r"^[a-z]+$")
                texts += [q.caption, q.question, q.answer]
            for t in texts:
                self.assertLessEqual(set(re.findall(r"[a-z]+", t.lower())), vocabulary, t)
                self.assertRegex(t, r"^[A-Za-z .?]+$")


    def test_an_altered_caption_changes_one_word_within_its_kind(self):
        rng = np.random.default_rng(0)
        kinds = [set(world.COLOR_NAMES), set(world.SHAPES), {lang.plural(s) for s in world.SHAPES}, {"no", *lang.NUMBERS[2:]},
                 {"above", "below"}, {"left", "right"}, set(world.SIZES)]
        vocabulary = set(lang.vocabulary())
        for _, _, _, asked in _sample():
            for q in asked:
                changed = lang.altered(q.caption, rng)
                self.assertIsNotNone(changed, q.caption)  # every caption names a color, shape or number
                self.assertTrue(changed.endswith(".") and changed.count(".") == 1, changed)
                old, new = q.caption[:-1].split(" "), changed[:-1].split(" ")
                diff = [(a, b) for a, b in zip(old, new) if a != b]
                self.assertEqual(len(old), len(new))
                self.assertEqual(len(diff), 1, (q.caption, changed))
                self.assertTrue(any(set(diff[0]) <= k for k in kinds), diff)
                self.assertLessEqual(set(re.findall(r"[a-z]+", changed.lower())), vocabulary, changed)
        self.assertIsNone(lang.altered("There is.", rng))


class CommittedTestSplit(unittest.TestCase):
    """The files under Training/test are what the generator writes for the default seed."""

    def test_matches_generator(self):
        root = TRAINING / "test"
        scenes = [json.loads(line) for line in (root / "scenes.jsonl").read_text().splitlines()]
        questions = [json.loads(line) for line in (root / "test.jsonl").read_text().splitlines()]
        self.assertGreaterEqual(len(scenes), 100)
        checked = 0
        for index, image, scene, asked in generate("test", 40, DEFAULT_SEED):
            on_disk = np.asarray(Image.open(root / f"images/{index:05d}.png").convert("RGB"))
            np.testing.assert_array_equal(on_disk, image)
            self.assertEqual(scenes[index]["objects"], scene.to_json())
            self.assertEqual(scenes[index]["description"], lang.describe(scene.objects))
            for k, q in enumerate(asked):
                line = questions[checked]
                self.assertEqual(line["id"], f"test-{index:05d}-{k}")
                self.assertEqual({f: line[f] for f in q.to_json(scene)}, q.to_json(scene))
                checked += 1


if __name__ == "__main__":
    unittest.main()
