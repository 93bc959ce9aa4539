"""A live `rekface serve` in a thread of the test process, and a real boto3 client for it."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from rekface.adapters.server import RekfaceServer, create_server, serve_in_thread
from rekface.operations.context import Context


def start(ctx: Context, **options: Any) -> tuple[RekfaceServer, Any]:
    """Serve ``ctx`` on a free loopback port; the caller shuts the server down."""
    server = create_server(ctx, "127.0.0.1", 0, **options)
    serve_in_thread(server)
    host, port = server.server_address[:2]
    return server, client_for(f"http://{host}:{port}")


def client_for(url: str) -> Any:
    return boto3.client(
        "rekognition",
        endpoint_url=url,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}),
    )


def stop(server: RekfaceServer) -> None:
    server.shutdown(grace=5)
    server.server_close()


def error_code(exc: pytest.ExceptionInfo) -> str:
    return exc.value.response["Error"]["Code"]


def assert_client_errors(cases: list[tuple[Any, str]]) -> None:
    """Each call raises the service's error ``code`` with HTTP 400."""
    for call, code in cases:
        with pytest.raises(ClientError) as exc:
            call()
        assert error_code(exc) == code
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
