"""Image bytes -> an RGB array, the way Rekognition accepts images, within a memory budget.

- JPEG or PNG only, recognised by content (magic bytes), never by name;
- EXIF orientation applied, so boxes are reported in the upright frame;
- grayscale, palette, RGBA, 16-bit and CMYK images become 8-bit RGB;
- at least 80 px per side.

Memory is bounded before a pixel is decoded. The header (``image_header``) gives the size, the
pixel format and, for JPEG, whether libjpeg will hold every DCT coefficient; from it
``plan_decode`` predicts the bytes the decode will allocate, and an image whose cost exceeds
``DECODE_BUDGET`` is refused with ``ImageTooLargeException`` (so are PNGs over ``MAX_PIXELS`` and
JPEGs over ``MAX_JPEG_PIXELS``). Then the decode goes straight to what the engine needs: JPEGs at a
reduced DCT scale (``draft``), and every image reduced by an integer factor band by band right
after decoding, each band converted to 8-bit RGB on its own, so the full-size frame is the only
full-size copy ever held. Nothing downstream needs more than ``WORK_MAX_SIDE`` pixels per side:
boxes and landmarks are reported as ratios of the image, so working on a downscaled copy changes
no result but memory and time. At most ``Settings.max_decodes`` decodes run at once per process.
"""

from __future__ import annotations

import io
import threading
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from rekface.engine.image_header import ImageHeader, read_header
from rekface.errors import (
    ImageTooLargeException,
    InvalidImageFormatException,
    InvalidParameterException,
    RekognitionError,
    ThrottlingException,
)

MIN_SIDE = 80
# Pixels in the header above which a PNG is refused instead of decoded. 50 MP is a 8660x5773
# image: 200 MB as Pillow's RGBA frame, within DECODE_BUDGET.
MAX_PIXELS = 50_000_000
# JPEGs are decoded at a reduced scale, so they may be larger; above this Pillow's own bomb guard
# (2 x Image.MAX_IMAGE_PIXELS) always refused them, now from our header check.
MAX_JPEG_PIXELS = 178_956_970
# Long side of the working copy: detection runs at <= 640, and a face chip needs the face at about
# 150 px, so 2048 keeps faces down to ~7 % of the image width at full chip quality.
WORK_MAX_SIDE = 2048
# Bytes one decode may allocate (DecodePlan.cost). Every image within the API's limits either fits
# (the costliest PNG, 50 MP RGBA, ~227 MB) or is refused from its header.
DECODE_BUDGET = 256 * 1024 * 1024
# A band of the full-size frame converted at a time: bounds the temporaries of the conversion.
BAND_BYTES = 4 * 1024 * 1024
# Fixed allowance in the cost for the bands' temporaries and the decoders' row buffers.
DECODE_SLACK = 6 * BAND_BYTES
# How long a request waits for a decode slot before it is answered ThrottlingException.
DECODE_WAIT_SECONDS = 30.0

_JPEG = b"\xff\xd8\xff"
_PNG = b"\x89PNG\r\n\x1a\n"
# Bytes per pixel of Pillow's frame for each mode (Pillow pads 3-channel and LA pixels to 4).
_FRAME_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I": 4, "F": 4, "LA": 4, "RGB": 4}
_FRAME_BYTES |= {"RGBA": 4, "CMYK": 4}
# EXIF orientation -> the transpose that makes the image upright (as ImageOps.exif_transpose).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


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


@dataclass(frozen=True)
class DecodePlan:
    """How an image will be decoded and what that costs, from its header alone."""

    mode: str  # Pillow's mode of the decoded frame
    draft_scale: int  # JPEG DCT scaling denominator (1, 2, 4 or 8); 1 for PNG
    frame_size: tuple[int, int]  # the decoded frame, stored orientation
    reduce: int  # integer factor the frame is reduced by, band by band
    frame_bytes: int  # Pillow's frame of ``frame_size`` in ``mode``
    coefficient_bytes: int  # libjpeg's full-image coefficient buffer (buffered JPEGs), else 0
    output_pixels: int  # the reduced image

    @property
    def cost(self) -> int:
        """Peak bytes allocated, the largest of three phases: libjpeg decoding (its coefficient
        buffer, freed when it finishes, and the frame); the band-by-band reduction (the frame and
        the reduced RGB image, 4 bytes a pixel); the end (the reduced image, its rotated copy and
        the working copy resized to WORK_MAX_SIDE with its array, 7 bytes a pixel). Plus
        DECODE_SLACK for the bands' temporaries and the decoders' row buffers."""
        out = self.output_pixels * 4
        work = min(self.output_pixels, WORK_MAX_SIDE**2) * 7
        phases = (self.coefficient_bytes + self.frame_bytes, self.frame_bytes + out, 2 * out + work)
        return max(phases) + DECODE_SLACK


def sniff_format(data: bytes) -> str:
    if data.startswith(_JPEG):
        return "JPEG"
    if data.startswith(_PNG):
        return "PNG"
    raise InvalidImageFormatException(
        "Request has unsupported image format: the image must be a JPEG or PNG file"
    )


def plan_decode(header: ImageHeader) -> DecodePlan:
    """Pillow's frame mode, the scales, and the bytes the decode allocates (see DECODE_BUDGET)."""
    w, h = header.width, header.height
    coefficients = 0
    if header.format == "JPEG":
        mode = {1: "L", 3: "RGB", 4: "CMYK"}[len(header.components)]
        scale = _draft_scale(w, h)
        if header.buffered:
            coefficients = _coefficient_bytes(header)
    else:
        mode = _png_mode(header)
        scale = 1
    fw, fh = _ceil_div(w, scale), _ceil_div(h, scale)
    factor = max(1, max(fw, fh) // WORK_MAX_SIDE)
    return DecodePlan(
        mode=mode,
        draft_scale=scale,
        frame_size=(fw, fh),
        reduce=factor,
        frame_bytes=fw * fh * _FRAME_BYTES[mode],
        coefficient_bytes=coefficients,
        output_pixels=_ceil_div(fw, factor) * _ceil_div(fh, factor),
    )


def _png_mode(header: ImageHeader) -> str:
    if header.color_type == 0:
        return {1: "1", 16: "I;16"}.get(header.bit_depth, "L")
    # 16-bit colour is unpacked to 8 bits per channel by Pillow.
    return {2: "RGB", 3: "P", 4: "LA", 6: "RGBA"}[header.color_type]


def _draft_scale(width: int, height: int) -> int:
    """The DCT scale ``JpegImageFile.draft`` picks for our working size (same arithmetic)."""
    ww, wh = _work_size(width, height)
    ratio = min(width // ww, height // wh)
    return next(s for s in (8, 4, 2, 1) if ratio >= s)


def _coefficient_bytes(header: ImageHeader) -> int:
    """libjpeg's full-image coefficient buffer: one 8x8 block of 2-byte coefficients per 64 samples
    of each component, the component's size following its sampling factors, rounded up to whole
    MCUs as jdcoefct.c allocates it."""
    hmax = max(c.h for c in header.components)
    vmax = max(c.v for c in header.components)
    total = 0
    for c in header.components:
        wb = _ceil_div(_ceil_div(header.width * c.h, hmax), 8)
        hb = _ceil_div(_ceil_div(header.height * c.v, vmax), 8)
        total += _ceil_div(wb, c.h) * c.h * _ceil_div(hb, c.v) * c.v * 64 * 2
    return total


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def decode_image(data: bytes) -> DecodedImage:
    fmt = sniff_format(data)
    header = read_header(data)
    _check_size(fmt, header.width, header.height)
    plan = plan_decode(header)
    if plan.cost > DECODE_BUDGET:
        raise ImageTooLargeException(
            f"Image is too large to decode: {header.width}x{header.height} pixels "
            f"({_describe(header)}) needs about {plan.cost // 2**20} MB to decode, "
            f"the maximum is {DECODE_BUDGET // 2**20} MB"
        )
    try:
        with warnings.catch_warnings():
            # Our own checks above replace Pillow's bomb warning; keep its hard error.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=[fmt])
            orientation = _orientation(im, header)
            if fmt == "JPEG":
                # DCT-domain downscale (1/2, 1/4, 1/8) in the stored orientation, as the decoder
                # sees it; plan_decode computed the same scale.
                im.draft(None, _work_size(*im.size))
            if im.size != plan.frame_size or _frame_bytes(im) > plan.frame_bytes:
                # The cost was predicted for a smaller frame than Pillow is about to decode.
                raise InvalidImageFormatException(
                    f"Request has invalid image format: the {fmt} header is inconsistent "
                    f"({im.mode} {im.size[0]}x{im.size[1]})"
                )
            with _decode_slot():
                out = _reduce_to_rgb(im, plan.reduce)
            del im
            if orientation in _UPRIGHT:
                out = out.transpose(_UPRIGHT[orientation])
            out = _shrink(out)
            rgb = np.asarray(out, dtype=np.uint8)
    except RekognitionError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeException(f"Image is too large to decode: {exc}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidImageFormatException(
            f"Request has invalid image format: the {fmt} data could not be decoded ({exc})"
        ) from exc
    width, height = header.width, header.height
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return DecodedImage(rgb=rgb, width=width, height=height, format=fmt)


def _frame_bytes(im: Image.Image) -> int:
    return im.size[0] * im.size[1] * _FRAME_BYTES.get(im.mode, 4)


def _describe(header: ImageHeader) -> str:
    if header.format == "PNG":
        return f"PNG, colour type {header.color_type}, {header.bit_depth}-bit"
    kind = "progressive" if header.progressive else "sequential"
    sampling = ",".join(f"{c.h}x{c.v}" for c in header.components)
    buffered = ", every coefficient buffered" if header.buffered else ""
    return f"{kind} JPEG, {len(header.components)} components sampled {sampling}{buffered}"


def _orientation(im: Image.Image, header: ImageHeader) -> int:
    """EXIF orientation without decoding pixels. Pillow's PNG ``getexif`` decodes the whole image
    to look for an eXIf chunk after the pixel data; our header parser found it already, so the
    generic ``Image.getexif`` (EXIF, then XMP's tiff:Orientation, from ``info``) reads it."""
    if header.exif is not None and "exif" not in im.info:
        im.info["exif"] = header.exif
    try:
        value = Image.Image.getexif(im).get(0x0112, 1)
    except Exception:  # a broken EXIF block is ignored, as exif_transpose does
        return 1
    return value if isinstance(value, int) else 1


def _check_size(fmt: str, width: int, height: int) -> None:
    if width < MIN_SIDE or height < MIN_SIDE:
        raise InvalidParameterException(
            f"Image is {width}x{height} pixels: both sides must be at least {MIN_SIDE} pixels"
        )
    limit = MAX_PIXELS if fmt == "PNG" else MAX_JPEG_PIXELS
    if width * height > limit:
        raise ImageTooLargeException(
            f"Image is {width}x{height} pixels ({width * height} in all): "
            f"the maximum for {fmt} is {limit} pixels"
        )


def _work_size(width: int, height: int) -> tuple[int, int]:
    s = min(1.0, WORK_MAX_SIDE / max(width, height))
    return max(1, round(width * s)), max(1, round(height * s))


def _reduce_to_rgb(im: Image.Image, factor: int) -> Image.Image:
    """Decode ``im`` and return it as 8-bit RGB reduced ``factor`` times. The frame is walked in
    bands of rows: each band is made reducible (1, P, 16-bit), reduced in its mode, then converted
    to RGB, so the decoded frame is the only full-size image ever held."""
    im.load()
    w, h = im.size
    rows = max(1, BAND_BYTES // (4 * w * factor)) * factor
    out = Image.new("RGB", (_ceil_div(w, factor), _ceil_div(h, factor)))
    for top in range(0, h, rows):
        band = _reducible(im.crop((0, top, w, min(h, top + rows))))
        if factor > 1:
            band = band.reduce(factor)  # LA/RGBA are averaged premultiplied by Pillow
        out.paste(_to_rgb(band), (0, top // factor))
    return out


def _reducible(im: Image.Image) -> Image.Image:
    """The band in a mode ``Image.reduce`` and ``_to_rgb`` handle, without losing anything."""
    mode = im.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        # 16-bit gray: Pillow's convert("L") clips at 255, so scale to 8 bits ourselves.
        a = np.asarray(im, dtype=np.float32)
        peak = 65535.0 if mode.startswith("I;16") else 255.0
        return Image.fromarray(np.clip(a * (255.0 / peak) + 0.5, 0, 255).astype(np.uint8), "L")
    if mode == "1":
        return im.convert("L")
    if mode == "P":
        return im.convert("RGBA" if "transparency" in im.info else "RGB")
    return im


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # Transparent pixels have no defined colour: show the image on white, as viewers do.
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, rgba)
    return im.convert("RGB")


def _shrink(im: Image.Image) -> Image.Image:
    w, h = im.size
    if max(w, h) <= WORK_MAX_SIDE:
        return im
    return im.resize(_work_size(w, h), Image.BILINEAR, reducing_gap=2.0)


# -- concurrency ---------------------------------------------------------------------------------

_slots: threading.BoundedSemaphore | None = None
_slots_lock = threading.Lock()


def set_max_concurrent_decodes(count: int) -> None:
    """Size the process-wide cap on decodes running at once (default: Settings.max_decodes)."""
    global _slots
    if count < 1:
        raise ValueError(f"at least one decode must be allowed at once, got {count}")
    with _slots_lock:
        _slots = threading.BoundedSemaphore(count)


def _decode_slot() -> _Slot:
    global _slots
    if _slots is None:
        from rekface.settings import Settings

        with _slots_lock:
            if _slots is None:
                _slots = threading.BoundedSemaphore(Settings.from_env().max_decodes)
    return _Slot(_slots)


class _Slot:
    """Holds one decode slot for a ``with`` block; a long wait is answered ThrottlingException."""

    def __init__(self, slots: threading.BoundedSemaphore) -> None:
        self.slots = slots

    def __enter__(self) -> None:
        if not self.slots.acquire(timeout=DECODE_WAIT_SECONDS):
            raise ThrottlingException("Too many images are being decoded at once; retry later")

    def __exit__(self, *exc: object) -> None:
        self.slots.release()
