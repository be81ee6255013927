"""Questions with one-word answers about a scene, each with its question-relevant caption.

Kinds (and their forms):
    color     What color is the {shape}?                  -> a color      (the shape is unique in the scene)
    shape     What shape is the {color} object?           -> a shape      (the color is unique in the scene)
    count     How many {shape}s are there?                -> zero..five
              How many {color} objects are there?         -> zero..five
    exists    Is there a {color} {shape}?                 -> yes | no
    position  Is the {color} {shape} {relation} the {color} {shape}?  -> yes | no
              relation: left of / right of (centers at least POSITION_MARGIN apart horizontally),
              above / below (at least POSITION_MARGIN apart vertically); both objects are the only
              ones of their color and shape.

Each question records `objects`: the indices of the objects its answer rests on (the one asked
about; those counted; the matches of an existence question; the two objects of a relation). For a
"zero" count or a "no" existence answer that list is empty: nothing in the image is the evidence.

Answers are balanced so that a constant answer cannot score well. A form is picked uniformly among
the forms the scene allows; yes/no answers are a fair coin; the other kinds take, among the answers
the scene can give, the one given least often so far in the split (ties broken at random). The
balance state therefore runs through a split in order — generation stays deterministic for a seed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np

import language as lang
from world import COLOR_NAMES, SHAPES, Scene

KINDS = ("color", "shape", "count", "exists", "position")
POSITION_MARGIN = 8.0  # pixels between the two centers along the asked axis (one patch)
HARD_NEGATIVE_SHARE = 0.75  # a "no" existence question mostly names a near miss (color or shape present)
MIN_QUESTIONS, MAX_QUESTIONS = 4, 6


@dataclass(frozen=True)
class Question:
    kind: str
    form: str  # the balancing unit inside a kind (e.g. counting shapes vs counting colors)
    question: str
    answer: str  # one word
    objects: tuple[int, ...]  # indices into scene.objects that the answer rests on
    caption: str  # one sentence, ending in ".", that answers the question

    def to_json(self, scene: Scene) -> dict:
        patches = sorted({p for i in self.objects for p in scene.objects[i].patches})
        return {
            "kind": self.kind,
            "question": self.question,
            "answer": self.answer,
            "objects": list(self.objects),
            "patches": patches,
            "caption": self.caption,
        }


# --------------------------------------------------------------------------- candidates per kind


def _color_candidates(scene: Scene) -> list[Question]:
    shapes = Counter(o.shape for o in scene.objects)
    return [
        Question("color", "color", f"What color is the {o.shape}?", o.color, (i,), lang.object_sentence(o))
        for i, o in enumerate(scene.objects)
        if shapes[o.shape] == 1
    ]


def _shape_candidates(scene: Scene) -> list[Question]:
    colors = Counter(o.color for o in scene.objects)
    return [
        Question("shape", "shape", f"What shape is the {o.color} object?", o.shape, (i,), lang.object_sentence(o))
        for i, o in enumerate(scene.objects)
        if colors[o.color] == 1
    ]


def _count_candidates(scene: Scene) -> list[Question]:
    out = []
    for shape in SHAPES:
        idx = tuple(i for i, o in enumerate(scene.objects) if o.shape == shape)
        text = f"How many {lang.plural(shape)} are there?"
        caption = lang.shape_count_sentence(len(idx), shape)
        out.append(Question("count", "count shape", text, lang.NUMBERS[len(idx)], idx, caption))
    for color in COLOR_NAMES:
        idx = tuple(i for i, o in enumerate(scene.objects) if o.color == color)
        text = f"How many {color} objects are there?"
        caption = lang.color_count_sentence(len(idx), color)
        out.append(Question("count", "count color", text, lang.NUMBERS[len(idx)], idx, caption))
    return out


def _exists_candidates(scene: Scene, rng: np.random.Generator) -> list[Question]:
    present = defaultdict(list)
    for i, o in enumerate(scene.objects):
        present[(o.color, o.shape)].append(i)
    out = []
    for (color, shape), idx in present.items():
        if len(idx) == 1:
            caption = lang.object_sentence(scene.objects[idx[0]])
        else:
            caption = lang.combination_count_sentence(len(idx), color, shape)
        out.append(Question("exists", "exists", f"Is there a {color} {shape}?", "yes", tuple(idx), caption))

    absent = [(c, s) for c in COLOR_NAMES for s in SHAPES if (c, s) not in present]
    colors = {c for c, _ in present}
    shapes = {s for _, s in present}
    near_misses = [(c, s) for c, s in absent if c in colors or s in shapes]
    pool = near_misses if near_misses and rng.random() < HARD_NEGATIVE_SHARE else absent
    color, shape = pool[rng.integers(len(pool))]
    out.append(Question("exists", "exists", f"Is there a {color} {shape}?", "no", (), lang.absence_sentence(color, shape)))
    return out


def _position_candidates(scene: Scene) -> list[Question]:
    identities = Counter((o.color, o.shape) for o in scene.objects)
    nameable = [i for i, o in enumerate(scene.objects) if identities[(o.color, o.shape)] == 1]
    out = []
    for i in nameable:
        for j in nameable:
            if i == j:
                continue
            a, b = scene.objects[i], scene.objects[j]
            for form, delta, before, after in (
                ("position horizontal", b.cx - a.cx, "left of", "right of"),
                ("position vertical", b.cy - a.cy, "above", "below"),
            ):
                if abs(delta) < POSITION_MARGIN:
                    continue
                true, false = (before, after) if delta > 0 else (after, before)
                caption = lang.relation_sentence(a, true, b)
                for relation, answer in ((true, "yes"), (false, "no")):
                    text = f"Is the {a.color} {a.shape} {relation} the {b.color} {b.shape}?"
                    out.append(Question("position", form, text, answer, (i, j), caption))
    return out


# --------------------------------------------------------------------------- balanced choice

_BINARY = {"exists", "position"}


class AnswerBalance:
    """Picks one question among a kind's candidates, keeping each form's answers level over a split."""

    def __init__(self) -> None:
        self.given: dict[str, Counter] = defaultdict(Counter)

    def pick(self, kind: str, candidates: list[Question], rng: np.random.Generator) -> Question:
        forms = sorted({q.form for q in candidates})
        form = forms[rng.integers(len(forms))]
        candidates = [q for q in candidates if q.form == form]
        answers = sorted({q.answer for q in candidates})
        if kind in _BINARY:
            answer = answers[rng.integers(len(answers))]
        else:
            least = min(self.given[form][a] for a in answers)
            tied = [a for a in answers if self.given[form][a] == least]
            answer = tied[rng.integers(len(tied))]
        chosen = [q for q in candidates if q.answer == answer]
        q = chosen[rng.integers(len(chosen))]
        self.given[form][q.answer] += 1
        return q


def candidates(kind: str, scene: Scene, rng: np.random.Generator) -> list[Question]:
    if kind == "color":
        return _color_candidates(scene)
    if kind == "shape":
        return _shape_candidates(scene)
    if kind == "count":
        return _count_candidates(scene)
    if kind == "exists":
        return _exists_candidates(scene, rng)
    if kind == "position":
        return _position_candidates(scene)
    raise ValueError(f"unknown kind {kind!r}")


def ask(scene: Scene, rng: np.random.Generator, balance: AnswerBalance) -> list[Question]:
    """4-6 questions of mixed kinds: kinds are taken in a random order, cycling once more if the
    scene needs it (a kind the scene cannot support, e.g. no nameable pair, is skipped). No two
    questions share a caption, so none merely rephrases another (e.g. left of / right of one pair)."""
    wanted = int(rng.integers(MIN_QUESTIONS, MAX_QUESTIONS + 1))
    order = list(rng.permutation(len(KINDS)))
    asked: list[Question] = []
    facts: set[str] = set()  # captions already used: no second question about the same fact
    for k in order + order:
        if len(asked) == wanted:
            break
        kind = KINDS[k]
        pool = [q for q in candidates(kind, scene, rng) if q.caption not in facts]
        if not pool:
            continue
        q = balance.pick(kind, pool, rng)
        asked.append(q)
        facts.add(q.caption)
    return asked
