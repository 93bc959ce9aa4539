"""The store interface: collections, faces, tags (and the data model of users), on any backend.

A template-method base, as Powertools' ``BasePersistenceLayer``: the rules every backend must obey
live here once (ids, pagination tokens, limits, how a failed conditional write becomes a
Rekognition error, which faces DeleteFaces may remove), and each backend implements small
primitives that are atomic on their own:

- ``_insert_collection``, ``_read_collection``, ``_scan_collections``, ``_retire_collection``;
- ``_insert_faces`` (new faces + FaceCount + version, all or nothing, skipping faces already
  stored), ``_read_faces``, ``_scan_faces``, ``_scan_user_faces``, ``_remove_faces`` (faces +
  FaceCount + version), ``_load_face_table``;
- ``_update_tags``, ``_read_tags``;
- ``_write_user`` (one user write: replay its ClientRequestToken, or read a snapshot, apply a rule
  of ``stores.users`` and commit faces + user + counts + version + token record, all or nothing),
  ``_read_user``, ``_scan_users``;
- ``_purge_batch``, ``_drop_tombstone``, ``_tombstones`` (DeleteCollection's background purge).

DeleteCollection is a two-step protocol so that a collection of millions of faces can be deleted
without ever being half visible: ``_retire_collection`` atomically removes the collection record
and leaves a tombstone naming its incarnation (every face, user, token of it is keyed by the
incarnation, so from that instant nothing of it is reachable, and a collection re-created under
the same id gets a new incarnation); then ``purge`` deletes the incarnation's items in batches and
finally the tombstone. A purge cut short is finished by ``resume_purges`` (called by every later
DeleteCollection, and by ``rekface purge``).
"""

from __future__ import annotations

import hashlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable

import numpy as np

from rekface.errors import (
    IdempotentParameterMismatchException,
    ResourceAlreadyExistsException,
    ResourceNotFoundException,
    ServiceQuotaExceededException,
)
from rekface.settings import BUILTIN_FACE_MODEL_VERSION
from rekface.stores import keys, users
from rekface.stores.records import (
    AddFacesResult,
    CollectionListing,
    CollectionRecord,
    DeleteFacesResult,
    FaceDeletion,
    FaceRecord,
    FaceTable,
    Page,
    RequestToken,
    UserRecord,
    UserWrite,
)
from rekface.stores.users import UserPlan, UserScore, UserSnapshot

log = logging.getLogger("rekface.stores")

# Rekognition's quotas (https://docs.aws.amazon.com/rekognition/latest/dg/limits.html).
MAX_FACES_PER_COLLECTION = 20_000_000
MAX_TAGS_PER_RESOURCE = 50
# Page sizes when the request gives no MaxResults (or 0, which the model allows).
DEFAULT_COLLECTIONS_PAGE = 1000
DEFAULT_FACES_PAGE = 1000
# Faces one IndexFaces call may add: the 100 largest.
MAX_FACES_PER_IMAGE = 100
_READ_CHUNK = 100  # faces read per primitive call (DynamoDB BatchGetItem's limit)
DEFAULT_USERS_PAGE = 500  # ListUsers without MaxResults (the model's maximum)
# How long a ClientRequestToken is remembered (then it may be used again for another request).
REQUEST_TOKEN_TTL = 24 * 3600.0


class CollectionGone(Exception):
    """A primitive found that the collection (this incarnation of it) no longer exists."""


class QuotaExceeded(Exception):
    """A primitive's conditional write found the collection full."""


class TooManyTags(Exception):
    """A primitive's conditional write found the collection's tags over the limit."""


class TokenMismatch(Exception):
    """A primitive found the ClientRequestToken stored for another request."""


class Store(ABC):
    max_faces_per_collection = MAX_FACES_PER_COLLECTION
    max_tags = MAX_TAGS_PER_RESOURCE
    max_users_per_collection = users.MAX_USERS_PER_COLLECTION
    max_faces_per_user = users.MAX_FACES_PER_USER
    request_token_ttl = REQUEST_TOKEN_TTL

    def __init__(self, token_secret: str) -> None:
        self.tokens = keys.TokenCodec(token_secret)

    # -----------------------------------------------------------------------------------------
    # Collections

    def create_collection(
        self,
        collection_id: str,
        tags: dict[str, str] | None = None,
        face_model_version: str = BUILTIN_FACE_MODEL_VERSION,
    ) -> CollectionRecord:
        tags = dict(tags or {})
        if len(tags) > self.max_tags:
            raise ServiceQuotaExceededException(
                f"A collection can have at most {self.max_tags} tags, {len(tags)} were given"
            )
        record = CollectionRecord(
            collection_id=collection_id,
            incarnation=keys.new_incarnation(),
            created=round(time.time(), 3),
            face_model_version=face_model_version,
            face_count=0,
            user_count=0,
            version=0,
        )
        if not self._insert_collection(record, tags):
            raise ResourceAlreadyExistsException(
                f"The collection id: {collection_id} already exists"
            )
        return record

    def get_collection(self, collection_id: str) -> CollectionRecord:
        record = self._read_collection(collection_id)
        if record is None:
            raise _not_found(collection_id)
        return record

    def list_collections(
        self, max_results: int | None = None, next_token: str | None = None
    ) -> Page[CollectionListing]:
        limit = max_results or DEFAULT_COLLECTIONS_PAGE
        after = None
        if next_token is not None:
            after = keys.unpack_collection_id(
                self.tokens.decode(next_token, "ListCollections", b"")
            )
        rows = self._scan_collections(after, limit + 1)
        token = None
        if len(rows) > limit:
            rows = rows[:limit]
            cursor = keys.pack_collection_id(rows[-1].collection_id)
            token = self.tokens.encode("ListCollections", b"", cursor)
        return Page(rows, token)

    def delete_collection(self, collection_id: str) -> CollectionRecord:
        record = self.get_collection(collection_id)
        if not self._retire_collection(record):
            raise _not_found(collection_id)  # deleted (or re-created) meanwhile
        # From here the collection is deleted for every reader; the purge is housekeeping, so
        # its failure is logged, not reported: the tombstone makes the next call finish it.
        try:
            self.purge(record.incarnation)
            self.resume_purges()
        except Exception:
            log.warning(
                "purge of collection %s (incarnation %s) interrupted; it resumes with the next "
                "DeleteCollection",
                collection_id,
                record.incarnation,
                exc_info=True,
            )
        return record

    def purge(self, incarnation: str) -> None:
        """Delete every item of a retired incarnation, batch by batch, then its tombstone."""
        while self._purge_batch(incarnation):
            pass
        self._drop_tombstone(incarnation)

    def resume_purges(self) -> int:
        """Finish purges that an earlier DeleteCollection left (e.g. a crash); how many."""
        pending = list(self._tombstones())
        for incarnation in pending:
            self.purge(incarnation)
        return len(pending)

    # -----------------------------------------------------------------------------------------
    # Faces

    def add_faces(self, collection: CollectionRecord, faces: list[FaceRecord]) -> AddFacesResult:
        """Store the faces of one image (IndexFaces) atomically: all of them and the FaceCount,
        or nothing. Faces already stored (the same image indexed again) are not stored twice."""
        if not faces:
            return AddFacesResult(collection, [], [])
        if len(faces) > MAX_FACES_PER_IMAGE or len({f.image_id for f in faces}) != 1:
            raise ValueError("add_faces takes up to 100 faces of one image")
        if len({f.face_id for f in faces}) != len(faces):
            raise ValueError("duplicate FaceId")
        try:
            return self._insert_faces(collection, faces)
        except CollectionGone:
            raise _not_found(collection.collection_id) from None
        except QuotaExceeded:
            raise ServiceQuotaExceededException(
                f"The collection {collection.collection_id} would hold more than "
                f"{self.max_faces_per_collection} faces"
            ) from None

    def get_faces(
        self, collection: CollectionRecord, face_ids: Iterable[str], embeddings: bool = False
    ) -> dict[str, FaceRecord]:
        wanted = list(dict.fromkeys(face_ids))
        found: dict[str, FaceRecord] = {}
        for i in range(0, len(wanted), _READ_CHUNK):
            for face in self._read_faces(collection, wanted[i : i + _READ_CHUNK], embeddings):
                found[face.face_id] = face
        return found

    def get_face(self, collection: CollectionRecord, face_id: str) -> FaceRecord | None:
        """One face with its embedding (SearchFaces)."""
        return self.get_faces(collection, [face_id], embeddings=True).get(face_id)

    def list_faces(
        self,
        collection: CollectionRecord,
        max_results: int | None = None,
        next_token: str | None = None,
        face_ids: list[str] | None = None,
        user_id: str | None = None,
    ) -> Page[FaceRecord]:
        """Faces in FaceId order; ``face_ids`` and ``user_id`` filter (both: the intersection).
        A token is valid only for the same collection incarnation and the same filters."""
        limit = max_results or DEFAULT_FACES_PAGE
        ids_digest = None
        if face_ids is not None:
            ids_digest = hashlib.sha256(",".join(sorted(set(face_ids))).encode()).hexdigest()
        bound = keys.binding(collection.incarnation, user_id, ids_digest)
        after = None
        if next_token is not None:
            after = keys.unpack_uuid(self.tokens.decode(next_token, "ListFaces", bound))
        if face_ids is not None:
            rows = self._faces_by_ids(collection, sorted(set(face_ids)), after, limit + 1, user_id)
        elif user_id is not None:
            rows = self._scan_user_faces(collection, user_id, after, limit + 1)
        else:
            rows = self._scan_faces(collection, after, limit + 1)
        token = None
        if len(rows) > limit:
            rows = rows[:limit]
            token = self.tokens.encode("ListFaces", bound, keys.pack_uuid(rows[-1].face_id))
        return Page(rows, token)

    def _faces_by_ids(
        self,
        collection: CollectionRecord,
        wanted: list[str],
        after: str | None,
        limit: int,
        user_id: str | None,
    ) -> list[FaceRecord]:
        wanted = [f for f in wanted if after is None or f > after]
        out: list[FaceRecord] = []
        for i in range(0, len(wanted), _READ_CHUNK):
            found = self._read_faces(collection, wanted[i : i + _READ_CHUNK], False)
            out.extend(
                f
                for f in sorted(found, key=lambda f: f.face_id)
                if user_id is None or f.user_id == user_id
            )
            if len(out) >= limit:
                break
        return out[:limit]

    def delete_faces(self, collection: CollectionRecord, face_ids: list[str]) -> DeleteFacesResult:
        """Delete the faces that exist and belong to no user (a user's face must be
        disassociated first: ASSOCIATED_TO_AN_EXISTING_USER); the others are reported."""
        wanted = list(dict.fromkeys(face_ids))
        found = self.get_faces(collection, wanted)
        deletable = [f for f in wanted if f in found and found[f].user_id is None]
        try:
            removed, versions, after = self._remove_faces(collection, deletable)
        except CollectionGone:
            raise _not_found(collection.collection_id) from None
        gone = set(removed)
        # Faces a concurrent call changed between the read and the delete: read them again.
        raced = [f for f in deletable if f not in gone]
        if raced:
            found.update(self.get_faces(after, raced))
            for f in raced:
                if f in found and found[f].user_id is None:
                    found.pop(f)  # deleted by someone else meanwhile
        unsuccessful = []
        for f in wanted:
            if f in gone:
                continue
            face = found.get(f)
            if face is not None and face.user_id is not None:
                unsuccessful.append(
                    FaceDeletion(f, ["ASSOCIATED_TO_AN_EXISTING_USER"], face.user_id)
                )
            else:
                unsuccessful.append(FaceDeletion(f, ["FACE_NOT_FOUND"]))
        return DeleteFacesResult(after, removed, unsuccessful, versions)

    def load_faces(self, collection: CollectionRecord) -> tuple[FaceTable, CollectionRecord]:
        """Every face of the collection with its embedding, and the collection record the table
        is exact for (its version)."""
        loaded = self._load_face_table(collection)
        if loaded is None:
            raise _not_found(collection.collection_id)
        return loaded

    # -----------------------------------------------------------------------------------------
    # Tags

    def tag_collection(self, collection_id: str, tags: dict[str, str]) -> None:
        record = self.get_collection(collection_id)
        self._change_tags(record, tags, [])

    def untag_collection(self, collection_id: str, tag_keys: list[str]) -> None:
        record = self.get_collection(collection_id)
        self._change_tags(record, {}, tag_keys)

    def collection_tags(self, collection_id: str) -> dict[str, str]:
        record = self.get_collection(collection_id)
        tags = self._read_tags(record)
        if tags is None:
            raise _not_found(collection_id)
        return tags

    def _change_tags(self, record: CollectionRecord, put: dict[str, str], remove: list[str]):
        try:
            self._update_tags(record, put, remove, self.max_tags)
        except CollectionGone:
            raise _not_found(record.collection_id) from None
        except TooManyTags:
            raise ServiceQuotaExceededException(
                f"A collection can have at most {self.max_tags} tags"
            ) from None

    # -----------------------------------------------------------------------------------------
    # Users (the rules are in stores.users; each write is one atomic ``_write_user``)

    def create_user(
        self, collection: CollectionRecord, user_id: str, token: RequestToken | None = None
    ) -> UserWrite:
        limit = self.max_users_per_collection
        return self._user_write(
            collection, user_id, [], token, lambda s: users.plan_create(s, user_id, limit)
        )

    def delete_user(
        self, collection: CollectionRecord, user_id: str, token: RequestToken | None = None
    ) -> UserWrite:
        return self._user_write(
            collection, user_id, [], token, lambda s: users.plan_delete(s, user_id)
        )

    def associate_faces(
        self,
        collection: CollectionRecord,
        user_id: str,
        face_ids: list[str],
        threshold: float,
        score: UserScore,
        token: RequestToken | None = None,
    ) -> UserWrite:
        """Put faces in a user; ``score`` compares candidates with the user's faces (read with
        their embeddings in the same snapshot, so the check is exact under concurrency)."""
        return self._user_write(
            collection,
            user_id,
            face_ids,
            token,
            lambda s: users.plan_associate(
                s, user_id, face_ids, threshold, score, self.max_faces_per_user
            ),
            embeddings=True,
        )

    def disassociate_faces(
        self,
        collection: CollectionRecord,
        user_id: str,
        face_ids: list[str],
        token: RequestToken | None = None,
    ) -> UserWrite:
        return self._user_write(
            collection,
            user_id,
            face_ids,
            token,
            lambda s: users.plan_disassociate(s, user_id, face_ids),
        )

    def get_user(self, collection: CollectionRecord, user_id: str) -> UserRecord | None:
        try:
            return self._read_user(collection, user_id)
        except CollectionGone:
            raise _not_found(collection.collection_id) from None

    def get_users(self, collection: CollectionRecord, user_ids: list[str]) -> dict[str, UserRecord]:
        """The users among ``user_ids`` that exist, by UserId, in one read where the store can
        (a search's candidates: one query or BatchGetItem rather than one GetItem each)."""
        wanted = list(dict.fromkeys(user_ids))
        if not wanted:
            return {}
        try:
            return {u.user_id: u for u in self._read_users(collection, wanted)}
        except CollectionGone:
            raise _not_found(collection.collection_id) from None

    def list_users(
        self,
        collection: CollectionRecord,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> Page[UserRecord]:
        """Users in UserId order; a token is valid only for the same collection incarnation."""
        limit = max_results or DEFAULT_USERS_PAGE
        bound = keys.binding(collection.incarnation)
        after = None
        if next_token is not None:
            after = keys.unpack_user_id(self.tokens.decode(next_token, "ListUsers", bound))
        try:
            rows = self._scan_users(collection, after, limit + 1)
        except CollectionGone:
            raise _not_found(collection.collection_id) from None
        token = None
        if len(rows) > limit:
            rows = rows[:limit]
            token = self.tokens.encode("ListUsers", bound, keys.pack_user_id(rows[-1].user_id))
        return Page(rows, token)

    def _user_write(
        self,
        collection: CollectionRecord,
        user_id: str,
        face_ids: list[str],
        token: RequestToken | None,
        plan: Callable[[UserSnapshot], UserPlan],
        embeddings: bool = False,
    ) -> UserWrite:
        try:
            return self._write_user(
                collection, user_id, list(dict.fromkeys(face_ids)), embeddings, token, plan
            )
        except CollectionGone:
            raise _not_found(collection.collection_id) from None
        except TokenMismatch:
            assert token is not None
            raise IdempotentParameterMismatchException(
                f"ClientRequestToken {token.token} was already used for a different "
                f"{token.operation} request"
            ) from None

    # -----------------------------------------------------------------------------------------
    # Primitives

    @abstractmethod
    def _insert_collection(self, record: CollectionRecord, tags: dict[str, str]) -> bool:
        """Store a new collection with its tags; False if one with this id exists."""

    @abstractmethod
    def _read_collection(self, collection_id: str) -> CollectionRecord | None:
        """The current record, read consistently (it carries the version searches check)."""

    @abstractmethod
    def _scan_collections(self, after: str | None, limit: int) -> list[CollectionListing]:
        """Up to ``limit`` collections with ids > ``after``, in id order."""

    @abstractmethod
    def _retire_collection(self, record: CollectionRecord) -> bool:
        """Atomically remove this incarnation's record (and tags) and leave a purge tombstone;
        False if the collection is no longer this incarnation."""

    @abstractmethod
    def _purge_batch(self, incarnation: str) -> bool:
        """Delete some items of a retired incarnation; False when none is left."""

    @abstractmethod
    def _drop_tombstone(self, incarnation: str) -> None: ...

    @abstractmethod
    def _tombstones(self) -> Iterable[str]: ...

    @abstractmethod
    def _insert_faces(
        self, collection: CollectionRecord, faces: list[FaceRecord]
    ) -> AddFacesResult:
        """Add the faces not yet stored, FaceCount += their number and version += 1, atomically
        (or change nothing if all are stored). Raises CollectionGone or QuotaExceeded."""

    @abstractmethod
    def _read_faces(
        self, collection: CollectionRecord, face_ids: list[str], embeddings: bool
    ) -> list[FaceRecord]:
        """The visible faces among ``face_ids`` (up to 100), in any order."""

    @abstractmethod
    def _scan_faces(
        self, collection: CollectionRecord, after: str | None, limit: int
    ) -> list[FaceRecord]:
        """Up to ``limit`` faces with FaceId > ``after``, in FaceId order, without embeddings."""

    @abstractmethod
    def _scan_user_faces(
        self, collection: CollectionRecord, user_id: str, after: str | None, limit: int
    ) -> list[FaceRecord]:
        """Like ``_scan_faces``, only the faces of one user."""

    @abstractmethod
    def _remove_faces(
        self, collection: CollectionRecord, face_ids: list[str]
    ) -> tuple[list[str], list[int], CollectionRecord]:
        """Delete those of ``face_ids`` that still exist with no user, FaceCount -= their number,
        version += 1 per atomic write: (deleted ids, versions, collection after)."""

    @abstractmethod
    def _load_face_table(
        self, collection: CollectionRecord
    ) -> tuple[FaceTable, CollectionRecord] | None:
        """All faces with embeddings and the record they are exact for; None if gone."""

    @abstractmethod
    def _update_tags(
        self, record: CollectionRecord, put: dict[str, str], remove: list[str], max_tags: int
    ) -> None:
        """Set ``put`` and delete ``remove`` atomically; TooManyTags if over ``max_tags``."""

    @abstractmethod
    def _read_tags(self, record: CollectionRecord) -> dict[str, str] | None: ...

    @abstractmethod
    def _write_user(
        self,
        collection: CollectionRecord,
        user_id: str,
        face_ids: list[str],
        embeddings: bool,
        token: RequestToken | None,
        plan: Callable[[UserSnapshot], UserPlan],
    ) -> UserWrite:
        """One user write, atomically. If ``token`` names a live record: its result (replayed),
        or TokenMismatch if the record is of another request. Else read a consistent snapshot:
        the collection, the user, its FaceIds, and the faces ``face_ids`` and the user's own
        faces (with embeddings if ``embeddings``); ``plan(snapshot)`` (it may raise:
        nothing is written); then commit every face's UserId, the user (created, updated or
        deleted), UserCount, Version + 1 if a face changed, and the token's record (the result,
        ``users.result_json``) together. Returns the plan's result with its ``UsersChange``.
        Raises CollectionGone."""

    @abstractmethod
    def _read_user(self, collection: CollectionRecord, user_id: str) -> UserRecord | None:
        """The user, or None; CollectionGone if the collection is."""

    @abstractmethod
    def _read_users(self, collection: CollectionRecord, user_ids: list[str]) -> list[UserRecord]:
        """The users among ``user_ids`` (distinct) that exist; CollectionGone if the collection
        is gone."""

    @abstractmethod
    def _scan_users(
        self, collection: CollectionRecord, after: str | None, limit: int
    ) -> list[UserRecord]:
        """Up to ``limit`` users with UserId > ``after``, in UserId order; CollectionGone."""


def _not_found(collection_id: str) -> ResourceNotFoundException:
    return ResourceNotFoundException(f"The collection id: {collection_id} does not exist")


def f32(value: float) -> float:
    """A value as the store keeps it (float32), so that what IndexFaces returns is what ListFaces
    and searches return later."""
    return float(np.float32(value))
