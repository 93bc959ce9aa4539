"""The ``Image`` parameter: exactly one of ``Bytes`` (<= 5 MB) or ``S3Object`` (<= 15 MB)."""

from __future__ import annotations

from typing import Any

from rekface.engine.decode import DecodedImage, decode_image
from rekface.errors import ImageTooLargeException, InvalidParameterException
from rekface.operations.context import Context

MAX_BYTES = 5 * 1024 * 1024
MAX_S3_BYTES = 15 * 1024 * 1024


def read_image(ctx: Context, image: dict[str, Any], name: str = "Image") -> DecodedImage:
    data = image.get("Bytes")
    s3 = image.get("S3Object")
    if (data is None) == (s3 is None):
        raise InvalidParameterException(
            f"Requested image should either contain bytes or s3 object ({name}: give exactly one "
            "of Bytes and S3Object)"
        )
    if data is not None:
        if len(data) > MAX_BYTES:
            raise ImageTooLargeException(
                f"{name}.Bytes is {len(data)} bytes: the maximum is {MAX_BYTES} bytes "
                "(5 MB); pass larger images (up to 15 MB) as S3Object"
            )
        return decode_image(bytes(data))
    bucket, key = s3.get("Bucket"), s3.get("Name")
    if not bucket or not key:
        raise InvalidParameterException(f"{name}.S3Object needs both Bucket and Name")
    return decode_image(ctx.images.fetch(bucket, key, s3.get("Version"), MAX_S3_BYTES))
