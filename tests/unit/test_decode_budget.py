"""The decode memory budget (issue 18): sizes and costs from the header, refusals before Pillow
decodes a pixel, reduced decodes of the right size and orientation, the cap on concurrent decodes,
and the shared photos decoded exactly as before."""

from __future__ import annotations

import io
import struct
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps

from benchmarks.decode_memory import png_chunk, write_png
from rekface.engine import decode
from rekface.engine.decode import (
    DECODE_BUDGET,
    MAX_PIXELS,
    WORK_MAX_SIDE,
    decode_image,
    plan_decode,
)
from rekface.engine.image_header import ImageHeader, JpegComponent, read_header
from rekface.errors import (
    ImageTooLargeException,
    InvalidImageFormatException,
    ThrottlingException,
)
from rekface.settings import Settings


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def gradient(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    g = Image.linear_gradient("L").resize(size)
    if mode == "L":
        return g
    return Image.merge("RGB", (g, g.transpose(Image.Transpose.ROTATE_180), g)).convert(mode)


@pytest.fixture
def no_pixels(monkeypatch):
    """Call it once the test's inputs are made: from then on, Pillow decoding a pixel fails."""

    def refuse(self, *a, **kw):
        raise AssertionError("Pillow was asked to decode pixels")

    def forbid() -> None:
        monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
        monkeypatch.setattr(Image.Image, "load", refuse)

    return forbid


def with_size(data: bytes, width: int, height: int) -> bytes:
    """The same file with the size in its header changed (IHDR or SOF), the pixels unchanged."""
    if data.startswith(b"\x89PNG"):
        ihdr = struct.pack(">II", width, height) + data[24:29]
        return data[:8] + png_chunk(b"IHDR", ihdr) + data[33:]
    i = 2
    while True:
        marker, length = data[i + 1], struct.unpack_from(">H", data, i + 2)[0]
        if 0xC0 <= marker <= 0xC2:
            return data[: i + 5] + struct.pack(">HH", height, width) + data[i + 9 :]
        i += 2 + length


# -- header parsing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "ctype", "depth"),
    [("L", 0, 8), ("1", 0, 1), ("RGB", 2, 8), ("P", 3, 1), ("LA", 4, 8), ("RGBA", 6, 8)],
)
def test_png_header(mode, ctype, depth):
    header = read_header(encode(Image.new(mode, (321, 123)), "PNG"))
    assert (header.format, header.width, header.height) == ("PNG", 321, 123)
    assert (header.color_type, header.bit_depth, header.interlaced) == (ctype, depth, False)


def test_png_16_bit_header():
    data = encode(Image.fromarray(np.zeros((90, 100), np.uint16)), "PNG")
    assert (read_header(data).color_type, read_header(data).bit_depth) == (0, 16)


@pytest.mark.parametrize(
    ("kw", "sampling", "progressive"),
    [
        ({}, ((2, 2), (1, 1), (1, 1)), False),
        ({"subsampling": 0}, ((1, 1), (1, 1), (1, 1)), False),
        ({"subsampling": 1}, ((2, 1), (1, 1), (1, 1)), False),
        ({"progressive": True}, ((2, 2), (1, 1), (1, 1)), True),
    ],
)
def test_jpeg_header(kw, sampling, progressive):
    header = read_header(encode(gradient((300, 200)), "JPEG", **kw))
    assert (header.format, header.width, header.height) == ("JPEG", 300, 200)
    assert tuple((c.h, c.v) for c in header.components) == sampling
    assert header.progressive == header.buffered == progressive


def test_jpeg_gray_and_cmyk_headers():
    assert len(read_header(encode(gradient((100, 100), "L"), "JPEG")).components) == 1
    assert len(read_header(encode(gradient((100, 100), "CMYK"), "JPEG")).components) == 4


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IDAT", b""),  # no IHDR first
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 10, 8, 2, 0, 0, 0)),
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 99, 99, 16, 3, 0, 0, 0)),
        b"\xff\xd8\xff\xe0\x00\x04ab",  # ends before any frame header
        b"\xff\xd8\xff\xc3\x00\x0b\x08\x00\x64\x00\x64\x01\x01\x11\x00\xff\xda",  # lossless
    ],
)
def test_malformed_or_unsupported_headers_are_invalid_formats(data, no_pixels):
    no_pixels()
    with pytest.raises(InvalidImageFormatException):
        decode_image(data)


def test_12_bit_and_zero_height_jpegs_are_refused_from_the_header(no_pixels):
    data = encode(gradient((100, 100)), "JPEG")
    sof = data.index(b"\xff\xc0")
    twelve = data[: sof + 4] + b"\x0c" + data[sof + 5 :]
    no_pixels()
    with pytest.raises(InvalidImageFormatException, match="12-bit"):
        decode_image(twelve)
    with pytest.raises(InvalidImageFormatException):
        decode_image(with_size(data, 100, 0))


# -- refusals from the header: Pillow never decodes a pixel ----------------------------------------


def test_png_over_max_pixels_is_refused_from_ihdr(no_pixels):
    data = with_size(encode(Image.new("RGBA", (100, 100)), "PNG"), 13300, 13300)
    no_pixels()
    with pytest.raises(ImageTooLargeException, match="maximum for PNG"):
        decode_image(data)


@pytest.mark.parametrize("subsampling", [0, 2])
def test_progressive_jpeg_over_the_budget_is_refused_from_sof(subsampling, no_pixels):
    small = encode(gradient((160, 160)), "JPEG", progressive=True, subsampling=subsampling)
    no_pixels()
    with pytest.raises(ImageTooLargeException, match="MB to decode"):
        decode_image(with_size(small, 13000, 13000))


def test_the_same_size_baseline_jpeg_fits_the_budget():
    # A sequential JPEG holds no coefficient buffer and is decoded at 1/4 scale.
    header = read_header(with_size(encode(gradient((160, 160)), "JPEG"), 13000, 13000))
    plan = plan_decode(header)
    assert plan.draft_scale == 4 and plan.coefficient_bytes == 0
    assert plan.cost < DECODE_BUDGET


def test_a_sequential_jpeg_with_one_component_per_scan_is_buffered():
    # libjpeg buffers every coefficient when the first scan does not hold every component.
    comps = (JpegComponent(1, 1),) * 3
    one_scan = ImageHeader("JPEG", 9000, 9000, components=comps)
    several = ImageHeader("JPEG", 9000, 9000, components=comps, buffered=True)
    assert plan_decode(one_scan).coefficient_bytes == 0
    assert plan_decode(several).coefficient_bytes == 3 * 1125 * 1125 * 128
    assert plan_decode(several).cost > DECODE_BUDGET >= plan_decode(one_scan).cost


@pytest.mark.parametrize("size", [(8660, 5773), (7071, 7071), (80, 625_000), (25_000, 2000)])
@pytest.mark.parametrize("ctype", [0, 2, 3, 4, 6])
def test_every_png_within_max_pixels_fits_the_budget(size, ctype):
    # The rule the budget was chosen by: no PNG the pixel limit accepts is refused for its cost.
    assert size[0] * size[1] <= MAX_PIXELS
    depth = 16 if ctype != 3 else 8
    header = ImageHeader("PNG", *size, bit_depth=depth, color_type=ctype)
    assert plan_decode(header).cost <= DECODE_BUDGET


def test_jpeg_over_pillows_bomb_limit_is_refused_from_the_header(no_pixels):
    data = with_size(encode(gradient((160, 160)), "JPEG"), 65000, 65000)
    no_pixels()
    with pytest.raises(ImageTooLargeException, match="maximum for JPEG"):
        decode_image(data)


# -- orientation without decoding ------------------------------------------------------------------


def exif_block(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def png_with_exif_after_idat(im: Image.Image, orientation: int) -> bytes:
    data = encode(im, "PNG")
    iend = data.rindex(b"IEND") - 4
    return data[:iend] + png_chunk(b"eXIf", exif_block(orientation)) + data[iend:]


def test_orientation_is_read_without_decoding_pixels(no_pixels):
    """Pillow's PNG getexif decodes the image to find an eXIf chunk after IDAT; ours does not."""
    src = gradient((200, 120))
    jpeg = encode(src, "JPEG", exif=exif_block(6))
    png = png_with_exif_after_idat(src, 8)
    no_pixels()
    for data, want in ((jpeg, 6), (png, 8)):
        header = read_header(data)
        im = Image.open(io.BytesIO(data))
        assert decode._orientation(im, header) == want


@pytest.mark.parametrize("orientation", range(1, 9))
def test_png_exif_after_idat_is_applied(orientation):
    src = gradient((200, 120))
    out = decode_image(png_with_exif_after_idat(src, orientation))
    exif = Image.Exif()
    exif[0x0112] = orientation
    src.info["exif"] = exif.tobytes()
    want = np.asarray(ImageOps.exif_transpose(src).convert("RGB"))
    assert (out.width, out.height) == (want.shape[1], want.shape[0])
    np.testing.assert_array_equal(out.rgb, want)


def test_orientation_of_a_large_jpeg_applies_after_the_reduced_decode():
    src = gradient((6000, 3000))
    out = decode_image(encode(src, "JPEG", exif=exif_block(6), quality=90))
    assert (out.width, out.height) == (3000, 6000)
    assert out.rgb.shape[0] > out.rgb.shape[1] and max(out.rgb.shape) <= WORK_MAX_SIDE
    want = np.asarray(src.transpose(Image.Transpose.ROTATE_270).resize(out.rgb.shape[1::-1]))
    assert np.abs(out.rgb.astype(np.float32) - want).mean() < 3


# -- reduced decodes of the right size and colour --------------------------------------------------


def test_large_16_bit_gray_png_is_reduced_and_scaled_to_8_bits():
    gray = np.asarray(gradient((5000, 4200), "L"), np.uint16) * 257
    out = decode_image(encode(Image.fromarray(gray), "PNG"))
    assert (out.width, out.height) == (5000, 4200)
    assert out.rgb.dtype == np.uint8 and max(out.rgb.shape[:2]) <= WORK_MAX_SIDE
    want = np.asarray(gradient((5000, 4200), "L").resize(out.rgb.shape[1::-1]), np.float32)
    assert np.abs(out.rgb[..., 0] - want).mean() < 2


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P+transparency"])
def test_large_transparent_pngs_show_on_white_after_reduction(mode):
    base = gradient((4400, 2200))
    if mode == "P+transparency":
        src = base.convert("P")
        src.paste(0, (0, 0, 2200, 2200))
        kw = {"transparency": 0}
    else:
        src = base.convert(mode)
        src.putalpha(Image.new("L", src.size, 255))
        src.paste(Image.new(mode, (2200, 2200), (0,) * len(mode)), (0, 0))
        kw = {}
    out = decode_image(encode(src, "PNG", **kw))
    assert (out.width, out.height) == (4400, 2200)
    h, w = out.rgb.shape[:2]
    assert max(h, w) <= WORK_MAX_SIDE
    assert out.rgb[: h - 2, : w // 2 - 2].min() == 255  # the transparent half is white
    assert out.rgb[:, w // 2 + 2 :].min() < 250  # the opaque half is not


def test_interlaced_png_decodes_like_pillow(tmp_path):
    path = tmp_path / "adam7.png"
    write_png(
        path,
        (300, 200),
        2,
        8,
        lambda y, w: bytes((y * 7 + i) % 256 for i in range(w * 3)),
        interlace=True,
    )
    data = path.read_bytes()
    assert read_header(data).interlaced
    want = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    np.testing.assert_array_equal(decode_image(data).rgb, want)


def test_large_1_bit_png():
    src = Image.new("1", (4400, 2200), 0)
    src.paste(1, (2200, 0, 4400, 2200))
    out = decode_image(encode(src, "PNG"))
    w = out.rgb.shape[1]
    assert out.rgb[:, : w // 2 - 1].max() == 0 and out.rgb[:, w // 2 + 1 :].min() == 255


def test_progressive_jpeg_within_the_budget_is_decoded():
    out = decode_image(encode(gradient((6000, 4000)), "JPEG", progressive=True, quality=80))
    assert (out.width, out.height) == (6000, 4000)
    assert out.rgb.shape == (1365, 2048, 3)


def test_cmyk_jpeg_reduced():
    src = gradient((5000, 2600))
    out = decode_image(encode(src.convert("CMYK"), "JPEG", quality=95))
    want = np.asarray(src.resize(out.rgb.shape[1::-1]), np.float32)
    assert np.abs(out.rgb.astype(np.float32) - want).mean() < 6


# -- the cap on concurrent decodes -----------------------------------------------------------------


@pytest.fixture
def slots(monkeypatch):
    """Decodes that stay inside their slot until released; the cap restored afterwards."""
    entered = threading.Semaphore(0)
    release = threading.Event()
    real = decode._reduce_to_rgb

    def held(im, factor):
        entered.release()
        release.wait(30)
        return real(im, factor)

    monkeypatch.setattr(decode, "_reduce_to_rgb", held)
    monkeypatch.setattr(decode, "DECODE_WAIT_SECONDS", 0.05)
    yield entered, release
    release.set()
    monkeypatch.setattr(decode, "_slots", None)


@pytest.mark.parametrize("cap", [1, 2])
def test_at_most_max_decodes_run_at_once(slots, cap):
    entered, release = slots
    decode.set_max_concurrent_decodes(cap)
    data = encode(gradient((120, 100)), "PNG")
    errors: list[BaseException] = []

    def run():
        try:
            decode_image(data)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(cap)]
    for t in threads:
        t.start()
    for _ in range(cap):
        assert entered.acquire(timeout=30)  # all `cap` decodes are inside at once
    with pytest.raises(ThrottlingException):
        decode_image(data)  # one more waits its 0.05 s, then is told to retry
    release.set()
    for t in threads:
        t.join(30)
    assert not errors


def test_max_decodes_setting():
    assert Settings.from_env({}).max_decodes == 2
    assert Settings.from_env({"REKFACE_MAX_DECODES": "3"}).max_decodes == 3
    with pytest.raises(ValueError, match="REKFACE_MAX_DECODES"):
        Settings.from_env({"REKFACE_MAX_DECODES": "0"})


# -- the shared photos decode exactly as before ----------------------------------------------------


def reference_decode(data: bytes) -> np.ndarray:
    """The decode before the budget: Pillow's full path (draft, exif_transpose, convert, resize)."""
    im = Image.open(io.BytesIO(data))
    if im.format == "JPEG":
        im.draft(None, decode._work_size(*im.size))
    im = ImageOps.exif_transpose(im)
    if im.mode in ("RGBA", "LA", "P"):
        rgba = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", rgba.size, (255,) * 4), rgba)
    elif im.mode.startswith("I"):
        a = np.asarray(im, np.float64) * (255.0 / 65535.0) + 0.5
        im = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "L")
    im = im.convert("RGB")
    if max(im.size) > WORK_MAX_SIDE:
        im = im.resize(decode._work_size(*im.size), Image.BILINEAR, reducing_gap=2.0)
    return np.asarray(im)


def shared_sample(faces_dir: Path) -> list[Path]:
    files = sorted(p for p in faces_dir.rglob("*") if p.suffix.lower() in (".jpg", ".png"))
    files = [p for p in files if p.read_bytes()[:3] in (b"\xff\xd8\xff", b"\x89PN")]
    special = []
    for p in files:
        with Image.open(p) as im:
            if im.format == "PNG" or im.info.get("progressive") or max(im.size) > WORK_MAX_SIDE:
                special.append(p)
    return special + files[:: max(1, len(files) // 20)]


def test_shared_photos_decode_to_the_same_pixels(faces_dir):
    sample = shared_sample(faces_dir)
    assert len(sample) > 40
    for path in sample:
        data = path.read_bytes()
        np.testing.assert_array_equal(decode_image(data).rgb, reference_decode(data), str(path))


def test_shared_photos_give_the_same_boxes(faces_dir, engine):
    for path in shared_sample(faces_dir)[:12]:
        data = path.read_bytes()
        new = decode_image(data)
        rgb = reference_decode(data)
        old = decode.DecodedImage(rgb=rgb, width=new.width, height=new.height, format=new.format)
        a, b = engine.detect(new), engine.detect(old)
        assert len(a) == len(b)
        for fa, fb in zip(a, b, strict=True):
            np.testing.assert_allclose(fa.box, fb.box, atol=1e-3)
