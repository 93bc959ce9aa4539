"""What the stores keep, as plain records. Operations map these to the API's JSON; backends map
them to rows (SQLite) or items (DynamoDB). No record knows about either."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")

# A face's bounding box as Rekognition reports it: ratios of the image (Width, Height, Left, Top).
Box = tuple[float, float, float, float]

# FaceIds and ImageIds in arrays: the UUID's 16 bytes. Byte order is the order of the text form.
ID_DTYPE = "S16"


def id_bytes(value: str) -> bytes:
    return uuid.UUID(value).bytes


def id_text(value: bytes) -> str:
    # numpy's S dtype drops trailing NUL bytes when an element is read: put them back.
    return _dashed(bytes(value).ljust(16, b"\0").hex())


def ids_text(values: np.ndarray) -> list[str]:
    """An S16 array of ids -> their text forms, in bulk (a search answer may hold 4096)."""
    hexes = np.ascontiguousarray(values, ID_DTYPE).tobytes().hex()
    return [_dashed(hexes[i : i + 32]) for i in range(0, len(hexes), 32)]


def _dashed(h: str) -> str:
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


@dataclass(frozen=True)
class CollectionRecord:
    collection_id: str
    # A fresh random id per CreateCollection. Every face, user and token of the collection is keyed
    # by it, so a collection deleted and re-created under the same id never sees the old items,
    # even while they are still being purged.
    incarnation: str
    created: float  # epoch seconds
    face_model_version: str
    face_count: int
    user_count: int
    # Bumped by exactly one in the same atomic write as every change of the collection's faces
    # (or of their UserIds): the search cache compares it to decide whether to reload.
    version: int


@dataclass(frozen=True)
class CollectionListing:
    """What ListCollections shows of a collection."""

    collection_id: str
    face_model_version: str


@dataclass(frozen=True)
class FaceRecord:
    face_id: str
    image_id: str
    external_image_id: str | None
    box: Box
    confidence: float
    user_id: str | None = None
    # [dims] f32: the collection's recognizer pack decides dims (128 for the built-in 1.0)
    embedding: np.ndarray | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class UserRecord:
    """A user of a collection: a name for up to 100 of its faces, which carry its UserId.

    ``status`` is what the API shows: CREATED while the user has no face, ACTIVE once it has one.
    Every user write is atomic, so UPDATING and CREATING (states of the service's asynchronous
    updates) are never shown."""

    user_id: str
    status: str  # CREATED | ACTIVE
    face_count: int

    @staticmethod
    def status_for(face_count: int) -> str:
        return "ACTIVE" if face_count > 0 else "CREATED"


@dataclass(frozen=True)
class RequestToken:
    """A ClientRequestToken and what it stands for: the same token with the same request (same
    ``digest``) replays the first answer; with another request it is refused."""

    operation: str
    token: str
    digest: str  # hex SHA-256 of the request without its token


@dataclass(frozen=True)
class FaceOutcome:
    """A face a user write did not change, and why (Rekognition's Unsuccessful* items)."""

    face_id: str
    reasons: list[str]  # FACE_NOT_FOUND | ASSOCIATED_TO_A_DIFFERENT_USER | LOW_MATCH_CONFIDENCE
    user_id: str | None = None
    confidence: float | None = None  # the match Similarity of a LOW_MATCH_CONFIDENCE face


@dataclass(frozen=True)
class UsersChange:
    """Faces whose UserId a committed write changed: the search backends' ``users_changed``
    notice (AssociateFaces, DisassociateFaces, DeleteUser)."""

    # As of right after the write where the backend knows it (SQLite), else as read just before
    # it (DynamoDB), as AddFacesResult.collection.
    collection: CollectionRecord
    user_ids: dict[str, str | None]  # FaceId -> its UserId now (None: in no user)
    versions: list[int]  # the collection versions the write produced ([] if not known)


@dataclass(frozen=True)
class UserWrite:
    """What CreateUser, DeleteUser, AssociateFaces or DisassociateFaces did to a user."""

    user: UserRecord | None  # the user after the write (None after DeleteUser)
    changed: list[str]  # FaceIds associated (AssociateFaces) or disassociated (the others)
    unsuccessful: list[FaceOutcome]
    # The committed change for the search notice; None when nothing changed, and on a replay
    # (the same ClientRequestToken again: the first call's answer, nothing done twice).
    change: UsersChange | None = None
    replayed: bool = False


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_token: str | None


@dataclass(frozen=True)
class AddFacesResult:
    # The collection: as of right after the write where the backend knows it (SQLite), else as
    # read just before it (DynamoDB, whose transactions return no values).
    collection: CollectionRecord
    added: list[FaceRecord]  # newly stored faces (a re-indexed image adds none)
    versions: list[int]  # the collection version each atomic write produced, in order


@dataclass(frozen=True)
class FaceDeletion:
    face_id: str
    reasons: list[str]  # FACE_NOT_FOUND | ASSOCIATED_TO_AN_EXISTING_USER
    user_id: str | None = None


@dataclass(frozen=True)
class DeleteFacesResult:
    collection: CollectionRecord
    deleted: list[str]
    unsuccessful: list[FaceDeletion]
    versions: list[int]


@dataclass
class FaceTable:
    """A collection's faces as columns, for the search process: ~0.6 KB per face.

    Rows are in no particular order. ``face_ids`` and ``image_ids`` hold the UUIDs' 16 bytes;
    ``external_ids`` and ``user_ids`` one Python object per row (None or a str, shared between
    the faces of one image).
    """

    face_ids: np.ndarray  # [N] S16
    image_ids: np.ndarray  # [N] S16
    external_ids: np.ndarray  # [N] object
    user_ids: np.ndarray  # [N] object
    boxes: np.ndarray  # [N, 4] float32 Width, Height, Left, Top
    confidences: np.ndarray  # [N] float32
    embeddings: np.ndarray  # [N, dims] float32, unit rows (dims: the collection's pack's)

    def __len__(self) -> int:
        return len(self.face_ids)

    @classmethod
    def from_records(cls, faces: list[FaceRecord]) -> FaceTable:
        n = len(faces)
        dims = len(faces[0].embedding) if n and faces[0].embedding is not None else 128
        table = cls.empty(n, dims)
        for i, f in enumerate(faces):
            table.face_ids[i] = id_bytes(f.face_id)
            table.image_ids[i] = id_bytes(f.image_id)
            table.external_ids[i] = f.external_image_id
            table.user_ids[i] = f.user_id
            table.boxes[i] = f.box
            table.confidences[i] = f.confidence
            assert f.embedding is not None
            table.embeddings[i] = f.embedding
        return table

    @classmethod
    def empty(cls, n: int = 0, dims: int = 128) -> FaceTable:
        return cls(
            face_ids=np.zeros(n, ID_DTYPE),
            image_ids=np.zeros(n, ID_DTYPE),
            external_ids=np.full(n, None, object),
            user_ids=np.full(n, None, object),
            boxes=np.zeros((n, 4), np.float32),
            confidences=np.zeros(n, np.float32),
            embeddings=np.zeros((n, dims), np.float32),
        )

    def records(self, rows: np.ndarray) -> list[FaceRecord]:
        """The faces of some rows (a search's answer), converted in bulk."""
        columns = zip(
            ids_text(self.face_ids[rows]),
            ids_text(self.image_ids[rows]),
            self.external_ids[rows].tolist(),
            self.boxes[rows].tolist(),
            self.confidences[rows].tolist(),
            self.user_ids[rows].tolist(),
            strict=True,
        )
        return [
            FaceRecord(face_id, image_id, external, tuple(box), confidence, user)
            for face_id, image_id, external, box, confidence, user in columns
        ]

    def record(self, i: int) -> FaceRecord:
        w, h, left, top = (float(v) for v in self.boxes[i])
        return FaceRecord(
            face_id=id_text(self.face_ids[i]),
            image_id=id_text(self.image_ids[i]),
            external_image_id=self.external_ids[i],
            box=(w, h, left, top),
            confidence=float(self.confidences[i]),
            user_id=self.user_ids[i],
        )
