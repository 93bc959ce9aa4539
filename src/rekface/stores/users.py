"""The rules of the user writes, once for every backend: what CreateUser, DeleteUser,
AssociateFaces and DisassociateFaces do, given a consistent snapshot of the user and the faces.

A backend reads a ``UserSnapshot`` and commits the ``UserPlan`` a rule returns in one atomic write
(``Store._write_user``); a rule raises (ConflictException, ResourceNotFoundException,
ServiceQuotaExceededException) before anything is written. The rules follow the service:

- AssociateFaces: a face already in this user is ignored (in neither list); a face not in the
  collection is FACE_NOT_FOUND; a face of another user ASSOCIATED_TO_A_DIFFERENT_USER (with that
  UserId). If the user has faces, a face joins only if its Similarity to the user (the centroid of
  the user's faces, as SearchUsers compares) reaches UserMatchThreshold, else
  LOW_MATCH_CONFIDENCE with that Similarity as Confidence. Faces of one request do not vouch for
  each other: a user without faces takes every free face of the request. A user holds at most 100
  faces: a request whose faces would take it past 100 is refused whole
  (ServiceQuotaExceededException), so a user is never filled by an arbitrary part of a request.
- DisassociateFaces: a face of this user leaves it; a face in no user is ignored; a face of
  another user is ASSOCIATED_TO_A_DIFFERENT_USER; an unknown face FACE_NOT_FOUND.
- DeleteUser: its faces leave it (they are not deleted), then the user is deleted.

A write with a ClientRequestToken stores its result with the token, in the same atomic write:
``result_json``/``result_from_json`` are that record's format.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from rekface.errors import (
    ConflictException,
    ResourceNotFoundException,
    ServiceQuotaExceededException,
)
from rekface.stores.records import (
    CollectionRecord,
    FaceOutcome,
    FaceRecord,
    UserRecord,
    UserWrite,
)

MAX_FACES_PER_USER = 100
MAX_USERS_PER_COLLECTION = 10_000_000  # Rekognition's quota

# (the user's faces' embeddings [m, D], candidate embeddings [c, D]) -> Similarity of each
# candidate to the user, 0..100 (the operations pass the calibrated centroid comparison).
UserScore = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class UserSnapshot:
    """What a rule sees, read consistently by the backend."""

    collection: CollectionRecord  # current
    user: UserRecord | None
    members: list[str]  # FaceIds of the user, sorted
    # The faces asked for that exist, and the user's own faces (with embeddings if asked).
    faces: dict[str, FaceRecord]


@dataclass(frozen=True)
class UserPlan:
    """What to commit: every face's new UserId, the user after (None: delete its record), and
    the result to answer (and to store with the request's token)."""

    result: UserWrite
    assign: dict[str, str | None] = field(default_factory=dict)
    user_after: UserRecord | None = None
    created: bool = False

    @property
    def user_count_delta(self) -> int:
        if self.created:
            return 1
        return -1 if self.user_after is None else 0


def _user_missing(user_id: str, collection: CollectionRecord) -> ResourceNotFoundException:
    return ResourceNotFoundException(
        f"The user {user_id} does not exist in the collection {collection.collection_id}"
    )


def _updated(user: UserRecord, delta: int) -> UserRecord:
    count = user.face_count + delta
    return UserRecord(user.user_id, UserRecord.status_for(count), count)


def plan_create(snap: UserSnapshot, user_id: str, max_users: int) -> UserPlan:
    if snap.user is not None:
        raise ConflictException(
            f"The user {user_id} already exists in the collection {snap.collection.collection_id}"
        )
    if snap.collection.user_count >= max_users:
        raise ServiceQuotaExceededException(
            f"The collection {snap.collection.collection_id} already holds {max_users} users"
        )
    user = UserRecord(user_id, UserRecord.status_for(0), 0)
    return UserPlan(UserWrite(user, [], []), user_after=user, created=True)


def plan_delete(snap: UserSnapshot, user_id: str) -> UserPlan:
    if snap.user is None:
        raise _user_missing(user_id, snap.collection)
    members = _members(snap)
    return UserPlan(UserWrite(None, members, []), assign=dict.fromkeys(members), user_after=None)


def plan_associate(
    snap: UserSnapshot,
    user_id: str,
    face_ids: list[str],
    threshold: float,
    score: UserScore,
    max_faces: int = MAX_FACES_PER_USER,
) -> UserPlan:
    user = snap.user
    if user is None:
        raise _user_missing(user_id, snap.collection)
    unsuccessful: list[FaceOutcome] = []
    candidates: list[str] = []
    for face_id in dict.fromkeys(face_ids):
        face = snap.faces.get(face_id)
        if face is None:
            unsuccessful.append(FaceOutcome(face_id, ["FACE_NOT_FOUND"]))
        elif face.user_id == user_id:
            continue  # already this user's: ignored, as the service does
        elif face.user_id is not None:
            unsuccessful.append(
                FaceOutcome(face_id, ["ASSOCIATED_TO_A_DIFFERENT_USER"], face.user_id)
            )
        else:
            candidates.append(face_id)
    accepted = candidates
    if candidates and _members(snap):
        members = np.stack([_embedding(snap.faces[m]) for m in _members(snap)])
        similarity = score(members, np.stack([_embedding(snap.faces[c]) for c in candidates]))
        accepted = []
        for face_id, s in zip(candidates, similarity.tolist(), strict=True):
            if s >= threshold:
                accepted.append(face_id)
            else:
                unsuccessful.append(
                    FaceOutcome(face_id, ["LOW_MATCH_CONFIDENCE"], user_id, float(s))
                )
        order = {f: i for i, f in enumerate(dict.fromkeys(face_ids))}
        unsuccessful.sort(key=lambda u: order[u.face_id])
    if user.face_count + len(accepted) > max_faces:
        raise ServiceQuotaExceededException(
            f"The user {user_id} has {user.face_count} faces: {len(accepted)} more would exceed "
            f"the limit of {max_faces} faces per user"
        )
    after = _updated(user, len(accepted))
    return UserPlan(
        UserWrite(after, accepted, unsuccessful),
        assign=dict.fromkeys(accepted, user_id),
        user_after=after,
    )


def plan_disassociate(snap: UserSnapshot, user_id: str, face_ids: list[str]) -> UserPlan:
    user = snap.user
    if user is None:
        raise _user_missing(user_id, snap.collection)
    unsuccessful: list[FaceOutcome] = []
    leaving: list[str] = []
    for face_id in dict.fromkeys(face_ids):
        face = snap.faces.get(face_id)
        if face is None:
            unsuccessful.append(FaceOutcome(face_id, ["FACE_NOT_FOUND"]))
        elif face.user_id == user_id:
            leaving.append(face_id)
        elif face.user_id is not None:
            unsuccessful.append(
                FaceOutcome(face_id, ["ASSOCIATED_TO_A_DIFFERENT_USER"], face.user_id)
            )
        # else: in no user, ignored, as the service does
    after = _updated(user, -len(leaving))
    return UserPlan(
        UserWrite(after, leaving, unsuccessful),
        assign=dict.fromkeys(leaving),
        user_after=after,
    )


def _members(snap: UserSnapshot) -> list[str]:
    """The user's faces that the snapshot read (all of them, unless a backend's user record
    lists a face that no longer exists: then that face is no longer the user's)."""
    return [m for m in snap.members if m in snap.faces]


def _embedding(face: FaceRecord) -> np.ndarray:
    if face.embedding is None:  # pragma: no cover - the backends read them when asked
        raise ValueError(f"face {face.face_id} was read without its embedding")
    return face.embedding


# ---------------------------------------------------------------------------------------------
# The result stored with a ClientRequestToken


def result_json(result: UserWrite) -> str:
    user = result.user
    return json.dumps(
        {
            "user": None if user is None else [user.user_id, user.status, user.face_count],
            "changed": result.changed,
            "unsuccessful": [
                [u.face_id, u.reasons, u.user_id, u.confidence] for u in result.unsuccessful
            ],
        },
        separators=(",", ":"),
    )


def result_from_json(text: str) -> UserWrite:
    data = json.loads(text)
    user = None if data["user"] is None else UserRecord(*data["user"])
    unsuccessful = [FaceOutcome(f, list(r), u, c) for f, r, u, c in data["unsuccessful"]]
    return UserWrite(user, list(data["changed"]), unsuccessful, None, replayed=True)
