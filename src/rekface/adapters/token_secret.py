"""The pagination-token secret of a Lambda function.

The CDK stack generates the secret at deploy time (Secrets Manager) and gives its ARN,
``REKFACE_TOKEN_SECRET_ARN``, and the right to read it, only to the functions whose operation
pages (an input with ``NextToken`` in the botocore model: ListCollections, ListFaces,
ListUsers). They read it once per cold start, when the process context is built on the first
invocation. The other functions issue and accept no token, so they sign with a random key of
their own and never call Secrets Manager.

An explicit ``REKFACE_TOKEN_SECRET`` (a local run, `sam local` with env vars) wins over the ARN.
"""

from __future__ import annotations

import functools
import os
import secrets
from collections.abc import Mapping
from typing import Any

from rekface.errors import InternalServerError

SECRET_ARN_ENV = "REKFACE_TOKEN_SECRET_ARN"


@functools.cache
def paging_operations() -> frozenset[str]:
    """The operations that issue and accept pagination tokens, from the botocore model."""
    from rekface.spec.model import input_shape
    from rekface.spec.operations import OPERATIONS

    return frozenset(op.name for op in OPERATIONS if "NextToken" in input_shape(op.name).members)


def pages(operation: str | None) -> bool:
    """``None``: a function serving every operation (the in-process wire handler)."""
    return operation is None or operation in paging_operations()


def read_secret(arn: str, client: Any = None) -> str:
    """The SecretString of ``arn`` (one GetSecretValue call)."""
    if client is None:
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "secretsmanager", config=Config(retries={"mode": "standard", "max_attempts": 3})
        )
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        value = client.get_secret_value(SecretId=arn).get("SecretString") or ""
    except (BotoCoreError, ClientError) as exc:
        # A missing grant or secret is a deployment fault: fail the request (and the next cold
        # start tries again) rather than sign tokens with a key no other instance knows.
        raise InternalServerError("The pagination token secret could not be read") from exc
    if not value:
        raise InternalServerError("The pagination token secret is empty")
    return value


def lambda_token_secret(
    explicit: str, operation: str | None, env: Mapping[str, str] | None = None, client: Any = None
) -> str:
    """The secret this function signs tokens with (``explicit``: REKFACE_TOKEN_SECRET)."""
    if explicit:
        return explicit
    arn = (os.environ if env is None else env).get(SECRET_ARN_ENV) or ""
    if arn and pages(operation):
        return read_secret(arn, client)
    # No token is issued or accepted here: a random key makes any token presented invalid.
    return secrets.token_hex(32)
