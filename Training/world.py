"""The synthetic visual world: seeded scenes of a few small objects on a textured background.

A scene is 3-5 objects, each a (shape, color, size) drawn at a sub-pixel position on a 64x64
image whose 8x8-pixel patch grid gives 64 visual tokens. Every object's bounding box lies inside
one 2x2 block of patches, so an object touches at most 4 of the 64 patches: keeping a handful of
patches at random loses most objects, which is what makes pruning hurt.

Everything is a pure function of a numpy Generator; nothing reads global random state.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

IMAGE_SIZE = 64
PATCH_SIZE = 8
GRID = IMAGE_SIZE // PATCH_SIZE  # 8 patches per side, 64 in all

SHAPES = ("square", "circle", "triangle", "cross", "ring")
COLORS = {  # saturated (or white) so that none is confusable with the muted grey backgrounds
    "red": (225, 35, 35),
    "orange": (255, 140, 0),
    "yellow": (245, 225, 30),
    "green": (35, 175, 60),
    "blue": (45, 95, 240),
    "purple": (165, 60, 215),
    "white": (250, 250, 250),
}
COLOR_NAMES = tuple(COLORS)
SIZES = ("small", "large")

MIN_OBJECTS, MAX_OBJECTS = 3, 5

# Drawing happens at SUPERSAMPLE x the final resolution and is box-averaged down (anti-aliasing).
SUPERSAMPLE = 4
_SIDE_RANGE = {"small": (8.0, 9.5), "large": (12.0, 14.0)}  # object side in final pixels
_BORDER = 1.0  # free pixels kept between any object and the image edge
_GAP = 2.0  # free pixels kept between the bounding boxes of any two objects
_BLOCK = 2 * PATCH_SIZE  # an object lives inside one 2x2-patch block (16x16 pixels)

# 3x3 grid of named regions, by the object's center.
REGIONS = (
    ("top left", "top", "top right"),
    ("left", "center", "right"),
    ("bottom left", "bottom", "bottom right"),
)
REGION_NAMES = tuple(name for row in REGIONS for name in row)

# A patch counts as touched by an object when the object's coverage inside it adds up to at least
# this many whole pixels (so a faint anti-aliased fringe does not count as presence).
PATCH_COVERAGE_MIN = 1.0


@dataclass(frozen=True)
class SceneObject:
    shape: str
    color: str
    size: str  # "small" | "large"
    side: float  # side of the object's square footprint, in pixels
    cx: float  # center, in pixels (x to the right, y down)
    cy: float
    bbox: tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, end exclusive, of the drawn footprint
    region: str  # one of REGION_NAMES
    patches: tuple[int, ...]  # raster indices (row * GRID + col) of the patches the object touches

    def to_json(self) -> dict:
        return {
            "shape": self.shape,
            "color": self.color,
            "size": self.size,
            "side": round(self.side, 2),
            "cx": round(self.cx, 2),
            "cy": round(self.cy, 2),
            "bbox": list(self.bbox),
            "region": self.region,
            "patches": list(self.patches),
        }


@dataclass(frozen=True)
class Scene:
    objects: tuple[SceneObject, ...]  # in reading order: by center row, then column

    def to_json(self) -> list[dict]:
        return [o.to_json() for o in self.objects]


def region_of(cx: float, cy: float) -> str:
    third = IMAGE_SIZE / 3
    col = min(int(cx // third), 2)
    row = min(int(cy // third), 2)
    return REGIONS[row][col]


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class _Placement:
    shape: str
    color: str
    size: str
    side: float
    x0: float  # top-left corner of the footprint, in pixels
    y0: float


def _separated(a: _Placement, b: _Placement) -> bool:
    return (
        a.x0 + a.side + _GAP <= b.x0
        or b.x0 + b.side + _GAP <= a.x0
        or a.y0 + a.side + _GAP <= b.y0
        or b.y0 + b.side + _GAP <= a.y0
    )


def _quantize(v: float) -> float:
    """Snap to the supersampled grid, so the drawing matches the recorded geometry exactly."""
    return round(v * SUPERSAMPLE) / SUPERSAMPLE


def _place(rng: np.random.Generator, side: float) -> tuple[float, float]:
    """A random top-left corner that keeps the footprint inside one 2x2-patch block and the image."""
    block_row, block_col = rng.integers(0, GRID - 1, size=2)
    corners = []
    for block in (block_col, block_row):
        lo = max(block * PATCH_SIZE, _BORDER)
        hi = min(block * PATCH_SIZE + _BLOCK, IMAGE_SIZE - _BORDER) - side
        corners.append(_quantize(rng.uniform(lo, hi)))
    return corners[0], corners[1]


def sample_layout(rng: np.random.Generator) -> list[_Placement]:
    """3-5 objects with independent uniform shape, color and size, placed without overlap."""
    count = int(rng.integers(MIN_OBJECTS, MAX_OBJECTS + 1))
    while True:  # a crowded draw is rare (a few percent): start over rather than bias the layout
        placed: list[_Placement] = []
        for _ in range(count):
            shape = SHAPES[rng.integers(len(SHAPES))]
            color = COLOR_NAMES[rng.integers(len(COLOR_NAMES))]
            size = SIZES[rng.integers(len(SIZES))]
            side = _quantize(rng.uniform(*_SIDE_RANGE[size]))
            for _attempt in range(50):
                x0, y0 = _place(rng, side)
                candidate = _Placement(shape, color, size, side, x0, y0)
                if all(_separated(candidate, other) for other in placed):
                    placed.append(candidate)
                    break
            else:
                break
        if len(placed) == count:
            return placed


# --------------------------------------------------------------------------- drawing


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, x0: float, y0: float, side: float) -> None:
    """Draw one filled shape (value 255) into a supersampled mask; coordinates already scaled."""
    x1, y1 = x0 + side, y0 + side
    # PIL boxes include their last pixel: shrink by one so the footprint is exactly `side` wide.
    if shape == "square":
        inset = side * 0.06  # a square's area reads large next to the others; trim it a little
        draw.rectangle([x0 + inset, y0 + inset, x1 - inset - 1, y1 - inset - 1], fill=255)
    elif shape == "circle":
        draw.ellipse([x0, y0, x1 - 1, y1 - 1], fill=255)
    elif shape == "triangle":
        draw.polygon([(x0 + (side - 1) / 2, y0), (x1 - 1, y1 - 1), (x0, y1 - 1)], fill=255)
    elif shape == "cross":
        arm = side * 0.34
        lo, hi = (side - arm) / 2, (side + arm) / 2
        draw.rectangle([x0 + lo, y0, x0 + hi - 1, y1 - 1], fill=255)
        draw.rectangle([x0, y0 + lo, x1 - 1, y0 + hi - 1], fill=255)
    elif shape == "ring":
        draw.ellipse([x0, y0, x1 - 1, y1 - 1], fill=255)
        hole = side * 0.26
        draw.ellipse([x0 + hole, y0 + hole, x1 - hole - 1, y1 - hole - 1], fill=0)
    else:
        raise ValueError(f"unknown shape {shape!r}")


def _coverage(p: _Placement) -> tuple[np.ndarray, int, int]:
    """The object's anti-aliased coverage (0..1) over its 16x16-pixel block, and the block origin."""
    bx = int(p.x0 // PATCH_SIZE) * PATCH_SIZE
    by = int(p.y0 // PATCH_SIZE) * PATCH_SIZE
    bx, by = min(bx, IMAGE_SIZE - _BLOCK), min(by, IMAGE_SIZE - _BLOCK)
    s = SUPERSAMPLE
    mask = Image.new("L", (_BLOCK * s, _BLOCK * s), 0)
    _draw_shape(ImageDraw.Draw(mask), p.shape, (p.x0 - bx) * s, (p.y0 - by) * s, p.side * s)
    small = mask.resize((_BLOCK, _BLOCK), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0, bx, by


def _background(rng: np.random.Generator) -> np.ndarray:
    """A muted, low-contrast texture: grey with a faint tint, plus gradient, stripes, smooth noise.

    The texture is added to all channels alike, so the background stays near-grey (saturation
    <= ~0.15, value 0.35-0.55) and can never look like one of the saturated object colors.
    """
    n = IMAGE_SIZE
    hue = rng.uniform(0.0, 1.0)
    sat = rng.uniform(0.03, 0.15)
    val = rng.uniform(0.35, 0.55)
    base = np.array(colorsys.hsv_to_rgb(hue, sat, val), dtype=np.float32) * 255.0

    y, x = np.mgrid[0:n, 0:n].astype(np.float32) / n
    theta = rng.uniform(0.0, 2 * np.pi)
    texture = rng.uniform(0.0, 14.0) * ((x - 0.5) * np.cos(theta) + (y - 0.5) * np.sin(theta))
    if rng.random() < 0.5:
        phi = rng.uniform(0.0, np.pi)
        period = rng.uniform(5.0, 12.0) / n
        phase = rng.uniform(0.0, 2 * np.pi)
        along = x * np.cos(phi) + y * np.sin(phi)
        texture += rng.uniform(2.0, 5.0) * np.sin(2 * np.pi * along / period + phase)
    coarse = rng.normal(0.0, 1.0, size=(5, 5)).astype(np.float32)
    smooth = Image.fromarray(coarse, mode="F").resize((n, n), Image.Resampling.BICUBIC)
    texture += rng.uniform(2.0, 5.0) * np.asarray(smooth, dtype=np.float32)

    return base[None, None, :] + texture[:, :, None]


def render(rng: np.random.Generator, layout: list[_Placement]) -> tuple[np.ndarray, Scene]:
    image = _background(rng)
    objects = []
    for p in layout:
        cov, bx, by = _coverage(p)
        color = np.array(COLORS[p.color], dtype=np.float32)
        region = image[by : by + _BLOCK, bx : bx + _BLOCK]
        image[by : by + _BLOCK, bx : bx + _BLOCK] = region * (1 - cov[..., None]) + color * cov[..., None]

        ys, xs = np.nonzero(cov > 0)
        bbox = (bx + int(xs.min()), by + int(ys.min()), bx + int(xs.max()) + 1, by + int(ys.max()) + 1)
        per_patch = cov.reshape(2, PATCH_SIZE, 2, PATCH_SIZE).sum(axis=(1, 3))
        patches = tuple(
            sorted(
                (by // PATCH_SIZE + r) * GRID + (bx // PATCH_SIZE + c)
                for r in range(2)
                for c in range(2)
                if per_patch[r, c] >= PATCH_COVERAGE_MIN
            )
        )
        cx, cy = p.x0 + p.side / 2, p.y0 + p.side / 2
        objects.append(
            SceneObject(p.shape, p.color, p.size, p.side, cx, cy, bbox, region_of(cx, cy), patches)
        )
    objects.sort(key=lambda o: (o.cy, o.cx))
    pixels = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return pixels, Scene(tuple(objects))


def make_scene(rng: np.random.Generator) -> tuple[np.ndarray, Scene]:
    """One scene: the 64x64x3 uint8 image and its structured description."""
    return render(rng, sample_layout(rng))
