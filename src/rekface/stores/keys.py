"""Identifiers the API shows: collection ARNs, FaceIds and ImageIds, pagination tokens.

FaceId and ImageId are name-based UUIDs (version 5), as Rekognition's own are: the ImageId is
derived from the collection's incarnation, the image's pixels and the ExternalImageId, and each
FaceId from the ImageId and the face's rank in the image. So indexing the same image into the same
collection with the same ExternalImageId again finds the faces already stored and does not
duplicate them (the service documents this), and a retried IndexFaces is idempotent.

Pagination tokens are opaque and tamper-evident: ``version | cursor | MAC``, the MAC an HMAC-SHA256
(truncated to 80 bits) over the operation, what the token is bound to (a collection incarnation,
the request's filters) and the cursor, with ``settings.token_secret``. The model caps a
PaginationToken at 255 characters while a CollectionId (the ListCollections cursor) may itself be
255 characters long, so cursors are packed (a CollectionId in base 65 takes 192 bytes) and the
token is written in base 85 (5 characters per 4 bytes): at most 254 characters.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import uuid

from rekface.errors import (
    InvalidPaginationTokenException,
    InvalidParameterException,
    ResourceNotFoundException,
)

# ---------------------------------------------------------------------------------------------
# ARNs

_ARN = re.compile(r"^(?:arn:)?(aws[a-zA-Z-]*):rekognition:([^:]*):([^:]*):([^/]+)/(.+)$")


def collection_arn(region: str, account_id: str, collection_id: str) -> str:
    """The CollectionArn the service returns (it leaves out the leading ``arn:``)."""
    return f"aws:rekognition:{region}:{account_id}:collection/{collection_id}"


def collection_id_from_arn(arn: str, region: str, account_id: str) -> str:
    """The CollectionId of a collection ARN of this account and region, with or without the
    leading ``arn:``. A malformed ARN is InvalidParameterException; another region's, account's
    or resource type's ARN names no collection here: ResourceNotFoundException."""
    m = _ARN.match(arn)
    if m is None:
        raise InvalidParameterException(
            f"ResourceArn {arn!r} is not an ARN of the form "
            "arn:aws:rekognition:<region>:<account>:collection/<CollectionId>"
        )
    _partition, arn_region, arn_account, kind, resource = m.groups()
    if kind != "collection":
        raise ResourceNotFoundException(
            f"The resource {arn} is a {kind}: rekface tags collections only"
        )
    if arn_region != region or arn_account != account_id or not _COLLECTION_ID.fullmatch(resource):
        raise ResourceNotFoundException(f"The collection {arn} does not exist")
    return resource


# ---------------------------------------------------------------------------------------------
# Ids


def new_incarnation() -> str:
    return str(uuid.uuid4())


def image_id(incarnation: str, pixels_digest: bytes, external_image_id: str | None) -> str:
    name = pixels_digest.hex() + "/" + (external_image_id or "")
    return str(uuid.uuid5(uuid.UUID(incarnation), name))


def face_id(image_id_: str, rank: int) -> str:
    """``rank``: the face's position among all faces detected in the image, largest first, so
    that a different MaxFaces or QualityFilter keeps each face's id."""
    return str(uuid.uuid5(uuid.UUID(image_id_), str(rank)))


def pixels_digest(rgb_bytes: bytes, shape: tuple[int, ...]) -> bytes:
    """What "the same image" means: the same decoded, upright pixels."""
    h = hashlib.blake2b(digest_size=20)
    h.update(repr(shape).encode())
    h.update(rgb_bytes)
    return h.digest()


# ---------------------------------------------------------------------------------------------
# Packing ids into few bytes (for tokens)

_COLLECTION_ID = re.compile(r"[a-zA-Z0-9_.\-]+")
_COLLECTION_ALPHABET = "-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
_USER_ALPHABET = "-.0123456789:ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"


def _pack(text: str, alphabet: str) -> bytes:
    """Bijective base-len(alphabet) number of ``text`` (no leading-zero ambiguity), big-endian."""
    base = len(alphabet)
    value = 0
    for ch in text:
        value = value * base + alphabet.index(ch) + 1
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def _unpack(data: bytes, alphabet: str) -> str:
    base = len(alphabet)
    value = int.from_bytes(data, "big")
    out = []
    while value > 0:
        value, digit = divmod(value - 1, base)
        out.append(alphabet[digit])
    return "".join(reversed(out))


def pack_collection_id(collection_id: str) -> bytes:
    return _pack(collection_id, _COLLECTION_ALPHABET)


def unpack_collection_id(data: bytes) -> str:
    return _unpack(data, _COLLECTION_ALPHABET)


def pack_user_id(user_id: str) -> bytes:
    return _pack(user_id, _USER_ALPHABET)


def unpack_user_id(data: bytes) -> str:
    return _unpack(data, _USER_ALPHABET)


def pack_uuid(value: str) -> bytes:
    return uuid.UUID(value).bytes


def unpack_uuid(data: bytes) -> str:
    if len(data) != 16:
        raise ValueError("a UUID cursor is 16 bytes")
    return str(uuid.UUID(bytes=data))


# ---------------------------------------------------------------------------------------------
# Pagination tokens

_TOKEN_VERSION = 1
_MAC_BYTES = 10
MAX_TOKEN_CHARS = 255


class TokenCodec:
    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"rekface pagination token\0" + secret.encode()).digest()

    def _mac(self, operation: str, binding: bytes, cursor: bytes) -> bytes:
        msg = b"\0".join([operation.encode(), binding.hex().encode(), cursor])
        return hmac.new(self._key, msg, hashlib.sha256).digest()[:_MAC_BYTES]

    def encode(self, operation: str, binding: bytes, cursor: bytes) -> str:
        raw = bytes([_TOKEN_VERSION]) + cursor + self._mac(operation, binding, cursor)
        token = base64.b85encode(raw).decode("ascii")
        if len(token) > MAX_TOKEN_CHARS:  # pragma: no cover - cursors are sized to fit
            raise ValueError(f"pagination token of {len(token)} characters")
        return token

    def decode(self, token: str, operation: str, binding: bytes) -> bytes:
        """The cursor of a token this deployment issued for ``operation`` and ``binding``."""
        try:
            raw = base64.b85decode(token.encode("ascii"))
        except (ValueError, UnicodeEncodeError, binascii.Error):
            raw = b""
        # Base 85 pads the last group, so several spellings can decode to the same bytes: accept
        # only the canonical one, so that any edit of the token is refused.
        if base64.b85encode(raw).decode("ascii") != token:
            raw = b""
        if len(raw) > _MAC_BYTES and raw[0] == _TOKEN_VERSION:
            cursor, mac = raw[1:-_MAC_BYTES], raw[-_MAC_BYTES:]
            if hmac.compare_digest(mac, self._mac(operation, binding, cursor)):
                return cursor
        raise InvalidPaginationTokenException(
            "Invalid pagination token: it was not issued for this request (another operation, "
            "collection or filter) or it was altered"
        )


def binding(*parts: str | None) -> bytes:
    """What a token is bound to, e.g. (collection incarnation, UserId filter, FaceIds digest)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(b"\1" if part is None else b"\2" + part.encode() + b"\0")
    return h.digest()[:16]
