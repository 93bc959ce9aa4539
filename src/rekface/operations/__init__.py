"""The operation layer: one function per Rekognition operation, ``(Context, request) -> response``.

``run`` is the single entry point every adapter uses: it validates the request against the
botocore model (plus the service's own limits), then calls the operation. Operations take and
return plain dicts shaped like the API's JSON and raise only ``rekface.errors`` exceptions.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from rekface.errors import UnknownOperationException
from rekface.operations.context import Context
from rekface.spec.operations import BY_NAME, OPERATIONS
from rekface.spec.validate import validate_request

Handler = Callable[[Context, dict[str, Any]], dict[str, Any]]


class _Handlers(Mapping[str, Handler]):
    """Operation name -> its function in ``rekface.operations.<snake_name>``, imported on first
    use: a process that only lists collections (a data Lambda function) never imports the image
    operations and so the engine (onnxruntime, Pillow)."""

    def __init__(self) -> None:
        self._modules = {op.name: f"{__name__}.{op.snake}" for op in OPERATIONS}

    def __getitem__(self, operation: str) -> Handler:
        module_name = self._modules[operation]  # KeyError: not an operation
        module = importlib.import_module(module_name)
        return getattr(module, module_name.rpartition(".")[2])

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __len__(self) -> int:
        return len(self._modules)

    def __contains__(self, operation: object) -> bool:
        return operation in self._modules


HANDLERS: Mapping[str, Handler] = _Handlers()


def load_all() -> None:
    """Import every operation now (a server: no import at request time)."""
    for operation in HANDLERS:
        HANDLERS[operation]


def run(ctx: Context, operation: str, request: dict[str, Any]) -> dict[str, Any]:
    if operation not in BY_NAME:
        raise UnknownOperationException(f"Unknown operation: {operation}")
    handler = HANDLERS.get(operation)
    if handler is None:
        raise UnknownOperationException(
            f"{operation} is a Rekognition operation that this version of rekface "
            "does not serve yet"
        )
    validate_request(operation, request)
    return handler(ctx, without_nulls(request))


def without_nulls(value: Any) -> Any:
    """The request with its null members dropped: JSON ``null`` means "not given" (the validator
    reads it so, and the operations then apply their defaults)."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    return value
