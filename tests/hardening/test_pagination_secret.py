"""Pagination tokens are signed with a secret nobody else knows (issue 18: the default was the
public string `rekface-local`, so tokens could be forged offline and one server's tokens were
good on another): REKFACE_TOKEN_SECRET, else a random secret kept in <data-dir>/token-secret."""

from __future__ import annotations

import stat

import pytest
from botocore.exceptions import ClientError
from hardening_wire import ADMIN, client

from rekface.stores.keys import TokenCodec, pack_collection_id

OLD_PUBLIC_SECRET = "rekface-local"


def forged_list_collections_token(secret: str, after: str) -> str:
    """What anyone who knows ``secret`` can write offline: a ListCollections token whose cursor
    is the collection ``after``."""
    return TokenCodec(secret).encode("ListCollections", b"", pack_collection_id(after))


def seeded(server, *collection_ids: str):
    rekognition = client(server.url, ADMIN)  # anonymous loopback servers accept any signature
    for collection_id in collection_ids:
        rekognition.create_collection(CollectionId=collection_id)
    return rekognition


def refused_token(rekognition, token: str) -> None:
    with pytest.raises(ClientError) as exc:
        rekognition.list_collections(NextToken=token, MaxResults=1)
    assert exc.value.response["Error"]["Code"] == "InvalidPaginationTokenException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_a_token_forged_with_the_old_public_secret_is_refused(serve):
    rekognition = seeded(serve(), "a-first", "b-second", "c-third")
    refused_token(rekognition, forged_list_collections_token(OLD_PUBLIC_SECRET, "a-first"))


def test_tokens_of_one_server_are_refused_by_another(serve):
    a = seeded(serve(), "a-first", "b-second", "c-third")
    b = seeded(serve(), "a-first", "b-second", "c-third")
    token = a.list_collections(MaxResults=1)["NextToken"]
    assert a.list_collections(NextToken=token, MaxResults=1)["CollectionIds"] == ["b-second"]
    refused_token(b, token)


def test_the_generated_secret_is_private_and_survives_a_restart(serve, tmp_path):
    data_dir = tmp_path / "data"
    first = serve(data_dir=data_dir)
    rekognition = seeded(first, "a-first", "b-second")
    secret_file = data_dir / "token-secret"
    assert secret_file.is_file()
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    secret = secret_file.read_bytes()
    assert len(secret.strip()) >= 16 and OLD_PUBLIC_SECRET.encode() not in secret
    token = rekognition.list_collections(MaxResults=1)["NextToken"]
    first.stop()
    again = client(serve(data_dir=data_dir).url, ADMIN)
    assert again.list_collections(NextToken=token, MaxResults=1)["CollectionIds"] == ["b-second"]
    assert secret_file.read_bytes() == secret


def test_rekface_token_secret_overrides(serve, tmp_path):
    env = {"REKFACE_TOKEN_SECRET": "a-secret-shared-by-two-replicas"}
    a = seeded(serve(env=env), "a-first", "b-second", "c-third")
    b = seeded(serve(env=env), "a-first", "b-second", "c-third")
    token = a.list_collections(MaxResults=1)["NextToken"]
    assert b.list_collections(NextToken=token, MaxResults=1)["CollectionIds"] == ["b-second"]
    forged = forged_list_collections_token(env["REKFACE_TOKEN_SECRET"], "b-second")
    assert b.list_collections(NextToken=forged, MaxResults=1)["CollectionIds"] == ["c-third"]
    refused_token(b, forged_list_collections_token(OLD_PUBLIC_SECRET, "b-second"))
