"""What the user operations share: ClientRequestToken digests, how a face is scored against a
user, user matches as calibrated Similarity, and the JSON of outcomes.

A user is compared as the centroid of its faces (``rekface.search.users``): SearchUsers and
SearchUsersByImage rank users by the Similarity of the query to their centroids, and
AssociateFaces admits a face into a user that has faces only if its Similarity to the centroid
of those faces reaches UserMatchThreshold. Similarity is the same calibrated function of the
cosine as face matches (``rekface.engine.calibrate``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import numpy as np

from rekface.engine.calibrate import Calibration
from rekface.operations.context import Context
from rekface.operations.face_models import collection_calibration
from rekface.operations.face_search import above_threshold, cosine_floor
from rekface.search.users import centroid
from rekface.stores.records import CollectionRecord, FaceOutcome, RequestToken, UserWrite

# AssociateFaces' UserMatchThreshold default (documented by the service).
ASSOCIATE_THRESHOLD = 75.0
# SearchUsers / SearchUsersByImage: UserMatchThreshold default 80 (documented); MaxUsers has no
# documented default: as SearchFacesByImage's MaxFaces, 80.
SEARCH_THRESHOLD = 80.0
DEFAULT_MAX_USERS = 80


def request_token(operation: str, request: dict[str, Any]) -> RequestToken | None:
    """The request's ClientRequestToken and a digest of everything else it asks."""
    token = request.get("ClientRequestToken")
    if token is None:
        return None
    rest = {k: v for k, v in request.items() if k != "ClientRequestToken" and v is not None}
    canonical = json.dumps(rest, sort_keys=True, separators=(",", ":"))
    return RequestToken(operation, token, hashlib.sha256(canonical.encode()).hexdigest())


def user_similarity(
    calibration: Calibration,
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The store's scorer: Similarity (0..100) of each candidate embedding to the centroid of
    ``members``, by the collection's calibration."""

    def score(members: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        cosines = np.asarray(candidates, np.float32) @ centroid(members)
        return calibration.similarity(cosines.astype(np.float64))

    return score


def notify(ctx: Context, result: UserWrite) -> None:
    """Tell the search backend what a committed write changed (nothing on a replay)."""
    if result.change is not None and not result.replayed:
        ctx.search.users_changed(result.change)


def user_matches(
    ctx: Context,
    collection: CollectionRecord,
    embedding: np.ndarray,
    request: dict[str, Any],
    exclude_user_id: str | None = None,
) -> list[dict[str, Any]]:
    threshold = float(request.get("UserMatchThreshold", SEARCH_THRESHOLD))
    max_users = int(request.get("MaxUsers", DEFAULT_MAX_USERS))
    calibration = collection_calibration(ctx, collection)
    found = ctx.search.search_users(
        collection, embedding, max_users, cosine_floor(calibration, threshold), exclude_user_id
    )
    return [
        # A user that matches has faces; user writes are atomic: its status is ACTIVE.
        {"Similarity": sim, "User": {"UserId": m.user_id, "UserStatus": "ACTIVE"}}
        for m, sim in above_threshold(calibration, found, [m.cosine for m in found], threshold)
    ]


def outcome_json(outcome: FaceOutcome) -> dict[str, Any]:
    item: dict[str, Any] = {"FaceId": outcome.face_id}
    if outcome.user_id is not None:
        item["UserId"] = outcome.user_id
    if outcome.confidence is not None:
        item["Confidence"] = min(100.0, max(0.0, outcome.confidence))
    item["Reasons"] = list(outcome.reasons)
    return item
