"""The AWS side of a `sam local` run (tests/sam) and of benchmarks/cold_start.py, on moto's
server: the table, the S3 flows' idempotency table, the pagination token secret and the images
bucket that infra/sam-env.json and events/ name, with real photos from ../shared/faces uploaded
at run time (never copied into the repository)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from rekface.stores.dynamodb_items import create_table

ENDPOINT = "http://127.0.0.1:5000"
REGION = "us-east-1"
TABLE = "rekface"  # infra/sam-env.json REKFACE_TABLE_NAME
IDEMPOTENCY_TABLE = "rekface-idempotency"  # infra/sam-env.json REKFACE_IDEMPOTENCY_TABLE
TOKEN_SECRET = "rekface-token-secret"  # infra/sam-env.json REKFACE_TOKEN_SECRET_ARN (a name)
BUCKET = "rekface-samples"  # the bucket of events/*.json
# The objects events/*.json name -> the photo of ../shared/faces put there. face-1 and face-2 are
# the same person; the S3-flow events' keys get photos of that person too.
PHOTOS = {
    "photos/face-1.jpg": "identities/Paul_Bremer/1.jpg",
    "photos/face-2.jpg": "identities/Paul_Bremer/2.jpg",
    "photos/other-person.jpg": "identities/Jennifer_Aniston/1.jpg",
}


@dataclass(frozen=True)
class LocalAws:
    endpoint: str = ENDPOINT
    region: str = REGION

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def seed(self, faces_dir: Path, extra_keys: dict[str, str] | None = None) -> None:
        """Create what the template's functions use, idempotently (moto keeps state)."""
        ddb = self.client("dynamodb")
        existing = set(ddb.list_tables()["TableNames"])
        if TABLE not in existing:
            create_table(ddb, TABLE)
        if IDEMPOTENCY_TABLE not in existing:
            # Powertools' DynamoDBPersistenceLayer default key: "id" (string).
            ddb.create_table(
                TableName=IDEMPOTENCY_TABLE,
                KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
        sm = self.client("secretsmanager")
        names = {s["Name"] for s in sm.list_secrets().get("SecretList", [])}
        if TOKEN_SECRET not in names:
            sm.create_secret(Name=TOKEN_SECRET, SecretString="local-sam-token-secret-" + "x" * 40)
        s3 = self.client("s3")
        if BUCKET not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
            s3.create_bucket(Bucket=BUCKET)
        for key, rel in {**PHOTOS, **(extra_keys or {})}.items():
            s3.put_object(Bucket=BUCKET, Key=key, Body=(faces_dir / rel).read_bytes())
