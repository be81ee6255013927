#!/usr/bin/env python3
"""Generates the image-input fixtures in Tests/Fixtures/images (deterministic, seeded).

Inputs: synthetic images with structure (gradients, noise, sharp edges, stroke "text") at odd sizes,
encoded as PNG (every colour type and bit depth, palettes with and without tRNS, interlaced, split
IDAT, gamma chunks) and JPEG (baseline 4:2:0 / 4:2:2 / 4:4:4, progressive, grayscale, CMYK, restart
markers), plus GIF, WebP, BMP and TIFF files for the unsupported-format errors.

References (references.safetensors, U8 / I64 / F32) come from Pillow and transformers'
CLIPImageProcessorPil (the PIL path of CLIPImageProcessor, which in transformers 5 is the torchvision
backend when torchvision is installed; the reference is the PIL one):
  rgb.<file>            Image.open(f).convert("RGB") as [H, W, 3] (files up to 65,536 pixels)
  rgb_crc32.<file>      zlib.crc32 of those bytes, [1] (larger files)
  alpha.<file>          Image.open(f).convert("RGBA") alpha, [H, W], for files transformers sees as
                        transparent ("A" in bands, or info["transparency"])
  composited.<file>     transformers' convert_to_rgb (alpha composited onto white), [H, W, 3]
  <config>.<file>       processor output before rescale/normalize (do_rescale=do_normalize=False), [3, H, W]
  <config>.norm.<file>  full processor output (pixel_values), F32 [3, H, W]
  <config>.lut          full processor output for a 16x16 image holding every byte value in each
                        channel (do_resize=do_center_crop=False): the complete rescale+normalize map
  pad.<config>.<file>   LLaVA-1.5 "pad": Image.open(f).convert("RGB"), expand2square with the mean
                        colour, then the processor; U8 before normalisation (and .norm F32)

Run: /root/venv-accm/bin/python Scripts/make_image_fixtures.py  (pins in Scripts/requirements.txt)
"""

from __future__ import annotations

import io
import json
import os
import struct
import sys
import zlib

import numpy as np
import PIL
from PIL import Image, ImageDraw
from safetensors.numpy import save_file
import transformers
from transformers import CLIPImageProcessorPil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from accm_reference import expand2square  # noqa: E402  (LLaVA-1.5's, verbatim)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "images")
FULL_REFERENCE_PIXELS = 65_536

OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]
CONFIGS = {
    # openai/clip-vit-large-patch14-336's preprocessor_config.json (old integer form of size/crop_size).
    "clip336": {
        "crop_size": 336, "do_center_crop": True, "do_normalize": True, "do_resize": True,
        "feature_extractor_type": "CLIPFeatureExtractor", "image_mean": OPENAI_MEAN, "image_std": OPENAI_STD,
        "resample": 3, "size": 336,
    },
    # The engine fixtures' tiny CLIP (image_size 30), in the current dictionary form.
    "small30": {
        "crop_size": {"height": 30, "width": 30}, "do_center_crop": True, "do_convert_rgb": True,
        "do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": OPENAI_MEAN,
        "image_std": OPENAI_STD, "image_processor_type": "CLIPImageProcessor", "resample": 3,
        "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": 30},
    },
    # A crop taller than the resized image (zero padding) and narrower than it, other mean/std.
    "oddcrop": {
        "crop_size": {"height": 24, "width": 15}, "do_center_crop": True, "do_normalize": True,
        "do_resize": True, "image_mean": [0.5, 0.25, 0.125], "image_std": [0.2, 0.3, 0.4], "resample": 3,
        "size": {"shortest_edge": 19},
    },
}


# ---------------------------------------------------------------------------------------------
# Synthetic content


def synth(w: int, h: int, seed: int) -> np.ndarray:
    """An RGB image with gradients, a noisy band, sharp shapes and thin strokes."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    fx, fy = x / max(w - 1, 1), y / max(h - 1, 1)
    img = np.stack([255 * fx, 255 * fy, 127 + 120 * np.sin(6.28 * (fx + fy) + seed)], -1)
    band = (y >= h * 0.55) & (y < h * 0.75)
    img[band] += rng.normal(0, 25, (int(band.sum()), 3))
    im = Image.fromarray(np.clip(img + 0.5, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    for _ in range(max(1, (w * h) // 6000)):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(1, max(2, w // 4))), y0 + int(rng.integers(1, max(2, h // 4)))
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.rectangle([x0, y0, x1, y1], fill=color)
        else:
            draw.ellipse([x0, y0, x1, y1], fill=color)
    for _ in range(max(1, (w * h) // 3000)):  # "text": short dark polylines of width 1-2
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        points = [(x0, y0)]
        for _ in range(4):
            points.append((points[-1][0] + int(rng.integers(-6, 7)), points[-1][1] + int(rng.integers(-6, 7))))
        draw.line(points, fill=(int(rng.integers(0, 60)),) * 3, width=int(rng.integers(1, 3)))
    return np.asarray(im)


def alpha_plane(w: int, h: int, seed: int) -> np.ndarray:
    """Alpha with fully transparent, fully opaque and partial regions."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    a = (255 * x / max(w - 1, 1)).astype(np.int64)
    a[: h // 4] = 0
    a[h // 4 : h // 2] = 255
    a[-(h // 5) :] = rng.integers(0, 256, a[-(h // 5) :].shape)
    return a.astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# A small PNG writer for what Pillow cannot write (16-bit colour, 2/4-bit grey, Adam7, odd chunks)


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def pack_row(samples: np.ndarray, bit_depth: int) -> bytes:
    """Samples of one row (already interleaved) packed MSB first / big-endian."""
    if bit_depth == 16:
        return samples.astype(">u2").tobytes()
    if bit_depth == 8:
        return samples.astype(np.uint8).tobytes()
    per_byte = 8 // bit_depth
    padded = np.zeros(-(-len(samples) // per_byte) * per_byte, np.int64)
    padded[: len(samples)] = samples
    out = bytearray()
    for i in range(0, len(padded), per_byte):
        v = 0
        for s in padded[i : i + per_byte]:
            v = (v << bit_depth) | int(s)
        out.append(v)
    return bytes(out)


def paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def filter_row(kind: int, row: bytes, prev: bytes, bpp: int) -> bytes:
    out = bytearray([kind])
    for i, v in enumerate(row):
        a = row[i - bpp] if i >= bpp else 0
        b = prev[i] if prev else 0
        c = prev[i - bpp] if prev and i >= bpp else 0
        pred = [0, a, b, (a + b) // 2, paeth(a, b, c)][kind]
        out.append((v - pred) & 0xFF)
    return bytes(out)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def write_png(
    path: str, samples: np.ndarray, bit_depth: int, color_type: int, *, palette: bytes | None = None,
    trns: bytes | None = None, interlace: bool = False, before_idat: bytes = b"", idat_pieces: int = 1,
    after_idat: bytes = b"", iend: bool = True,
) -> None:
    """samples: [H, W, channels] integers at bit_depth. Filters cycle None/Sub/Up/Average/Paeth by row."""
    h, w, channels = samples.shape
    bpp = max(1, channels * bit_depth // 8)
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    raw = bytearray()
    row_index = 0
    for x0, y0, dx, dy in passes:
        sub = samples[y0::dy, x0::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue
        prev = b""
        for r in range(sub.shape[0]):
            row = pack_row(sub[r].reshape(-1), bit_depth)
            raw += filter_row(row_index % 5, row, prev, bpp)
            prev = row
            row_index += 1
    data = zlib.compress(bytes(raw), 9)
    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 1 if interlace else 0)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + before_idat
    if palette is not None:
        out += chunk(b"PLTE", palette)
    if trns is not None:
        out += chunk(b"tRNS", trns)
    step = -(-len(data) // idat_pieces)
    for i in range(0, len(data), step):
        out += chunk(b"IDAT", data[i : i + step])
    out += after_idat + (chunk(b"IEND", b"") if iend else b"")
    with open(path, "wb") as f:
        f.write(out)


# ---------------------------------------------------------------------------------------------
# The inputs


def make_inputs() -> dict[str, str]:
    """Writes every input file; returns {file name: what it exercises}."""
    files: dict[str, str] = {}

    def pil(name: str, im: Image.Image, what: str, **save) -> None:
        im.save(os.path.join(OUT, name), **save)
        files[name] = what

    def raw(name: str, what: str, samples, bit_depth, color_type, **kw) -> None:
        write_png(os.path.join(OUT, name), samples, bit_depth, color_type, **kw)
        files[name] = what

    rgb = lambda w, h, s: Image.fromarray(synth(w, h, s))  # noqa: E731

    # PNG written by Pillow (adaptive per-row filters, zlib level 6).
    pil("png_rgb_257x411.png", rgb(257, 411, 1), "PNG RGB8, portrait, odd size")
    pil("png_rgb_1x1.png", rgb(1, 1, 2), "PNG RGB8, 1x1")
    pil("png_rgb_1x300.png", rgb(1, 300, 3), "PNG RGB8, one column (extreme portrait)")
    pil("png_rgb_300x1.png", rgb(300, 1, 4), "PNG RGB8, one row (extreme landscape)")
    pil("png_rgb_3x5.png", rgb(3, 5, 5), "PNG RGB8, tiny")
    pil("png_rgb_336x336.png", rgb(336, 336, 6), "PNG RGB8, exactly the 336 crop (resize and crop are no-ops)")
    pil("png_rgb_30x30.png", rgb(30, 30, 7), "PNG RGB8, exactly the small crop")
    pil("png_rgb_17x23.png", rgb(17, 23, 8), "PNG RGB8, smaller than every crop (upscaled)")
    pil("png_rgb_640x97.png", rgb(640, 97, 9), "PNG RGB8, wide landscape")
    rgba = np.dstack([synth(199, 131, 10), alpha_plane(199, 131, 10)])
    pil("png_rgba_199x131.png", Image.fromarray(rgba, "RGBA"), "PNG RGBA8 (alpha 0, 255 and partial)")
    gray = synth(101, 67, 11)[..., 1]
    pil("png_gray_101x67.png", Image.fromarray(gray, "L"), "PNG grey 8-bit")
    la = np.dstack([synth(64, 48, 12)[..., 0], alpha_plane(64, 48, 12)])
    pil("png_gray_alpha_64x48.png", Image.fromarray(la, "LA"), "PNG grey+alpha 8-bit")
    pal_src = rgb(83, 57, 13).quantize(200, dither=Image.Dither.NONE)
    pil("png_palette_83x57.png", pal_src, "PNG palette 8-bit, 200 colours, no tRNS")
    alphas = bytes(int(v) for v in np.random.default_rng(14).integers(0, 256, 200))
    pil("png_palette_trns_83x57.png", pal_src, "PNG palette with a tRNS alpha per entry", transparency=alphas)
    pil("png_palette_trns1_40x30.png", rgb(40, 30, 15).quantize(64), "PNG palette, one fully transparent index",
        transparency=3)
    pil("png_palette4_45x33.png", rgb(45, 33, 16).quantize(16), "PNG palette 4-bit", bits=4)
    pil("png_palette2_45x33.png", rgb(45, 33, 17).quantize(4), "PNG palette 2-bit", bits=2)
    pil("png_palette1_45x33.png", rgb(45, 33, 18).quantize(2), "PNG palette 1-bit", bits=1)
    pil("png_gray1_51x29.png", Image.fromarray(gray[:29, :51] > 128), "PNG 1-bit grey (Pillow mode 1)")
    pil("png_gray_trns_50x30.png", Image.fromarray(gray[:30, :50], "L"), "PNG grey 8-bit with tRNS grey value",
        transparency=int(gray[5, 5]))
    pil("png_rgb_trns_50x30.png", Image.fromarray(synth(50, 30, 19)), "PNG RGB8 with tRNS colour",
        transparency=tuple(int(v) for v in synth(50, 30, 19)[0, 0]))
    g16 = (synth(77, 41, 20)[..., 0].astype(np.int64) * 257 + np.arange(77)) % 65536
    g16[:8] = np.arange(77) * 4  # values below 256 survive Pillow's I;16 -> RGB clip
    pil("png_gray16_77x41.png", Image.fromarray(g16.astype(np.uint16)),
        "PNG grey 16-bit (Pillow mode I;16: convert('RGB') clips at 255)")
    rng = np.random.default_rng(21)

    # PNG written by hand: what Pillow cannot write, every filter type on every layout.
    raw("png_rgb16_61x37.png", "PNG RGB 16-bit (Pillow keeps the high byte)",
        rng.integers(0, 65536, (37, 61, 3)), 16, 2)
    raw("png_rgba16_33x21.png", "PNG RGBA 16-bit", rng.integers(0, 65536, (21, 33, 4)), 16, 6)
    raw("png_gray_alpha16_33x21.png", "PNG grey+alpha 16-bit (Pillow loads it as RGBA)",
        rng.integers(0, 65536, (21, 33, 2)), 16, 4)
    raw("png_gray2_37x19.png", "PNG grey 2-bit (scaled x85)", rng.integers(0, 4, (19, 37, 1)), 2, 0)
    raw("png_gray4_37x19.png", "PNG grey 4-bit (scaled x17)", rng.integers(0, 16, (19, 37, 1)), 4, 0)
    raw("png_interlaced_rgb_93x71.png", "PNG Adam7 interlaced RGB8",
        synth(93, 71, 22).astype(np.int64), 8, 2, interlace=True)
    raw("png_interlaced_rgba_3x5.png", "PNG Adam7 interlaced RGBA8 smaller than a pass block (empty passes)",
        rng.integers(0, 256, (5, 3, 4)), 8, 6, interlace=True)
    raw("png_interlaced_gray1_1x1.png", "PNG Adam7 interlaced 1-bit 1x1", np.array([[[1]]]), 1, 0, interlace=True)
    raw("png_interlaced_palette4_29x17.png", "PNG Adam7 interlaced palette 4-bit",
        rng.integers(0, 16, (17, 29, 1)), 4, 3, interlace=True,
        palette=bytes(rng.integers(0, 256, 48).astype(np.uint8)))
    raw("png_interlaced_gray16_13x11.png", "PNG Adam7 interlaced grey 16-bit",
        rng.integers(0, 600, (11, 13, 1)), 16, 0, interlace=True)
    raw("png_palette_short_20x10.png", "PNG palette using indices beyond its 6-entry PLTE",
        rng.integers(0, 12, (10, 20, 1)), 8, 3, palette=bytes(rng.integers(0, 256, 18).astype(np.uint8)))
    raw("png_palette_short_trns_20x10.png", "PNG palette: 6 PLTE entries, 8 tRNS alphas, indices up to 11",
        rng.integers(0, 12, (10, 20, 1)), 8, 3, palette=bytes(rng.integers(0, 256, 18).astype(np.uint8)),
        trns=bytes(rng.integers(0, 256, 8).astype(np.uint8)))
    raw("png_palette_empty_trns_8x4.png", "PNG palette with an empty tRNS chunk (transparency seen, all opaque)",
        rng.integers(0, 4, (4, 8, 1)), 8, 3, palette=bytes(rng.integers(0, 256, 12).astype(np.uint8)), trns=b"")
    raw("png_split_idat_40x30.png", "PNG with the image data split over 7 IDAT chunks, text chunk after it",
        synth(40, 30, 23).astype(np.int64), 8, 2, idat_pieces=7, after_idat=chunk(b"tEXt", b"Comment\0after"))
    raw("png_gamma_48x32.png", "PNG RGB8 with gAMA 1.0, cHRM and sRGB chunks (Pillow ignores them)",
        synth(48, 32, 24).astype(np.int64), 8, 2,
        before_idat=chunk(b"gAMA", struct.pack(">I", 100000)) + chunk(b"cHRM", bytes(32)) + chunk(b"sRGB", b"\0"))
    raw("png_no_iend_20x10.png", "PNG without IEND (Pillow decodes it)",
        synth(20, 10, 25).astype(np.int64), 8, 2, iend=False)
    raw("png_gray2_trns_37x19.png", "PNG grey 2-bit with tRNS (Pillow compares the raw value with scaled pixels)",
        rng.integers(0, 4, (19, 37, 1)), 2, 0, trns=struct.pack(">H", 0))
    raw("png_gray16_trns_37x19.png", "PNG grey 16-bit with tRNS (compared after the clip, low byte only)",
        rng.integers(0, 400, (19, 37, 1)), 16, 0, trns=struct.pack(">H", 300))
    rgb16 = rng.integers(0, 3, (19, 37, 3)) * 0x0101
    raw("png_rgb16_trns_37x19.png", "PNG RGB 16-bit with tRNS (compared with the high bytes, low byte of tRNS)",
        rgb16, 16, 2, trns=struct.pack(">HHH", 0x0101, 0x0101, 0x0101))

    # JPEG (Pillow bundles libjpeg-turbo; the decoder here uses the system one).
    big = rgb(1200, 700, 30)
    pil("jpeg_420_1200x700.jpg", big, "JPEG baseline 4:2:0, moderately large, partial MCU rows", quality=85)
    pil("jpeg_444_257x411.jpg", rgb(257, 411, 31), "JPEG baseline 4:4:4 portrait", quality=95, subsampling=0)
    pil("jpeg_422_199x131.jpg", rgb(199, 131, 32), "JPEG baseline 4:2:2", quality=80, subsampling=1)
    pil("jpeg_progressive_640x480.jpg", rgb(640, 480, 33), "JPEG progressive 4:2:0", quality=85, progressive=True)
    pil("jpeg_progressive_97x61.jpg", rgb(97, 61, 34), "JPEG progressive, odd size", quality=70, progressive=True)
    pil("jpeg_gray_101x67.jpg", Image.fromarray(synth(101, 67, 35)[..., 2], "L"), "JPEG greyscale", quality=90)
    pil("jpeg_cmyk_120x90.jpg", rgb(120, 90, 36).convert("CMYK"), "JPEG CMYK with Adobe marker (inverted)",
        quality=90)
    pil("jpeg_1x1.jpg", rgb(1, 1, 37), "JPEG 1x1")
    pil("jpeg_3x5.jpg", rgb(3, 5, 38), "JPEG tiny")
    pil("jpeg_1x300.jpg", rgb(1, 300, 39), "JPEG one column")
    pil("jpeg_300x1.jpg", rgb(300, 1, 40), "JPEG one row")
    pil("jpeg_restart_150x100.jpg", rgb(150, 100, 41), "JPEG with restart markers every 2 MCUs", quality=85,
        restart_marker_blocks=2)
    exif = Image.Exif()
    exif[0x0112] = 6
    pil("jpeg_exif_rotated_64x40.jpg", rgb(64, 40, 42), "JPEG with EXIF orientation 6 (not applied, as Pillow)",
        exif=exif)
    pil("bench_1024x768.jpg", rgb(1024, 768, 43), "JPEG 1024x768 4:2:0 q90: the `accm bench image` input",
        quality=90)

    # Formats the decoder names but does not decode.
    small = rgb(16, 12, 50)
    pil("unsupported.gif", small.quantize(32), "GIF (unsupported: named in the error)")
    pil("unsupported.webp", small, "WebP (unsupported: named in the error)", quality=80)
    pil("unsupported.bmp", small, "BMP (unsupported: named in the error)")
    pil("unsupported.tiff", small, "TIFF (unsupported: named in the error)")
    return files


# ---------------------------------------------------------------------------------------------
# The references


def has_alpha(im: Image.Image) -> bool:
    """transformers' test in convert_to_rgb."""
    return "A" in im.getbands() or im.info.get("transparency") is not None


def processor(config: dict, **overrides) -> CLIPImageProcessorPil:
    return CLIPImageProcessorPil.from_dict({**config, **overrides})


def run(proc: CLIPImageProcessorPil, im: Image.Image) -> np.ndarray:
    return proc(images=[im], return_tensors="np")["pixel_values"][0]


def make_references(files: dict[str, str]) -> tuple[dict[str, np.ndarray], list[str]]:
    refs: dict[str, np.ndarray] = {}
    notes: list[str] = []
    decodable = [f for f in files if not f.startswith("unsupported")]
    for name in decodable:
        with Image.open(os.path.join(OUT, name)) as im:
            im.load()
            rgb = np.ascontiguousarray(np.asarray(im.convert("RGB")))
            if rgb.shape[0] * rgb.shape[1] <= FULL_REFERENCE_PIXELS:
                refs[f"rgb.{name}"] = rgb
            else:
                refs[f"rgb_crc32.{name}"] = np.array([zlib.crc32(rgb.tobytes())], np.int64)
            if has_alpha(im):
                refs[f"alpha.{name}"] = np.ascontiguousarray(np.asarray(im.convert("RGBA"))[..., 3])
                composited = transformers.image_transforms.convert_to_rgb(im, return_numpy=True)
                refs[f"composited.{name}"] = np.ascontiguousarray(composited)
            for cname, config in CONFIGS.items():
                if cname == "clip336" and name not in CLIP336_FILES:
                    continue
                refs[f"{cname}.{name}"] = run(processor(config, do_rescale=False, do_normalize=False), im)
                if name in NORMALIZED_FILES.get(cname, ()):
                    refs[f"{cname}.norm.{name}"] = run(processor(config), im)
            for cname, config in CONFIGS.items():
                if name in PAD_FILES.get(cname, ()):
                    square = expand2square(im.convert("RGB"), tuple(int(x * 255) for x in config["image_mean"]))
                    refs[f"pad.{cname}.{name}"] = run(processor(config, do_rescale=False, do_normalize=False), square)
                    refs[f"pad.{cname}.norm.{name}"] = run(processor(config), square)
    every = np.zeros((16, 16, 3), np.uint8)
    for c in range(3):
        every[..., c] = (np.arange(256).reshape(16, 16) + 85 * c) % 256
    for cname, config in CONFIGS.items():
        refs[f"{cname}.lut"] = run(processor(config, do_resize=False, do_center_crop=False), Image.fromarray(every))
    refs["lut.input"] = every
    return {k: np.ascontiguousarray(v) for k, v in refs.items()}, notes


# The 336 references are large (338 KB each as U8): a few files with different shapes.
CLIP336_FILES = {"jpeg_420_1200x700.jpg", "png_rgb_257x411.png", "png_rgb_1x300.png", "png_rgb_336x336.png"}
# Full F32 outputs on the small configurations; at 336 the U8 reference and <config>.lut give the same
# information (normalisation maps each byte value on its own) in a quarter of the space.
NORMALIZED_FILES = {
    "small30": {"png_rgb_257x411.png", "jpeg_cmyk_120x90.jpg", "png_rgba_199x131.png", "png_rgb_3x5.png"},
    "oddcrop": {"png_rgb_640x97.png"},
}
PAD_FILES = {
    "small30": {"jpeg_420_1200x700.jpg", "png_rgb_257x411.png", "png_rgb_1x300.png", "png_rgb_3x5.png",
                "png_rgba_199x131.png", "png_rgb_30x30.png"},
    "oddcrop": {"png_rgb_640x97.png"},
}


def write_readme(files: dict[str, str], refs: dict[str, np.ndarray]) -> None:
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT) if f != "README.md")
    lines = [
        "# Image fixtures",
        "",
        "Generated by `Scripts/make_image_fixtures.py`; never edit by hand. Regenerate with",
        "",
        "    /root/venv-accm/bin/python Scripts/make_image_fixtures.py",
        "",
        f"(Pillow {PIL.__version__}, transformers {transformers.__version__}, numpy {np.__version__}; pins in",
        "`Scripts/requirements.txt`). The script's docstring describes the reference tensors.",
        "",
        "The reference processor is `CLIPImageProcessorPil` (transformers' PIL path). transformers 5's",
        "`CLIPImageProcessor` is the torchvision backend when torchvision is installed: it resizes with",
        "torchvision's antialiased bicubic on tensors, pads a too-small image by floor((crop - size) / 2)",
        "on the top/left (the PIL path uses ceil), and fuses rescale with normalize (mean and std scaled",
        "by 255), so its values differ slightly.",
        "",
        "Configurations (`<name>.json` here): " + ", ".join(f"`{c}`" for c in CONFIGS) + ".",
        "",
        f"{len(refs)} reference tensors; fixtures total {total / 1e6:.2f} MB.",
        "",
        "| file | bytes | size | exercises |",
        "| --- | ---: | --- | --- |",
    ]
    for name, what in files.items():
        size = "-"
        if not name.startswith("unsupported"):
            with Image.open(os.path.join(OUT, name)) as im:
                size = f"{im.size[0]}x{im.size[1]} {im.mode}"
        lines.append(f"| `{name}` | {os.path.getsize(os.path.join(OUT, name))} | {size} | {what} |")
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))
    files = make_inputs()
    for cname, config in CONFIGS.items():
        with open(os.path.join(OUT, f"{cname}.json"), "w") as f:
            json.dump(config, f, indent=2)
            f.write("\n")
    refs, _ = make_references(files)
    save_file(refs, os.path.join(OUT, "references.safetensors"))
    write_readme(files, refs)
    print(f"wrote {len(files)} inputs, {len(refs)} references to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
