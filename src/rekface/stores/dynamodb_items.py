"""The DynamoDB table of ``rekface.stores.dynamodb``: its definition, its keys, and records <->
items (embeddings and boxes as little-endian float32 binary: 4 x dims + 16 bytes a face, 512 + 16
for the built-in pack's 128-d embeddings)."""

from __future__ import annotations

from typing import Any

import numpy as np
from botocore.exceptions import ClientError

from rekface.settings import BUILTIN_FACE_MODEL_VERSION
from rekface.stores.records import (
    ID_DTYPE,
    CollectionRecord,
    FaceRecord,
    FaceTable,
    id_bytes,
)

SHARDS = "0123456789abcdef"


class Retry(Exception):
    """A write lost a race; read again and retry (``DynamoDBStore._retrying``)."""


def face_model_version(item: dict[str, Any]) -> str:
    """A collection's (or directory entry's) recognizer pack version; items written before packs
    all have "1.0", and one without the attribute is read as the built-in pack's."""
    return item.get("FaceModelVersion", {}).get("S", BUILTIN_FACE_MODEL_VERSION)


DIRECTORY_PK = "DIR"
PURGE_PK = "PURGE"

# The table as CDK and tests create it.
TABLE_DEFINITION: dict[str, Any] = {
    "AttributeDefinitions": [
        {"AttributeName": "PK", "AttributeType": "S"},
        {"AttributeName": "SK", "AttributeType": "S"},
    ],
    "KeySchema": [
        {"AttributeName": "PK", "KeyType": "HASH"},
        {"AttributeName": "SK", "KeyType": "RANGE"},
    ],
    "BillingMode": "PAY_PER_REQUEST",
}
TTL_ATTRIBUTE = "ExpiresAt"


def create_table(client: Any, table_name: str) -> None:
    """Create the table (tests, local DynamoDB); the AWS stack creates it with CDK."""
    client.create_table(TableName=table_name, **TABLE_DEFINITION)
    client.get_waiter("table_exists").wait(TableName=table_name)
    client.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
    )


# ---------------------------------------------------------------------------------------------
# Keys and attribute values


def s_(value: str) -> dict[str, str]:
    return {"S": value}


def n_(value: float | int) -> dict[str, str]:
    return {"N": repr(value) if isinstance(value, float) else str(value)}


def collection_key(collection_id: str) -> dict[str, Any]:
    return {"PK": s_(f"C#{collection_id}"), "SK": s_("C")}


def face_pk(incarnation: str, face_id: str) -> str:
    return f"F#{incarnation}#{face_id[0]}"


def face_key(incarnation: str, face_id: str) -> dict[str, Any]:
    return {"PK": s_(face_pk(incarnation, face_id)), "SK": s_(face_id)}


def user_key(incarnation: str, user_id: str) -> dict[str, Any]:
    return {"PK": s_(f"U#{incarnation}"), "SK": s_(user_id)}


def marker_key(incarnation: str, image_id: str) -> dict[str, Any]:
    return {"PK": s_(f"S#{incarnation}"), "SK": s_(image_id)}


def incarnation_partitions(incarnation: str) -> list[str]:
    """Every partition key that holds items of one collection incarnation."""
    return [f"F#{incarnation}#{h}" for h in SHARDS] + [
        f"U#{incarnation}",
        f"T#{incarnation}",
        f"S#{incarnation}",
    ]


def face_item(incarnation: str, face: FaceRecord, pending: str | None = None) -> dict[str, Any]:
    assert face.embedding is not None
    item = face_key(incarnation, face.face_id)
    item["ImageId"] = s_(face.image_id)
    item["Box"] = {"B": np.asarray(face.box, "<f4").tobytes()}
    item["Confidence"] = n_(float(face.confidence))
    item["Embedding"] = {"B": np.asarray(face.embedding, "<f4").tobytes()}
    if face.external_image_id is not None:
        item["ExternalImageId"] = s_(face.external_image_id)
    if face.user_id is not None:
        item["UserId"] = s_(face.user_id)
    if pending is not None:
        item["Pending"] = s_(pending)
    return item


def face_record(item: dict[str, Any], embeddings: bool) -> FaceRecord:
    w, h, left, top = (float(v) for v in np.frombuffer(item["Box"]["B"], "<f4"))
    return FaceRecord(
        face_id=item["SK"]["S"],
        image_id=item["ImageId"]["S"],
        external_image_id=item.get("ExternalImageId", {}).get("S"),
        box=(w, h, left, top),
        confidence=float(item["Confidence"]["N"]),
        user_id=item.get("UserId", {}).get("S"),
        embedding=np.frombuffer(item["Embedding"]["B"], "<f4").copy() if embeddings else None,
    )


def collection_record(item: dict[str, Any]) -> CollectionRecord:
    return CollectionRecord(
        collection_id=item["CollectionId"]["S"],
        incarnation=item["Incarnation"]["S"],
        created=float(item["Created"]["N"]),
        face_model_version=face_model_version(item),
        face_count=int(item["FaceCount"]["N"]),
        user_count=int(item["UserCount"]["N"]),
        version=int(item["Version"]["N"]),
    )


def face_table(items: list[dict[str, Any]]) -> FaceTable:
    n = len(items)
    if n == 0:
        return FaceTable.empty()
    interned: dict[str, str] = {}

    def shared(item: dict[str, Any], name: str) -> str | None:
        value = item.get(name, {}).get("S")
        return None if value is None else interned.setdefault(value, value)

    return FaceTable(
        face_ids=np.array([id_bytes(it["SK"]["S"]) for it in items], ID_DTYPE),
        image_ids=np.array([id_bytes(it["ImageId"]["S"]) for it in items], ID_DTYPE),
        external_ids=np.array([shared(it, "ExternalImageId") for it in items], object),
        user_ids=np.array([shared(it, "UserId") for it in items], object),
        boxes=np.frombuffer(b"".join(it["Box"]["B"] for it in items), "<f4").reshape(n, 4).copy(),
        confidences=np.array([float(it["Confidence"]["N"]) for it in items], np.float32),
        embeddings=np.frombuffer(b"".join(it["Embedding"]["B"] for it in items), "<f4")
        .reshape(n, -1)  # every face of a collection has its pack's dims
        .copy(),
    )


def error_code(err: ClientError) -> str:
    return err.response.get("Error", {}).get("Code", "")
