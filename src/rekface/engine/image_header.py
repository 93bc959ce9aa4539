"""What an image will cost to decode, read from its header bytes alone.

PNG: the IHDR chunk (size, bit depth, colour type, interlace) and an ``eXIf`` chunk wherever it is
(Pillow only finds one placed after the pixel data by decoding the pixels). JPEG: the markers up to
the first scan: the SOF segment (process, precision, size, components and their sampling factors),
the first SOS (does the first scan hold every component?) and the first ``Exif`` APP1 segment.

Nothing here decodes a pixel or calls Pillow, so an image can be refused for its size before any
memory is spent on it. Malformed headers raise ``InvalidImageFormatException``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from rekface.errors import InvalidImageFormatException

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8"

# PNG colour type -> allowed bit depths (PNG spec, table 11.1).
_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
# JPEG processes that libjpeg decodes with the DCT (and so can scale while decoding):
# baseline, extended sequential (C0, C1, C9) and progressive (C2, CA), Huffman or arithmetic coded.
_SOF_PROGRESSIVE = (0xC2, 0xCA)
# Every other SOF: lossless (C3, CB) and hierarchical (C5-C7, CD-CF) JPEGs, which Pillow's
# libjpeg cannot decode at a reduced scale (or at all).
_SOF_OTHER = (0xC3, 0xC5, 0xC6, 0xC7, 0xCB, 0xCD, 0xCE, 0xCF)
_SOS = 0xDA
_EOI = 0xD9
_APP1 = 0xE1
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM, RST0-7: markers without a length


def _invalid(fmt: str, why: str) -> InvalidImageFormatException:
    return InvalidImageFormatException(f"Request has invalid image format: the {fmt} {why}")


@dataclass(frozen=True)
class JpegComponent:
    h: int  # horizontal sampling factor (1-4)
    v: int  # vertical sampling factor (1-4)


@dataclass(frozen=True)
class ImageHeader:
    format: str  # "JPEG" or "PNG"
    width: int  # as stored, before any EXIF orientation
    height: int
    exif: bytes | None = None  # the raw EXIF (TIFF) block, if the image has one
    # PNG
    bit_depth: int = 8
    color_type: int = 0
    interlaced: bool = False
    # JPEG
    components: tuple[JpegComponent, ...] = ()
    progressive: bool = False
    # libjpeg keeps every DCT coefficient of the image in memory (a "full-image buffer") when the
    # image has several scans: always for progressive JPEGs, and for sequential ones whose first
    # scan does not hold every component (jdinput.c, has_multiple_scans).
    buffered: bool = False


def read_header(data: bytes) -> ImageHeader:
    if data.startswith(PNG_SIGNATURE):
        return read_png_header(data)
    if data.startswith(JPEG_SOI):
        return read_jpeg_header(data)
    raise InvalidImageFormatException(
        "Request has unsupported image format: the image must be a JPEG or PNG file"
    )


def read_png_header(data: bytes) -> ImageHeader:
    pos = len(PNG_SIGNATURE)
    if len(data) < pos + 8 + 13 or data[pos + 4 : pos + 8] != b"IHDR":
        raise _invalid("PNG", "data does not start with an IHDR chunk")
    length = struct.unpack_from(">I", data, pos)[0]
    if length != 13:
        raise _invalid("PNG", "IHDR chunk is not 13 bytes long")
    width, height, depth, ctype, compression, filtering, interlace = struct.unpack_from(
        ">IIBBBBB", data, pos + 8
    )
    if not (0 < width < 2**31 and 0 < height < 2**31):
        raise _invalid("PNG", f"IHDR gives an impossible size {width}x{height}")
    if depth not in _PNG_DEPTHS.get(ctype, ()):
        raise _invalid("PNG", f"IHDR gives colour type {ctype} with bit depth {depth}")
    if compression != 0 or filtering != 0 or interlace not in (0, 1):
        raise _invalid("PNG", "IHDR names an unknown compression, filter or interlace method")
    return ImageHeader(
        "PNG",
        width,
        height,
        exif=_png_exif(data, pos + 12 + length),
        bit_depth=depth,
        color_type=ctype,
        interlaced=interlace == 1,
    )


def _png_exif(data: bytes, pos: int) -> bytes | None:
    """The first eXIf chunk, found by walking chunk lengths (never inflating anything)."""
    end = len(data)
    while pos + 8 <= end:
        length, ctype = struct.unpack_from(">I4s", data, pos)
        start = pos + 8
        if ctype == b"eXIf":
            return bytes(data[start : min(start + length, end)])
        if ctype == b"IEND":
            break
        pos = start + length + 4  # data + CRC
    return None


def read_jpeg_header(data: bytes) -> ImageHeader:
    pos = 2
    end = len(data)
    sof: tuple[int, bytes] | None = None
    exif: bytes | None = None
    while pos < end:
        if data[pos] != 0xFF:
            raise _invalid("JPEG", f"data has no marker where one is expected (offset {pos})")
        while pos < end and data[pos] == 0xFF:  # fill bytes may precede a marker
            pos += 1
        if pos >= end:
            break
        marker = data[pos]
        pos += 1
        if marker in _STANDALONE:
            continue
        if marker == _EOI:
            break
        if pos + 2 > end:
            break
        length = struct.unpack_from(">H", data, pos)[0]
        if length < 2:
            raise _invalid("JPEG", f"marker 0xFF{marker:02X} has an impossible length")
        segment = data[pos + 2 : pos + length]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC) and sof is None:
            sof = (marker, bytes(segment))
        elif marker == _APP1 and exif is None and segment.startswith(b"Exif\x00\x00"):
            exif = bytes(segment[6:])
        elif marker == _SOS:
            if sof is None:
                break
            scan_components = segment[0] if segment else 0
            return _jpeg_header(sof, scan_components, exif)
        pos += length
    raise _invalid("JPEG", "data ends before its first scan (no frame header or no SOS)")


def _jpeg_header(sof: tuple[int, bytes], scan_components: int, exif: bytes | None) -> ImageHeader:
    marker, seg = sof
    if marker in _SOF_OTHER:
        raise _invalid(
            "JPEG",
            f"image uses a process (SOF 0xFF{marker:02X}) that is not supported: only baseline, "
            "extended and progressive DCT JPEGs are",
        )
    if len(seg) < 6:
        raise _invalid("JPEG", "frame header (SOF) is truncated")
    precision, height, width, count = struct.unpack_from(">BHHB", seg, 0)
    if precision != 8:
        raise _invalid("JPEG", f"image has {precision}-bit samples: only 8-bit JPEGs are supported")
    if width == 0 or height == 0:
        raise _invalid("JPEG", f"frame header gives a size of {width}x{height}")
    if count not in (1, 3, 4) or len(seg) < 6 + 3 * count:
        raise _invalid("JPEG", f"image has {count} components: 1, 3 or 4 are supported")
    components = []
    for i in range(count):
        sampling = seg[6 + 3 * i + 1]
        h, v = sampling >> 4, sampling & 0x0F
        if not (1 <= h <= 4 and 1 <= v <= 4):
            raise _invalid("JPEG", f"component {i} has sampling factors {h}x{v}")
        components.append(JpegComponent(h, v))
    progressive = marker in _SOF_PROGRESSIVE
    return ImageHeader(
        "JPEG",
        width,
        height,
        exif=exif,
        components=tuple(components),
        progressive=progressive,
        buffered=progressive or scan_components < count,
    )
