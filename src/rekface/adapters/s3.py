"""Images from S3 (``Image.S3Object``), read with one boto3 client per process.

The client is created on first use with the standard AWS configuration chain, so
``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``, profiles and the Lambda role all apply.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from rekface.errors import ImageTooLargeException, InvalidS3ObjectException

_client: Any = None
_client_lock = threading.Lock()
_log = logging.getLogger(__name__)

# What Rekognition answers for an object it cannot read, whatever the reason: a missing key, bucket
# or version and a forbidden one get the same text, so a caller cannot probe what exists. The
# reason S3 gave goes to the server's log only.
UNREADABLE = (
    "Unable to get object metadata from S3. Check object key, region and/or access permissions."
)


def s3_client() -> Any:
    global _client
    if _client is None:
        with _client_lock:
            if _client is None:
                import boto3

                _client = boto3.client("s3")
    return _client


class S3ImageFetcher:
    def __init__(self, client: Any = None) -> None:
        self._client = client  # None: the process-wide client, created on first use

    @property
    def client(self) -> Any:
        return self._client if self._client is not None else s3_client()

    def fetch(self, bucket: str, name: str, version: str | None, max_bytes: int) -> bytes:
        args = {"Bucket": bucket, "Key": name}
        if version:
            args["VersionId"] = version
        try:
            obj = self.client.get_object(**args)
            size = int(obj.get("ContentLength", 0))
            if size > max_bytes:
                obj["Body"].close()
                raise ImageTooLargeException(
                    f"S3 object s3://{bucket}/{name[:300]} is {size} bytes: "
                    f"the maximum is {max_bytes}"
                )
            data = obj["Body"].read(max_bytes + 1)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "Error")
            _log.info("S3Object s3://%s/%s not read: %s", bucket, name[:300], code)
            raise InvalidS3ObjectException(UNREADABLE) from exc
        except BotoCoreError as exc:
            _log.info("S3Object s3://%s/%s not read: %s", bucket, name[:300], exc)
            raise InvalidS3ObjectException(UNREADABLE) from exc
        if len(data) > max_bytes:
            raise ImageTooLargeException(
                f"S3 object s3://{bucket}/{name[:300]} is over the maximum of {max_bytes} bytes"
            )
        return data
