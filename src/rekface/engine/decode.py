"""Image bytes -> an RGB array, the way Rekognition accepts images.

- JPEG or PNG only, recognised by content (magic bytes), never by name;
- EXIF orientation applied, so boxes are reported in the upright frame;
- grayscale, palette, RGBA, 16-bit and CMYK images become 8-bit RGB;
- at least 80 px per side;
- a decompression-bomb guard: the pixel count is checked from the header before decoding, and large
  JPEGs are decoded at a reduced DCT scale. Nothing downstream needs more than ``WORK_MAX_SIDE``
  pixels per side: boxes and landmarks are reported as ratios of the image, so working on a
  downscaled copy changes no result but memory and time.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from rekface.errors import (
    ImageTooLargeException,
    InvalidImageFormatException,
    InvalidParameterException,
)

MIN_SIDE = 80
# Pixels in the header above which a PNG is refused instead of decoded (JPEGs are decoded at a
# reduced scale instead). 50 MP is a 8660x5773 image, 150 MB as RGB.
MAX_PIXELS = 50_000_000
# Long side of the working copy: detection runs at <= 640, and a face chip needs the face at about
# 150 px, so 2048 keeps faces down to ~7 % of the image width at full chip quality.
WORK_MAX_SIDE = 2048

_JPEG = b"\xff\xd8\xff"
_PNG = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class DecodedImage:
    rgb: np.ndarray  # HxWx3 uint8, upright, possibly downscaled from the original
    width: int  # the original (upright) size, which the response's ratios refer to
    height: int
    format: str  # "JPEG" or "PNG"

    @property
    def scale(self) -> float:
        """Working-copy pixels per original pixel."""
        return self.rgb.shape[1] / self.width


def sniff_format(data: bytes) -> str:
    if data.startswith(_JPEG):
        return "JPEG"
    if data.startswith(_PNG):
        return "PNG"
    raise InvalidImageFormatException(
        "Request has unsupported image format: the image must be a JPEG or PNG file"
    )


def decode_image(data: bytes) -> DecodedImage:
    fmt = sniff_format(data)
    try:
        with warnings.catch_warnings():
            # Our own size check below replaces Pillow's bomb warning; keep its hard error.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=[fmt])
            width, height = _upright_size(im)
            _check_size(fmt, width, height)
            if fmt == "JPEG":
                # DCT-domain downscale (1/2, 1/4, 1/8): cheap and bounds memory for huge JPEGs.
                # The request is in stored (pre-EXIF) orientation, as the decoder sees it.
                im.draft(None, _work_size(*im.size))
            im = ImageOps.exif_transpose(im)
            rgb = _to_rgb(im)
    except (ImageTooLargeException, InvalidParameterException):
        raise
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeException(f"Image is too large to decode: {exc}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidImageFormatException(
            f"Request has invalid image format: the {fmt} data could not be decoded ({exc})"
        ) from exc
    rgb = _shrink(rgb)
    return DecodedImage(rgb=rgb, width=width, height=height, format=fmt)


def _upright_size(im: Image.Image) -> tuple[int, int]:
    w, h = im.size
    try:
        orientation = im.getexif().get(0x0112, 1)
    except Exception:  # a broken EXIF block is ignored, as exif_transpose does
        orientation = 1
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def _check_size(fmt: str, width: int, height: int) -> None:
    if width < MIN_SIDE or height < MIN_SIDE:
        raise InvalidParameterException(
            f"Image is {width}x{height} pixels: both sides must be at least {MIN_SIDE} pixels"
        )
    if fmt == "PNG" and width * height > MAX_PIXELS:
        raise ImageTooLargeException(
            f"Image is {width}x{height} pixels ({width * height} in all): "
            f"the maximum for PNG is {MAX_PIXELS} pixels"
        )


def _work_size(width: int, height: int) -> tuple[int, int]:
    s = min(1.0, WORK_MAX_SIDE / max(width, height))
    return max(1, round(width * s)), max(1, round(height * s))


def _to_rgb(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit gray: Pillow's convert("L") clips at 255, so scale to 8 bits ourselves.
        a = np.asarray(im, dtype=np.float64)
        peak = 65535.0 if mode.startswith("I;16") or a.max() > 255 else 255.0
        gray = np.clip(a * (255.0 / peak) + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode == "F":
        a = np.asarray(im, dtype=np.float64)
        gray = np.clip(a + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # Transparent pixels have no defined colour: show the image on white, as viewers do.
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, rgba)
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def _shrink(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    if max(h, w) <= WORK_MAX_SIDE:
        return np.ascontiguousarray(rgb)
    size = _work_size(w, h)
    return np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR, reducing_gap=2.0))
