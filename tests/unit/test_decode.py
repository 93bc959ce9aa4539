"""Image decoding: formats by content, EXIF orientation, modes, limits."""

import io

import numpy as np
import pytest
from PIL import Image

from rekface.engine.decode import MAX_PIXELS, WORK_MAX_SIDE, decode_image
from rekface.errors import (
    ImageTooLargeException,
    InvalidImageFormatException,
    InvalidParameterException,
)


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def face(photo) -> Image.Image:
    return Image.open(io.BytesIO(photo("identities/Paul_Bremer/5.jpg"))).convert("RGB")


def test_jpeg_and_png_are_recognised_by_content_not_name(face):
    assert decode_image(encode(face, "PNG")).format == "PNG"
    assert decode_image(encode(face, "JPEG")).format == "JPEG"
    for fmt in ("WEBP", "GIF", "BMP", "TIFF"):
        with pytest.raises(InvalidImageFormatException):
            decode_image(encode(face, fmt))
    with pytest.raises(InvalidImageFormatException):
        decode_image(b"not an image at all")


def test_the_shared_webp_named_jpg_is_refused(photo):
    with pytest.raises(InvalidImageFormatException, match="JPEG or PNG"):
        decode_image(photo("identities/deepface_person_03/3.jpg"))


def test_truncated_jpeg_is_an_invalid_format(face):
    data = encode(face, "JPEG")
    with pytest.raises(InvalidImageFormatException):
        decode_image(data[: len(data) // 3])


def test_exif_orientation_is_applied(face):
    wide = face.resize((200, 120))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: display rotated 90 degrees clockwise
    decoded = decode_image(encode(wide, "JPEG", exif=exif.tobytes(), quality=95))
    assert (decoded.width, decoded.height) == (120, 200)
    assert decoded.rgb.shape == (200, 120, 3)
    upright = np.asarray(wide.transpose(Image.Transpose.ROTATE_270), np.float32)
    assert np.abs(decoded.rgb.astype(np.float32) - upright).mean() < 4  # JPEG noise only


@pytest.mark.parametrize("mode", ["L", "LA", "P", "P+transparency", "RGBA", "16-bit", "1"])
def test_png_modes_become_rgb(face, mode):
    kw = {}
    if mode == "16-bit":
        src = Image.fromarray(np.asarray(face.convert("L"), np.uint16) * 257)
    elif mode == "P+transparency":
        src, kw = face.convert("P"), {"transparency": 0}
    else:
        src = face.convert(mode)
    out = decode_image(encode(src, "PNG", **kw))
    assert out.rgb.dtype == np.uint8 and out.rgb.shape == (face.height, face.width, 3)
    if mode in ("L", "16-bit"):
        gray = np.asarray(face.convert("L"), np.float32)
        assert np.abs(out.rgb[..., 0].astype(np.float32) - gray).max() <= 1


def test_transparent_pixels_are_shown_on_white(face):
    rgba = face.convert("RGBA")
    rgba.putalpha(0)
    assert decode_image(encode(rgba, "PNG")).rgb.min() == 255


def test_cmyk_jpeg(face):
    out = decode_image(encode(face.convert("CMYK"), "JPEG", quality=95))
    assert np.abs(out.rgb.astype(np.float32) - np.asarray(face, np.float32)).mean() < 6


def test_minimum_side():
    with pytest.raises(InvalidParameterException, match="at least 80 pixels"):
        decode_image(encode(Image.new("RGB", (79, 200)), "PNG"))
    assert decode_image(encode(Image.new("RGB", (80, 80)), "PNG")).rgb.shape == (80, 80, 3)


def test_png_bomb_is_refused_before_decoding():
    side = int((MAX_PIXELS * 1.2) ** 0.5)
    data = encode(Image.new("1", (side, side)), "PNG")
    assert len(data) < 2_000_000  # a small file...
    with pytest.raises(ImageTooLargeException, match="maximum"):
        decode_image(data)  # ...that would decode to > 50 MP


def test_large_jpeg_is_decoded_at_reduced_scale():
    data = encode(Image.new("L", (6000, 4000), 90), "JPEG")
    out = decode_image(data)
    assert (out.width, out.height) == (6000, 4000)  # ratios refer to the original
    assert max(out.rgb.shape[:2]) <= WORK_MAX_SIDE
    assert out.scale == pytest.approx(out.rgb.shape[1] / 6000)
