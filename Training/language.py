"""The world's closed language: scene descriptions, questions, answers and captions.

One small vocabulary and a few fixed sentence shapes serve every text: the decoder's text stage
(descriptions and questions answered from them), the question-relevant captions the caption model
is pre-trained on, and what the decoder later reads after "additional information:". Every
description sentence and every caption is one sentence that ends in "." and has no other "."
inside, so a caption beam search that stops at "." ends exactly where a sentence does.

Sentence shapes:
    object:    There is a {size} {color} {shape} at the {region}.
    count:     There are {n} {shape}s. | There is one {shape}. | There are no {shape}s.
               There are {n} {color} objects. | There is one {color} object. | There are no {color} objects.
               There are {n} {color} {shape}s.
    absence:   There is no {color} {shape}.
    relation:  The {color} {shape} is {left of | right of | above | below} the {color} {shape}.
"""

from __future__ import annotations

from world import COLOR_NAMES, REGION_NAMES, SHAPES, SIZES, SceneObject

NUMBERS = ("zero", "one", "two", "three", "four", "five")
RELATIONS = ("left of", "right of", "above", "below")
_PLURALS = {"cross": "crosses"}


def plural(shape: str) -> str:
    return _PLURALS.get(shape, shape + "s")


def object_sentence(o: SceneObject) -> str:
    return f"There is a {o.size} {o.color} {o.shape} at the {o.region}."


def describe(objects) -> str:
    """The full scene description: one object sentence per object, in reading order."""
    return " ".join(object_sentence(o) for o in objects)


def count_sentence(n: int, noun: str, noun_plural: str) -> str:
    if n == 0:
        return f"There are no {noun_plural}."
    if n == 1:
        return f"There is one {noun}."
    return f"There are {NUMBERS[n]} {noun_plural}."


def shape_count_sentence(n: int, shape: str) -> str:
    return count_sentence(n, shape, plural(shape))


def color_count_sentence(n: int, color: str) -> str:
    return count_sentence(n, f"{color} object", f"{color} objects")


def combination_count_sentence(n: int, color: str, shape: str) -> str:
    return count_sentence(n, f"{color} {shape}", f"{color} {plural(shape)}")


def absence_sentence(color: str, shape: str) -> str:
    return f"There is no {color} {shape}."


def relation_sentence(a: SceneObject, relation: str, b: SceneObject) -> str:
    return f"The {a.color} {a.shape} is {relation} the {b.color} {b.shape}."


def vocabulary() -> list[str]:
    """Every word any description, question, answer or caption can use (lower-cased, no punctuation)."""
    words = {
        "there", "is", "are", "a", "at", "the", "no", "object", "objects",
        "what", "color", "shape", "how", "many",
        "left", "right", "of", "above", "below", "yes",
    }  # fmt: skip
    words.update(SHAPES, (plural(s) for s in SHAPES), COLOR_NAMES, SIZES, NUMBERS)
    for name in REGION_NAMES:
        words.update(name.split())
    return sorted(words)


# Words a misleading caption may swap, each group with the words that can stand in its place.
_SWAPS = (
    COLOR_NAMES,
    SHAPES,
    tuple(plural(s) for s in SHAPES),
    NUMBERS[2:],
    ("above", "below"),
    ("left", "right"),
    SIZES,
)


def altered(sentence: str, rng) -> str | None:
    """The sentence with one color, shape, number, size or direction word replaced by another of its kind (a
    fluent, relevant and wrong caption, like those a caption model gets wrong); None if it has no such word."""
    words = sentence[:-1].split(" ")
    places = [(i, group) for i, w in enumerate(words) for group in _SWAPS if w in group]
    if "no" in words and words.index("no") > 0 and words[words.index("no") - 1] == "are":
        places.append((words.index("no"), ("no",) + NUMBERS[2:]))  # "There are no crosses." <-> "... three ..."
    if not places:
        return None
    i, group = places[rng.integers(len(places))]
    others = [w for w in group if w != words[i]]
    words[i] = others[rng.integers(len(others))]
    return " ".join(words) + "."
