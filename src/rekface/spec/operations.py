"""The 21 operations rekface serves, with what each needs from its environment.

This table drives the dispatcher, the Lambda functions, the REST routes and the IAM policies of the
CDK stack, so that adding an operation is one line here plus its module in ``rekface.operations``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from rekface.errors import UnknownOperationException


class Access(Enum):
    """What an operation does to the store (drives least-privilege IAM)."""

    NONE = "none"  # stateless: DetectFaces, CompareFaces
    READ = "read"
    WRITE = "write"


@dataclass(frozen=True)
class OperationInfo:
    name: str  # the API name, as in X-Amz-Target "RekognitionService.<name>"
    access: Access
    reads_images: bool  # takes an Image (Bytes or S3Object): needs the engine and s3:GetObject

    @property
    def snake(self) -> str:
        """detect_faces: module and Lambda function folder name."""
        return re.sub(r"(?<!^)(?=[A-Z])", "_", self.name).lower()

    @property
    def route(self) -> str:
        """/detect-faces: the per-operation REST route."""
        return "/" + self.snake.replace("_", "-")


OPERATIONS: tuple[OperationInfo, ...] = (
    OperationInfo("DetectFaces", Access.NONE, True),
    OperationInfo("CompareFaces", Access.NONE, True),
    OperationInfo("CreateCollection", Access.WRITE, False),
    OperationInfo("DescribeCollection", Access.READ, False),
    OperationInfo("ListCollections", Access.READ, False),
    OperationInfo("DeleteCollection", Access.WRITE, False),
    OperationInfo("IndexFaces", Access.WRITE, True),
    OperationInfo("ListFaces", Access.READ, False),
    OperationInfo("DeleteFaces", Access.WRITE, False),
    OperationInfo("SearchFaces", Access.READ, False),
    OperationInfo("SearchFacesByImage", Access.READ, True),
    OperationInfo("CreateUser", Access.WRITE, False),
    OperationInfo("DeleteUser", Access.WRITE, False),
    OperationInfo("ListUsers", Access.READ, False),
    OperationInfo("AssociateFaces", Access.WRITE, False),
    OperationInfo("DisassociateFaces", Access.WRITE, False),
    OperationInfo("SearchUsers", Access.READ, False),
    OperationInfo("SearchUsersByImage", Access.READ, True),
    OperationInfo("TagResource", Access.WRITE, False),
    OperationInfo("UntagResource", Access.WRITE, False),
    OperationInfo("ListTagsForResource", Access.READ, False),
)

BY_NAME: dict[str, OperationInfo] = {op.name: op for op in OPERATIONS}
TARGET_PREFIX = "RekognitionService."


def operation_from_target(target: str | None) -> str:
    """``RekognitionService.DetectFaces`` -> ``DetectFaces``.

    Here rather than in the dispatcher so that the Lambda router of ``POST /`` can route without
    importing the operations (and with them numpy and onnxruntime)."""
    if not target:
        raise UnknownOperationException("Missing X-Amz-Target header")
    prefix, _, name = target.partition(".")
    if prefix + "." != TARGET_PREFIX or name not in BY_NAME:
        raise UnknownOperationException(f"Unknown operation: {target}")
    return name
