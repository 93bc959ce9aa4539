"""User writes on DynamoDB: CreateUser, DeleteUser, AssociateFaces, DisassociateFaces as one
transaction each, or, when a write changes more faces than one transaction holds, a staged write.

Items (see ``rekface.stores.dynamodb``)::

    user            U#<inc>   <UserId>          Status, FaceCount, FaceIds (SS), Created, Rev
    request token   T#<inc>   <Op>#<Token>      RequestDigest, Response, ExpiresAt (TTL)
    user marker     S#<inc>   user#<owner>      State, LeaseUntil, UserId, Assign (M FaceId ->
                                                UserId or NULL)

A face's UserId is on the face item (DeleteFaces refuses a face that has one, search loads it
with the embedding) and the user's FaceIds set lists its faces (ListFaces by UserId, the
snapshot of a user write). ``Rev`` is the user item's optimistic lock.

**One transaction** (the usual case): every changed face ``SET``/``REMOVE UserId`` under a
condition on the UserId the snapshot saw, the user item (Put / Update / Delete under ``Rev``), the
collection (``ADD UserCount, Version`` under ``Incarnation``, and ``UserCount < max`` for a new
user) and the ClientRequestToken record (Put unless a live one exists): a face is never in two
users, a user never holds more than 100 faces, counts are exact, and the token's answer is the
write's. Any lost race cancels the transaction, and the write is planned again from a new read.

**Staged** (a write of more than ``max_transaction_actions - 3`` faces: a user of 98-100 faces
deleted, or 98-100 faces associated or disassociated at once), as IndexFaces stages large images:
(1) a marker ``State=STAGING`` with an owner, a lease and the planned assignment; (2) each face is
reserved (``SET UserPending = <owner>`` under the same conditions, plus the marker still STAGING),
in transactions; (3) one transaction flips the marker to COMMITTED together with the user, the
collection and the token: the whole write becomes visible at once, because a reader applies a
COMMITTED marker's assignment to the faces it reserves; (4) roll forward: the faces get their
UserId and lose the reservation, then the marker goes. A reservation blocks other writes of the
face (its conditions include ``attribute_not_exists(UserPending)``), and a writer that meets one
settles it: a committed marker is rolled forward, an abandoned or expired one (the writer crashed
before (3)) is marked ABANDONED, its reservations cleared and the marker deleted.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from rekface.stores.base import CollectionGone, TokenMismatch
from rekface.stores.dynamodb_items import (
    Retry,
    collection_key,
    error_code,
    face_key,
    face_record,
    marker_key,
    n_,
    s_,
    user_key,
)
from rekface.stores.records import (
    CollectionRecord,
    RequestToken,
    UserRecord,
    UsersChange,
    UserWrite,
)
from rekface.stores.users import UserPlan, UserSnapshot, result_from_json, result_json

if TYPE_CHECKING:
    from rekface.stores.dynamodb import DynamoDBStore

log = logging.getLogger("rekface.stores")

USER_MARKER = "user#"  # SK prefix of user-write markers (image markers' SKs are ImageIds)
# A face no user write holds: the condition for reserving or changing it.
_FREE = "attribute_not_exists(UserPending)"


def token_key(incarnation: str, token: RequestToken) -> dict[str, Any]:
    return {"PK": s_(f"T#{incarnation}"), "SK": s_(f"{token.operation}#{token.token}")}


def user_marker_key(incarnation: str, owner: str) -> dict[str, Any]:
    return marker_key(incarnation, USER_MARKER + owner)


def user_record(item: dict[str, Any]) -> UserRecord:
    return UserRecord(item["SK"]["S"], item["Status"]["S"], int(item["FaceCount"]["N"]))


def _assign_map(assign: dict[str, str | None]) -> dict[str, Any]:
    return {"M": {f: ({"NULL": True} if u is None else s_(u)) for f, u in assign.items()}}


def _assignment(marker: dict[str, Any]) -> dict[str, str | None]:
    return {f: v.get("S") for f, v in marker.get("Assign", {}).get("M", {}).items()}


class DynamoUserWrites:
    """The user primitives of ``DynamoDBStore`` (composed, to keep each module small)."""

    def __init__(self, store: DynamoDBStore) -> None:
        self.s = store

    # -----------------------------------------------------------------------------------------
    # Reading

    def _check_collection(self, collection: CollectionRecord) -> CollectionRecord:
        current = self.s._read_collection(collection.collection_id)
        if current is None or current.incarnation != collection.incarnation:
            raise CollectionGone()
        return current

    def read_user(self, collection: CollectionRecord, user_id: str) -> UserRecord | None:
        self._check_collection(collection)
        item = self.s._get(
            user_key(collection.incarnation, user_id), "SK, #s, FaceCount", {"#s": "Status"}
        )
        return None if item is None else user_record(item)

    def read_users(self, collection: CollectionRecord, user_ids: list[str]) -> list[UserRecord]:
        self._check_collection(collection)
        keys = [user_key(collection.incarnation, u) for u in user_ids]
        return [user_record(item) for item in self.s._batch_get(keys)]

    def scan_users(
        self, collection: CollectionRecord, after: str | None, limit: int
    ) -> list[UserRecord]:
        self._check_collection(collection)
        items = self.s._query(
            f"U#{collection.incarnation}", after, limit, "SK, #s, FaceCount", names={"#s": "Status"}
        )
        return [user_record(it) for it in items]

    def resolve(self, incarnation: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Face items as readers must see them: a face reserved by a COMMITTED user write has
        the UserId that write gave it (until the roll-forward writes it on the face)."""
        owners = {it["UserPending"]["S"] for it in items if "UserPending" in it}
        if not owners:
            return items
        committed: dict[str, dict[str, str | None]] = {}
        for marker in self.s._batch_get([user_marker_key(incarnation, o) for o in owners]):
            if marker["State"]["S"] == "COMMITTED":
                committed[marker["SK"]["S"][len(USER_MARKER) :]] = _assignment(marker)
        out = []
        for it in items:
            assign = committed.get(it.get("UserPending", {}).get("S", ""))
            if assign is not None and it["SK"]["S"] in assign:
                it = dict(it)
                new = assign[it["SK"]["S"]]
                if new is None:
                    it.pop("UserId", None)
                else:
                    it["UserId"] = s_(new)
            out.append(it)
        return out

    # -----------------------------------------------------------------------------------------
    # Settling other writers' reservations

    def settle_items(self, incarnation: str, items: list[dict[str, Any]]) -> bool:
        """Settle every user write that reserves one of these faces; False while one is live."""
        done = True
        for owner in {it["UserPending"]["S"] for it in items if "UserPending" in it}:
            done = self.settle(incarnation, owner) and done
        return done

    def settle(self, incarnation: str, owner: str) -> bool:
        """Finish (committed) or undo (abandoned, or lease expired) one user write; False if it
        is still being staged by a live writer."""
        marker = self.s._get(user_marker_key(incarnation, owner))
        if marker is None:
            return True  # finished meanwhile (faces are cleared before their marker goes)
        state = marker["State"]["S"]
        if state == "COMMITTED":
            self._roll_forward(incarnation, owner, marker)
            return True
        if state == "STAGING" and float(marker["LeaseUntil"]["N"]) >= time.time():
            return False
        self._abandon(incarnation, owner, expired_only=True)
        return True

    def _roll_forward(self, incarnation: str, owner: str, marker: dict[str, Any]) -> None:
        for face_id, user_id in _assignment(marker).items():
            if user_id is None:
                update, values = "REMOVE UserId, UserPending", {":o": s_(owner)}
            else:
                update = "SET UserId = :u REMOVE UserPending"
                values = {":o": s_(owner), ":u": s_(user_id)}
            self._conditional_update(
                face_key(incarnation, face_id), update, "UserPending = :o", values
            )
        self._conditional_delete(user_marker_key(incarnation, owner), "COMMITTED")

    def _abandon(self, incarnation: str, owner: str, expired_only: bool) -> None:
        """Undo a write that has not committed: mark it ABANDONED (so that it can no longer
        commit), clear its reservations, delete the marker. A write found COMMITTED meanwhile is
        rolled forward instead."""
        key = user_marker_key(incarnation, owner)
        condition = "#s = :staging" + (" AND LeaseUntil < :now" if expired_only else "")
        values: dict[str, Any] = {":staging": s_("STAGING"), ":abandoned": s_("ABANDONED")}
        if expired_only:
            values[":now"] = n_(round(time.time(), 3))
        try:
            self.s.client.update_item(
                TableName=self.s.table,
                Key=key,
                UpdateExpression="SET #s = :abandoned",
                ConditionExpression=condition,
                ExpressionAttributeNames={"#s": "State"},
                ExpressionAttributeValues=values,
            )
        except ClientError as err:
            if error_code(err) != "ConditionalCheckFailedException":
                raise
        marker = self.s._get(key)
        if marker is None:
            return
        if marker["State"]["S"] == "COMMITTED":
            self._roll_forward(incarnation, owner, marker)
            return
        if marker["State"]["S"] != "ABANDONED":
            return  # a live writer's lease (expired_only): not ours to undo
        for face_id in _assignment(marker):
            self._conditional_update(
                face_key(incarnation, face_id),
                "REMOVE UserPending",
                "UserPending = :o",
                {":o": s_(owner)},
            )
        self._conditional_delete(key, "ABANDONED")

    def _conditional_update(
        self, key: dict[str, Any], update: str, condition: str, values: dict[str, Any]
    ) -> None:
        try:
            self.s.client.update_item(
                TableName=self.s.table,
                Key=key,
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
            )
        except ClientError as err:
            if error_code(err) != "ConditionalCheckFailedException":
                raise  # else: done already (by another settler)

    def _conditional_delete(self, key: dict[str, Any], state: str) -> None:
        try:
            self.s.client.delete_item(
                TableName=self.s.table,
                Key=key,
                ConditionExpression="#s = :state",
                ExpressionAttributeNames={"#s": "State"},
                ExpressionAttributeValues={":state": s_(state)},
            )
        except ClientError as err:
            if error_code(err) != "ConditionalCheckFailedException":
                raise

    # -----------------------------------------------------------------------------------------
    # Writing

    def write_user(
        self,
        collection: CollectionRecord,
        user_id: str,
        face_ids: list[str],
        embeddings: bool,
        token: RequestToken | None,
        plan: Callable[[UserSnapshot], UserPlan],
    ) -> UserWrite:
        inc = collection.incarnation

        def attempt() -> UserWrite:
            if token is not None:
                replayed = self._replay(inc, token)
                if replayed is not None:
                    return replayed
            current = self._check_collection(collection)
            user_item = self.s._get(user_key(inc, user_id))
            user = None if user_item is None else user_record(user_item)
            members = sorted(user_item.get("FaceIds", {}).get("SS", [])) if user_item else []
            wanted = list(dict.fromkeys(face_ids + members))
            raw = self.s._batch_get([face_key(inc, f) for f in wanted])
            if any("UserPending" in it for it in raw):
                self.settle_items(inc, raw)
                raise Retry()  # read again, settled (or wait for a live writer)
            # Faces of an image IndexFaces is staging are invisible (FACE_NOT_FOUND) until it
            # commits; a committed one may still carry Pending, which no condition here checks.
            faces = {
                f.face_id: f
                for f in (face_record(it, embeddings) for it in self.s._visible(inc, raw))
            }
            snapshot = UserSnapshot(current, user, members, faces)
            p = plan(snapshot)
            rev = int(user_item["Rev"]["N"]) if user_item else 0
            return self._commit(current, user_id, snapshot, p, rev, token)

        return self.s._retrying(attempt)

    def _replay(self, inc: str, token: RequestToken) -> UserWrite | None:
        item = self.s._get(token_key(inc, token))
        if item is None or float(item["ExpiresAt"]["N"]) <= time.time():
            return None
        if item["RequestDigest"]["S"] != token.digest:
            raise TokenMismatch()
        return result_from_json(item["Response"]["S"])

    def _face_condition(self, face_id: str, snapshot: UserSnapshot) -> tuple[str, dict[str, Any]]:
        old = snapshot.faces[face_id].user_id
        if old is None:
            return f"attribute_exists(PK) AND attribute_not_exists(UserId) AND {_FREE}", {}
        return f"UserId = :old AND {_FREE}", {":old": s_(old)}

    def _others(
        self,
        current: CollectionRecord,
        user_id: str,
        p: UserPlan,
        rev: int,
        token: RequestToken | None,
        result: UserWrite,
    ) -> list[dict[str, Any]]:
        """The user, collection and token actions of a write (after its face actions)."""
        inc = current.incarnation
        key = user_key(inc, user_id)
        actions: list[dict[str, Any]] = []
        after = p.user_after
        if p.created and after is not None:
            item = key | {
                "Status": s_(after.status),
                "FaceCount": n_(0),
                "Created": n_(round(time.time(), 3)),
                "Rev": n_(0),
            }
            actions.append(
                {"Put": {"Item": item, "ConditionExpression": "attribute_not_exists(PK)"}}
            )
        elif after is None:
            actions.append(
                {
                    "Delete": {
                        "Key": key,
                        "ConditionExpression": "Rev = :rev",
                        "ExpressionAttributeValues": {":rev": n_(rev)},
                    }
                }
            )
        elif p.assign:
            joining = [f for f, u in p.assign.items() if u == user_id]
            verb, faces = ("ADD", joining) if joining else ("DELETE", list(p.assign))
            actions.append(
                {
                    "Update": {
                        "Key": key,
                        "UpdateExpression": f"SET #s = :s, FaceCount = :n, Rev = :next "
                        f"{verb} FaceIds :ids",
                        "ConditionExpression": "Rev = :rev",
                        "ExpressionAttributeNames": {"#s": "Status"},
                        "ExpressionAttributeValues": {
                            ":s": s_(after.status),
                            ":n": n_(after.face_count),
                            ":next": n_(rev + 1),
                            ":rev": n_(rev),
                            ":ids": {"SS": faces},
                        },
                    }
                }
            )
        else:  # nothing changes: the answer still rests on the user as read
            actions.append(
                {
                    "ConditionCheck": {
                        "Key": key,
                        "ConditionExpression": "Rev = :rev",
                        "ExpressionAttributeValues": {":rev": n_(rev)},
                    }
                }
            )
        delta = p.user_count_delta
        values: dict[str, Any] = {":inc": s_(inc)}
        adds = []
        if delta:
            adds.append("UserCount :d")
            values[":d"] = n_(delta)
        if p.assign:
            adds.append("Version :one")
            values[":one"] = n_(1)
        condition = "Incarnation = :inc"
        if p.created:
            condition += " AND UserCount < :max"
            values[":max"] = n_(self.s.max_users_per_collection)
        ckey = collection_key(current.collection_id)
        if adds:
            actions.append(
                {
                    "Update": {
                        "Key": ckey,
                        "UpdateExpression": "ADD " + ", ".join(adds),
                        "ConditionExpression": condition,
                        "ExpressionAttributeValues": values,
                    }
                }
            )
        else:
            actions.append(
                {
                    "ConditionCheck": {
                        "Key": ckey,
                        "ConditionExpression": condition,
                        "ExpressionAttributeValues": values,
                    }
                }
            )
        if token is not None:
            now = time.time()
            record = token_key(inc, token) | {
                "RequestDigest": s_(token.digest),
                "Response": s_(result_json(result)),
                "ExpiresAt": n_(int(now + self.s.request_token_ttl)),
            }
            actions.append(
                {
                    "Put": {
                        "Item": record,
                        "ConditionExpression": "attribute_not_exists(PK) OR ExpiresAt < :now",
                        "ExpressionAttributeValues": {":now": n_(int(now))},
                    }
                }
            )
        return actions

    def _commit(
        self,
        current: CollectionRecord,
        user_id: str,
        snapshot: UserSnapshot,
        p: UserPlan,
        rev: int,
        token: RequestToken | None,
    ) -> UserWrite:
        result = p.result
        if p.assign:
            # No version is claimed as ours: other writers may have moved it too (as IndexFaces).
            result = replace(result, change=UsersChange(current, dict(p.assign), []))
        if not p.assign and not p.created and p.user_after is not None and token is None:
            return result  # nothing to write, nothing to remember
        others = self._others(current, user_id, p, rev, token, result)
        if len(p.assign) + len(others) <= self.s.max_transaction_actions:
            actions = [
                self._face_update(current.incarnation, f, u, snapshot) for f, u in p.assign.items()
            ]
            codes = self.s._transact([*actions, *others])
            if codes is not None:
                self._failed(current, codes[len(actions) + 1])  # others[1]: the collection
        else:
            self._staged(current, user_id, snapshot, p, others)
        return result

    def _face_update(
        self, inc: str, face_id: str, user_id: str | None, snapshot: UserSnapshot
    ) -> dict[str, Any]:
        condition, values = self._face_condition(face_id, snapshot)
        if user_id is None:
            update = "REMOVE UserId"
        else:
            update = "SET UserId = :u"
            values = values | {":u": s_(user_id)}
        action: dict[str, Any] = {
            "Key": face_key(inc, face_id),
            "UpdateExpression": update,
            "ConditionExpression": condition,
        }
        if values:
            action["ExpressionAttributeValues"] = values
        return {"Update": action}

    def _failed(self, current: CollectionRecord, collection_code: str) -> None:
        """A transaction was cancelled: the collection may be gone, else a race: plan again."""
        if collection_code == "ConditionalCheckFailed":
            self._check_collection(current)
        raise Retry()

    # -----------------------------------------------------------------------------------------
    # The staged path

    def _staged(
        self,
        current: CollectionRecord,
        user_id: str,
        snapshot: UserSnapshot,
        p: UserPlan,
        others: list[dict[str, Any]],
    ) -> None:
        inc = current.incarnation
        owner = uuid.uuid4().hex
        key = user_marker_key(inc, owner)
        lease = time.time() + self.s.staging_lease_seconds
        try:
            self.s.client.put_item(
                TableName=self.s.table,
                Item=key
                | {
                    "State": s_("STAGING"),
                    "LeaseUntil": n_(round(lease, 3)),
                    "UserId": s_(user_id),
                    "Assign": _assign_map(p.assign),
                },
                ConditionExpression="attribute_not_exists(PK)",
            )
        except ClientError as err:
            if error_code(err) == "ConditionalCheckFailedException":
                raise Retry() from err
            raise
        staging = {
            "ConditionCheck": {
                "Key": key,
                "ConditionExpression": "#s = :staging",
                "ExpressionAttributeNames": {"#s": "State"},
                "ExpressionAttributeValues": {":staging": s_("STAGING")},
            }
        }
        faces = list(p.assign)
        chunk_size = self.s.max_transaction_actions - 1
        try:
            for i in range(0, len(faces), chunk_size):
                reserve = [
                    self._reserve(inc, f, owner, snapshot) for f in faces[i : i + chunk_size]
                ]
                if self.s._transact([*reserve, staging]) is not None:
                    raise Retry()  # a face changed since the snapshot
            commit = {
                "Update": {
                    "Key": key,
                    "UpdateExpression": "SET #s = :committed",
                    "ConditionExpression": "#s = :staging",
                    "ExpressionAttributeNames": {"#s": "State"},
                    "ExpressionAttributeValues": {
                        ":committed": s_("COMMITTED"),
                        ":staging": s_("STAGING"),
                    },
                }
            }
            codes = self.s._transact([commit, *others])
            if codes is not None:
                # others[1] is the collection's action.
                self._failed(current, codes[2])
        except BaseException:
            self._abandon(inc, owner, expired_only=False)
            raise
        marker = self.s._get(key)
        if marker is None:
            return
        try:
            self._roll_forward(inc, owner, marker)
        except Exception:  # committed: readers see it whole; the next writer finishes it
            log.warning("roll-forward of user write %s interrupted", owner, exc_info=True)

    def _reserve(
        self, inc: str, face_id: str, owner: str, snapshot: UserSnapshot
    ) -> dict[str, Any]:
        condition, values = self._face_condition(face_id, snapshot)
        return {
            "Update": {
                "Key": face_key(inc, face_id),
                "UpdateExpression": "SET UserPending = :o",
                "ConditionExpression": condition,
                "ExpressionAttributeValues": values | {":o": s_(owner)},
            }
        }
