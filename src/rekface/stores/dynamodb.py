"""The AWS store: one DynamoDB table (``settings.table_name``), single-table design.

Keys are ``PK`` (S) and ``SK`` (S); no secondary index: every read is a strongly consistent key
access, so an answer never lags a write the caller has seen succeed. Billing on demand; TTL
attribute ``ExpiresAt`` (ClientRequestToken records). Item types (``<inc>`` = the collection's
incarnation, a UUID drawn at CreateCollection, see ``rekface.stores.base``)::

    item            PK                  SK              attributes
    collection      C#<CollectionId>    C               CollectionId, Incarnation, Created,
                                                        FaceModelVersion, FaceCount, UserCount,
                                                        Version, Tags (M), TagRev
    directory       DIR                 <CollectionId>  FaceModelVersion (ListCollections)
    face            F#<inc>#<h>         <FaceId>        ImageId, ExternalImageId, Box (B, 4 x f32),
                                                        Confidence, UserId, Embedding (B, dims x
                                                        f32 = 512 bytes), Pending (staging only)
    user            U#<inc>             <UserId>        Status, FaceCount, FaceIds (SS), Created,
                                                        Rev
    request token   T#<inc>             <Op>#<Token>    RequestDigest, Response, ExpiresAt (TTL)
    staging marker  S#<inc>             <ImageId>       State, Owner, LeaseUntil, FaceIds (SS)
    user marker     S#<inc>             user#<owner>    State, LeaseUntil, UserId, Assign (M)
    tombstone       PURGE               <inc>           CollectionId, RetiredAt

``<h>`` is the first hex digit of the FaceId: faces spread over 16 partition keys per collection,
so writes do not queue on one key and a collection loads with 16 parallel queries; and since the
shard is a prefix of the FaceId, walking the shards in order lists faces in FaceId order.

Writes that change several items together are transactions:

- CreateCollection: Put collection + Put directory, both ``attribute_not_exists``.
- IndexFaces: Put each new face (``attribute_not_exists``) + Update collection ``ADD FaceCount :n,
  Version :1`` under ``Incarnation = :inc AND FaceCount <= :room`` (quota) + ConditionCheck that no
  staging marker holds the image: at most 98 faces, as a transaction holds at most 100 actions.
  An image with 99 or 100 new faces is staged: (1) Put a marker ``State=STAGING`` with an owner and
  a lease, (2) one transaction of up to 100 conditional Puts of the faces with ``Pending=<ImageId>``
  (invisible: readers show a pending face only if its image's marker is COMMITTED and lists it),
  (3) one transaction: marker ``State=COMMITTED`` (owner still us) + the FaceCount/Version update,
  which makes all faces visible at once, (4) roll forward: remove ``Pending`` from each face, then
  delete the marker. A crash before (3) leaves invisible items that the next IndexFaces of that
  image (after the lease) takes over or the collection's purge removes; a crash after (3) leaves
  visible faces that the next IndexFaces or DeleteFaces of the image finishes rolling forward.
- DeleteFaces: chunks of up to 99 conditional Deletes (``attribute_exists AND
  attribute_not_exists(UserId)``) + the FaceCount/Version update. A face deleted concurrently
  cancels the chunk; it is retried without that face, so no face is ever counted twice.
- DeleteCollection: Delete collection + Delete directory + Put tombstone, then the purge queries
  each of the incarnation's partitions and deletes with BatchWriteItem, 25 items per call.
- Tags: the collection item's ``Tags`` map, rewritten under ``TagRev`` (optimistic lock).
- User writes (CreateUser, DeleteUser, AssociateFaces, DisassociateFaces): one transaction of the
  faces' UserIds + the user item + the collection's UserCount/Version + the ClientRequestToken
  record, or a staged write when more faces change than a transaction holds; readers apply a
  committed staged write's assignment to the faces it reserves (``UserPending``): see
  ``rekface.stores.dynamodb_users``.

The boto3 client is injected (tests use moto); conflicts between concurrent transactions
(``TransactionConflict``) are retried with jittered backoff.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import ClientError

from rekface.errors import ThrottlingException
from rekface.stores.base import CollectionGone, QuotaExceeded, Store, TooManyTags
from rekface.stores.dynamodb_items import (
    DIRECTORY_PK,
    PURGE_PK,
    SHARDS,
    TABLE_DEFINITION,
    TTL_ATTRIBUTE,
    Retry,
    collection_key,
    collection_record,
    create_table,
    error_code,
    face_item,
    face_key,
    face_model_version,
    face_record,
    face_table,
    incarnation_partitions,
    marker_key,
    n_,
    s_,
    user_key,
)
from rekface.stores.dynamodb_users import DynamoUserWrites
from rekface.stores.records import (
    AddFacesResult,
    CollectionListing,
    CollectionRecord,
    FaceRecord,
    FaceTable,
    RequestToken,
    UserRecord,
    UserWrite,
)
from rekface.stores.users import UserPlan, UserSnapshot

MAX_TRANSACTION_ACTIONS = 100
STAGING_LEASE_SECONDS = 120.0
_RETRIES = 12

__all__ = ["TABLE_DEFINITION", "TTL_ATTRIBUTE", "DynamoDBStore", "create_table"]


def _cancellation_codes(err: ClientError) -> list[str]:
    reasons = err.response.get("CancellationReasons") or []
    return [r.get("Code") or "None" for r in reasons]


_Retry = Retry  # a write lost a race; read again and retry


class DynamoDBStore(Store):
    def __init__(
        self,
        client: Any,
        table_name: str,
        token_secret: str,
        max_transaction_actions: int = MAX_TRANSACTION_ACTIONS,
        staging_lease_seconds: float = STAGING_LEASE_SECONDS,
    ) -> None:
        super().__init__(token_secret)
        self.client = client
        self.table = table_name
        # Faces per fast-path transaction: the rest of the 100 actions are the collection update
        # and the staging marker check. Tests lower the limit to exercise the staged path.
        self.fast_path_faces = max_transaction_actions - 2
        self.delete_chunk = max_transaction_actions - 1
        self.max_transaction_actions = max_transaction_actions
        self.staging_lease_seconds = staging_lease_seconds
        self.users = DynamoUserWrites(self)

    # -----------------------------------------------------------------------------------------
    # Helpers

    def _retrying(self, attempt: Callable[[], Any]) -> Any:
        for n in range(_RETRIES):
            try:
                return attempt()
            except _Retry:
                time.sleep(min(0.5, 0.005 * 2**n) * random.random())
        raise ThrottlingException("Too many concurrent changes to the collection; try again")

    def _transact(self, actions: list[dict[str, Any]]) -> list[str] | None:
        """Run a transaction: None if it committed, else the cancellation reason codes.
        Conflicts with a concurrent transaction raise _Retry."""
        for action in actions:
            next(iter(action.values()))["TableName"] = self.table
        try:
            self.client.transact_write_items(
                TransactItems=actions, ClientRequestToken=str(uuid.uuid4())
            )
            return None
        except ClientError as err:
            if error_code(err) != "TransactionCanceledException":
                raise
            codes = _cancellation_codes(err)
            if "TransactionConflict" in codes:
                raise _Retry() from err
            return codes

    def _get(
        self,
        key: dict[str, Any],
        projection: str | None = None,
        names: dict[str, str] | None = None,
    ) -> dict[str, Any] | None:
        args: dict[str, Any] = {"TableName": self.table, "Key": key, "ConsistentRead": True}
        if projection:
            args["ProjectionExpression"] = projection
        if names:
            args["ExpressionAttributeNames"] = names
        return self.client.get_item(**args).get("Item")

    def _batch_get(self, key_list: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for i in range(0, len(key_list), 100):
            request: dict[str, Any] = {
                self.table: {"Keys": key_list[i : i + 100], "ConsistentRead": True}
            }
            for n in range(_RETRIES):
                resp = self.client.batch_get_item(RequestItems=request)
                out.extend(resp.get("Responses", {}).get(self.table, []))
                request = resp.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(min(0.5, 0.01 * 2**n) * random.random())
            else:
                raise ThrottlingException("DynamoDB did not serve every key; try again")
        return out

    def _query(
        self,
        pk: str,
        after: str | None = None,
        max_items: int | None = None,
        projection: str | None = None,
        names: dict[str, str] | None = None,
    ) -> Iterable[dict[str, Any]]:
        """Items of one partition in SK order with SK > after, at most ``max_items``."""
        args: dict[str, Any] = {
            "TableName": self.table,
            "ConsistentRead": True,
            "KeyConditionExpression": "PK = :pk" + (" AND SK > :after" if after else ""),
            "ExpressionAttributeValues": {":pk": s_(pk)},
        }
        if after:
            args["ExpressionAttributeValues"][":after"] = s_(after)
        if projection:
            args["ProjectionExpression"] = projection
        if names:
            args["ExpressionAttributeNames"] = names
        left = max_items
        while left is None or left > 0:
            if left is not None:
                args["Limit"] = left
            resp = self.client.query(**args)
            items = resp.get("Items", [])
            yield from items
            if left is not None:
                left -= len(items)
            last = resp.get("LastEvaluatedKey")
            if not last:
                return
            args["ExclusiveStartKey"] = last

    def _collection_update(
        self, collection: CollectionRecord, faces: int, room_check: bool
    ) -> dict[str, Any]:
        condition = "Incarnation = :inc"
        values: dict[str, Any] = {
            ":inc": s_(collection.incarnation),
            ":n": n_(faces),
            ":one": n_(1),
        }
        if room_check:
            condition += " AND FaceCount <= :room"
            values[":room"] = n_(self.max_faces_per_collection - faces)
        return {
            "Update": {
                "Key": collection_key(collection.collection_id),
                "UpdateExpression": "ADD FaceCount :n, Version :one",
                "ConditionExpression": condition,
                "ExpressionAttributeValues": values,
            }
        }

    def _collection_failed(self, collection: CollectionRecord, faces: int) -> None:
        """The collection update of a transaction failed its condition: find out why."""
        current = self._read_collection(collection.collection_id)
        if current is None or current.incarnation != collection.incarnation:
            raise CollectionGone()
        if current.face_count + faces > self.max_faces_per_collection:
            raise QuotaExceeded()
        raise _Retry()

    # -----------------------------------------------------------------------------------------
    # Collections

    def _insert_collection(self, record: CollectionRecord, tags: dict[str, str]) -> bool:
        item = collection_key(record.collection_id) | {
            "CollectionId": s_(record.collection_id),
            "Incarnation": s_(record.incarnation),
            "Created": n_(record.created),
            "FaceModelVersion": s_(record.face_model_version),
            "FaceCount": n_(0),
            "UserCount": n_(0),
            "Version": n_(0),
            "Tags": {"M": {k: s_(v) for k, v in tags.items()}},
            "TagRev": n_(0),
        }
        directory = {
            "PK": s_(DIRECTORY_PK),
            "SK": s_(record.collection_id),
            "FaceModelVersion": s_(record.face_model_version),
        }
        exists = "attribute_not_exists(PK)"
        codes = self._retrying(
            lambda: self._transact(
                [
                    {"Put": {"Item": item, "ConditionExpression": exists}},
                    {"Put": {"Item": directory, "ConditionExpression": exists}},
                ]
            )
        )
        return codes is None

    def _read_collection(self, collection_id: str) -> CollectionRecord | None:
        item = self._get(
            collection_key(collection_id),
            "CollectionId, Incarnation, Created, FaceModelVersion, FaceCount, UserCount, Version",
        )
        return None if item is None else collection_record(item)

    def _scan_collections(self, after: str | None, limit: int) -> list[CollectionListing]:
        return [
            CollectionListing(item["SK"]["S"], face_model_version(item))
            for item in self._query(DIRECTORY_PK, after, limit)
        ]

    def _retire_collection(self, record: CollectionRecord) -> bool:
        tombstone = {
            "PK": s_(PURGE_PK),
            "SK": s_(record.incarnation),
            "CollectionId": s_(record.collection_id),
            "RetiredAt": n_(round(time.time(), 3)),
        }
        codes = self._retrying(
            lambda: self._transact(
                [
                    {
                        "Delete": {
                            "Key": collection_key(record.collection_id),
                            "ConditionExpression": "Incarnation = :inc",
                            "ExpressionAttributeValues": {":inc": s_(record.incarnation)},
                        }
                    },
                    {"Delete": {"Key": {"PK": s_(DIRECTORY_PK), "SK": s_(record.collection_id)}}},
                    {"Put": {"Item": tombstone}},
                ]
            )
        )
        return codes is None

    def _purge_batch(self, incarnation: str) -> bool:
        for pk in incarnation_partitions(incarnation):
            batch = []
            for item in self._query(pk, max_items=1000, projection="PK, SK"):
                batch.append({"PK": item["PK"], "SK": item["SK"]})
            if batch:
                self._batch_delete(batch)
                return True
        return False

    def _batch_delete(self, key_list: list[dict[str, Any]]) -> None:
        for i in range(0, len(key_list), 25):
            request = {self.table: [{"DeleteRequest": {"Key": k}} for k in key_list[i : i + 25]]}
            for n in range(_RETRIES):
                resp = self.client.batch_write_item(RequestItems=request)
                request = resp.get("UnprocessedItems") or {}
                if not request:
                    break
                time.sleep(min(0.5, 0.01 * 2**n) * random.random())
            else:
                raise ThrottlingException("DynamoDB did not take every delete; try again")

    def _drop_tombstone(self, incarnation: str) -> None:
        self.client.delete_item(
            TableName=self.table, Key={"PK": s_(PURGE_PK), "SK": s_(incarnation)}
        )

    def _tombstones(self) -> Iterable[str]:
        return [item["SK"]["S"] for item in self._query(PURGE_PK, projection="PK, SK")]

    # -----------------------------------------------------------------------------------------
    # Faces: visibility of staged faces

    def _visible(self, incarnation: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Drop staged faces whose image is not committed; show the UserId a committed staged
        user write gave a face it reserves."""
        return self.users.resolve(incarnation, self._committed_images(incarnation, items))

    def _committed_images(
        self, incarnation: str, items: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        images = {it["Pending"]["S"] for it in items if "Pending" in it}
        if not images:
            return items
        committed: dict[str, set[str]] = {}
        for marker in self._batch_get([marker_key(incarnation, img) for img in images]):
            if marker["State"]["S"] == "COMMITTED":
                committed[marker["SK"]["S"]] = set(marker.get("FaceIds", {}).get("SS", []))
        return [
            it
            for it in items
            if "Pending" not in it or it["SK"]["S"] in committed.get(it["Pending"]["S"], ())
        ]

    def _roll_forward(self, incarnation: str, marker: dict[str, Any]) -> None:
        """Finish a committed staged IndexFaces: faces become ordinary, the marker goes."""
        image = marker["SK"]["S"]
        for face_id in marker.get("FaceIds", {}).get("SS", []):
            try:
                self.client.update_item(
                    TableName=self.table,
                    Key=face_key(incarnation, face_id),
                    UpdateExpression="REMOVE Pending",
                    ConditionExpression="Pending = :img",
                    ExpressionAttributeValues={":img": s_(image)},
                )
            except ClientError as err:
                if error_code(err) != "ConditionalCheckFailedException":
                    raise  # else: already rolled forward
        try:
            self.client.delete_item(
                TableName=self.table,
                Key=marker_key(incarnation, image),
                ConditionExpression="#s = :committed",
                ExpressionAttributeNames={"#s": "State"},
                ExpressionAttributeValues={":committed": s_("COMMITTED")},
            )
        except ClientError as err:
            if error_code(err) != "ConditionalCheckFailedException":
                raise

    def _settle_marker(self, incarnation: str, image_id: str) -> bool:
        """True if no staging marker holds the image (any committed one is rolled forward, an
        expired one is abandoned); False while another call is staging it."""
        marker = self._get(marker_key(incarnation, image_id))
        if marker is None:
            return True
        if marker["State"]["S"] == "COMMITTED":
            self._roll_forward(incarnation, marker)
            return True
        if float(marker["LeaseUntil"]["N"]) < time.time():
            try:
                self.client.delete_item(
                    TableName=self.table,
                    Key=marker_key(incarnation, image_id),
                    ConditionExpression="#o = :owner AND #s = :staging",
                    ExpressionAttributeNames={"#o": "Owner", "#s": "State"},
                    ExpressionAttributeValues={
                        ":owner": marker["Owner"],
                        ":staging": s_("STAGING"),
                    },
                )
            except ClientError as err:
                if error_code(err) != "ConditionalCheckFailedException":
                    raise
            return True
        return False

    # -----------------------------------------------------------------------------------------
    # Faces

    def _insert_faces(
        self, collection: CollectionRecord, faces: list[FaceRecord]
    ) -> AddFacesResult:
        inc = collection.incarnation
        image = faces[0].image_id

        def attempt() -> AddFacesResult:
            if not self._settle_marker(inc, image):
                raise _Retry()  # another call is staging this very image: wait for it
            current = self._read_collection(collection.collection_id)
            if current is None or current.incarnation != inc:
                raise CollectionGone()
            stored = {
                f.face_id for f in self._read_faces(current, [f.face_id for f in faces], False)
            }
            new = [f for f in faces if f.face_id not in stored]
            if not new:
                return AddFacesResult(current, [], [])
            if current.face_count + len(new) > self.max_faces_per_collection:
                raise QuotaExceeded()
            if len(new) <= self.fast_path_faces:
                self._commit_fast(current, image, new)
            else:
                self._commit_staged(current, image, new)
            # Other writers may have moved the version too: no version is claimed as ours.
            return AddFacesResult(current, new, [])

        return self._retrying(attempt)

    def _commit_fast(self, current: CollectionRecord, image: str, new: list[FaceRecord]) -> None:
        inc = current.incarnation
        # A staged face left by a crashed attempt (``Pending``, no marker) may be overwritten.
        puts = [
            {
                "Put": {
                    "Item": face_item(inc, f),
                    "ConditionExpression": "attribute_not_exists(PK) OR attribute_exists(Pending)",
                }
            }
            for f in new
        ]
        no_marker = {
            "ConditionCheck": {
                "Key": marker_key(inc, image),
                "ConditionExpression": "attribute_not_exists(PK)",
            }
        }
        codes = self._transact([*puts, self._collection_update(current, len(new), True), no_marker])
        if codes is None:
            return
        if codes[len(new)] == "ConditionalCheckFailed":
            self._collection_failed(current, len(new))
        raise _Retry()  # a face or the marker appeared meanwhile

    def _commit_staged(self, current: CollectionRecord, image: str, new: list[FaceRecord]) -> None:
        inc = current.incarnation
        owner = str(uuid.uuid4())
        lease = time.time() + self.staging_lease_seconds
        try:
            self.client.put_item(
                TableName=self.table,
                Item=marker_key(inc, image)
                | {
                    "State": s_("STAGING"),
                    "Owner": s_(owner),
                    "LeaseUntil": n_(round(lease, 3)),
                },
                ConditionExpression="attribute_not_exists(PK)",
            )
        except ClientError as err:
            if error_code(err) == "ConditionalCheckFailedException":
                raise _Retry() from err
            raise
        try:
            self._stage(current, image, new)
            self._commit_staged_faces(current, image, owner, new)
        except (_Retry, CollectionGone, QuotaExceeded):
            self._release(inc, image, owner)
            raise
        marker = self._get(marker_key(inc, image))
        if marker is not None:  # (else another call has rolled it forward already)
            self._roll_forward(inc, marker)

    def _stage(self, current: CollectionRecord, image: str, new: list[FaceRecord]) -> None:
        inc = current.incarnation
        for i in range(0, len(new), self.max_transaction_actions):
            puts = [
                {
                    "Put": {
                        "Item": face_item(inc, f, pending=image),
                        "ConditionExpression": "attribute_not_exists(PK) OR Pending = :img",
                        "ExpressionAttributeValues": {":img": s_(image)},
                    }
                }
                for f in new[i : i + self.max_transaction_actions]
            ]
            if self._transact(puts) is not None:
                raise _Retry()  # an ordinary face with one of these ids was stored meanwhile

    def _commit_staged_faces(
        self, current: CollectionRecord, image: str, owner: str, new: list[FaceRecord]
    ) -> None:
        commit = {
            "Update": {
                "Key": marker_key(current.incarnation, image),
                "UpdateExpression": "SET #s = :committed, FaceIds = :ids",
                "ConditionExpression": "#o = :owner AND #s = :staging",
                "ExpressionAttributeNames": {"#s": "State", "#o": "Owner"},
                "ExpressionAttributeValues": {
                    ":committed": s_("COMMITTED"),
                    ":staging": s_("STAGING"),
                    ":owner": s_(owner),
                    ":ids": {"SS": [f.face_id for f in new]},
                },
            }
        }
        codes = self._transact([commit, self._collection_update(current, len(new), True)])
        if codes is None:
            return
        if codes[1] == "ConditionalCheckFailed":
            self._collection_failed(current, len(new))
        raise _Retry()  # our lease was taken over

    def _release(self, incarnation: str, image: str, owner: str) -> None:
        try:
            self.client.delete_item(
                TableName=self.table,
                Key=marker_key(incarnation, image),
                ConditionExpression="#o = :owner AND #s = :staging",
                ExpressionAttributeNames={"#o": "Owner", "#s": "State"},
                ExpressionAttributeValues={":owner": s_(owner), ":staging": s_("STAGING")},
            )
        except ClientError as err:
            if error_code(err) != "ConditionalCheckFailedException":
                raise

    def _read_items(self, collection: CollectionRecord, face_ids: list[str]) -> list[dict]:
        items = self._batch_get([face_key(collection.incarnation, f) for f in face_ids])
        return self._visible(collection.incarnation, items)

    def _read_faces(
        self, collection: CollectionRecord, face_ids: list[str], embeddings: bool
    ) -> list[FaceRecord]:
        return [face_record(it, embeddings) for it in self._read_items(collection, face_ids)]

    _LIST_PROJECTION = (
        "PK, SK, ImageId, ExternalImageId, Box, Confidence, UserId, Pending, UserPending"
    )

    def _scan_faces(
        self, collection: CollectionRecord, after: str | None, limit: int
    ) -> list[FaceRecord]:
        inc = collection.incarnation
        out: list[FaceRecord] = []
        start = SHARDS.index(after[0]) if after else 0
        for h in SHARDS[start:]:
            cursor = after if after and after[0] == h else None
            while len(out) < limit:
                want = limit - len(out)
                page = list(self._query(f"F#{inc}#{h}", cursor, want, self._LIST_PROJECTION))
                out.extend(face_record(it, False) for it in self._visible(inc, page))
                if len(page) < want:
                    break  # this shard is exhausted
                cursor = page[-1]["SK"]["S"]
            if len(out) >= limit:
                break
        return out[:limit]

    def _scan_user_faces(
        self, collection: CollectionRecord, user_id: str, after: str | None, limit: int
    ) -> list[FaceRecord]:
        user = self._get(user_key(collection.incarnation, user_id), "FaceIds")
        ids = sorted(user.get("FaceIds", {}).get("SS", [])) if user else []
        ids = [f for f in ids if after is None or f > after]
        return self._faces_by_ids(collection, ids, None, limit, user_id)

    def _remove_faces(
        self, collection: CollectionRecord, face_ids: list[str]
    ) -> tuple[list[str], list[int], CollectionRecord]:
        inc = collection.incarnation
        # Faces of a committed staged image still carry Pending: finish that image first.
        raw = self._batch_get([face_key(inc, f) for f in face_ids])
        for image in {it["Pending"]["S"] for it in raw if "Pending" in it}:
            self._settle_marker(inc, image)
        # Faces a user write is changing: let it finish (or undo an abandoned one) first.
        self._settle_user_writes(inc, raw)
        removed: list[str] = []
        todo = list(face_ids)
        while todo:
            chunk, todo = todo[: self.delete_chunk], todo[self.delete_chunk :]
            removed.extend(
                self._retrying(lambda chunk=chunk: self._delete_chunk(collection, chunk))
            )
        after = self._read_collection(collection.collection_id)
        if after is None or after.incarnation != inc:
            raise CollectionGone()
        return removed, [], after

    def _delete_chunk(self, collection: CollectionRecord, chunk: list[str]) -> list[str]:
        inc = collection.incarnation
        while chunk:
            deletes = [
                {
                    "Delete": {
                        "Key": face_key(inc, f),
                        "ConditionExpression": "attribute_exists(PK) AND "
                        "attribute_not_exists(UserId) AND attribute_not_exists(Pending) AND "
                        "attribute_not_exists(UserPending)",
                    }
                }
                for f in chunk
            ]
            update = self._collection_update(collection, -len(chunk), False)
            codes = self._transact([*deletes, update])
            if codes is None:
                return chunk
            if codes[len(chunk)] == "ConditionalCheckFailed":
                self._collection_failed(collection, 0)
            failed = [
                f for f, c in zip(chunk, codes, strict=False) if c == "ConditionalCheckFailed"
            ]
            # A face a user write reserved meanwhile: wait for that write, then try it again.
            if self._settle_user_writes(inc, self._batch_get([face_key(inc, f) for f in failed])):
                raise _Retry()
            # Faces deleted or associated meanwhile: retry without them.
            chunk = [f for f, c in zip(chunk, codes, strict=False) if c != "ConditionalCheckFailed"]
        return []

    def _settle_user_writes(self, inc: str, raw: list[dict[str, Any]]) -> bool:
        """Settle the user writes that reserve some of these faces (waiting for live ones);
        whether there was any."""
        if not any("UserPending" in it for it in raw):
            return False

        def attempt() -> None:
            if not self.users.settle_items(inc, raw):
                raise _Retry()

        self._retrying(attempt)
        return True

    def _load_face_table(
        self, collection: CollectionRecord
    ) -> tuple[FaceTable, CollectionRecord] | None:
        before = self._read_collection(collection.collection_id)
        for _ in range(3):
            if before is None or before.incarnation != collection.incarnation:
                return None
            table = self._load_once(before.incarnation)
            after = self._read_collection(collection.collection_id)
            if after == before:
                return table, after
            before = after
        # Writes kept landing while loading: the table may straddle versions, so report the
        # version it was started at; the next search sees a newer version and reloads.
        if before is None or before.incarnation != collection.incarnation:
            return None
        return table, before

    def _load_once(self, incarnation: str) -> FaceTable:
        projection = (
            "PK, SK, ImageId, ExternalImageId, Box, Confidence, UserId, Embedding, Pending, "
            "UserPending"
        )

        def shard(h: str) -> list[dict[str, Any]]:
            return self._visible(
                incarnation, list(self._query(f"F#{incarnation}#{h}", projection=projection))
            )

        with ThreadPoolExecutor(max_workers=len(SHARDS)) as pool:
            items = [it for part in pool.map(shard, SHARDS) for it in part]
        return face_table(items)

    # -----------------------------------------------------------------------------------------
    # Users (rekface.stores.dynamodb_users)

    def _write_user(
        self,
        collection: CollectionRecord,
        user_id: str,
        face_ids: list[str],
        embeddings: bool,
        token: RequestToken | None,
        plan: Callable[[UserSnapshot], UserPlan],
    ) -> UserWrite:
        return self.users.write_user(collection, user_id, face_ids, embeddings, token, plan)

    def _read_user(self, collection: CollectionRecord, user_id: str) -> UserRecord | None:
        return self.users.read_user(collection, user_id)

    def _read_users(self, collection: CollectionRecord, user_ids: list[str]) -> list[UserRecord]:
        return self.users.read_users(collection, user_ids)

    def _scan_users(
        self, collection: CollectionRecord, after: str | None, limit: int
    ) -> list[UserRecord]:
        return self.users.scan_users(collection, after, limit)

    # -----------------------------------------------------------------------------------------
    # Tags

    def _update_tags(
        self, record: CollectionRecord, put: dict[str, str], remove: list[str], max_tags: int
    ) -> None:
        def attempt() -> None:
            item = self._get(collection_key(record.collection_id), "Incarnation, Tags, TagRev")
            if item is None or item["Incarnation"]["S"] != record.incarnation:
                raise CollectionGone()
            tags = {k: v["S"] for k, v in item.get("Tags", {}).get("M", {}).items()}
            tags.update(put)
            for key in remove:
                tags.pop(key, None)
            if len(tags) > max_tags:
                raise TooManyTags()
            try:
                self.client.update_item(
                    TableName=self.table,
                    Key=collection_key(record.collection_id),
                    UpdateExpression="SET Tags = :tags, TagRev = :next",
                    ConditionExpression="Incarnation = :inc AND TagRev = :rev",
                    ExpressionAttributeValues={
                        ":tags": {"M": {k: s_(v) for k, v in tags.items()}},
                        ":next": n_(int(item["TagRev"]["N"]) + 1),
                        ":rev": item["TagRev"],
                        ":inc": s_(record.incarnation),
                    },
                )
            except ClientError as err:
                if error_code(err) == "ConditionalCheckFailedException":
                    raise _Retry() from err
                raise

        self._retrying(attempt)

    def _read_tags(self, record: CollectionRecord) -> dict[str, str] | None:
        item = self._get(collection_key(record.collection_id), "Incarnation, Tags")
        if item is None or item["Incarnation"]["S"] != record.incarnation:
            return None
        return {k: v["S"] for k, v in item.get("Tags", {}).get("M", {}).items()}
