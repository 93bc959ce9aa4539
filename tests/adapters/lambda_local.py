"""Run the Lambda entry points of functions/ in process, as `sam local invoke` would run them in
a container: load functions/<name>/app.py, call ``handler(event, context)``.

``InProcessLambda`` stands in for the Lambda service's synchronous Invoke where the POST / router
calls an operation's function: same JSON payload in and out, a crash reported as FunctionError.
"""

from __future__ import annotations

import importlib.util
import json
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


@dataclass
class LambdaContext:
    function_name: str = "rekface-test"
    memory_limit_in_mb: int = 1769
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:rekface-test"
    aws_request_id: str = "52fdfc07-2182-154f-163f-5f0f9a621d72"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


def load_handler(function: str):
    spec = importlib.util.spec_from_file_location(
        f"fn_{function}", REPO / "functions" / function / "app.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handler


def event(name: str) -> dict[str, Any]:
    return json.loads((REPO / "events" / f"{name}.json").read_text())


class InProcessLambda:
    """``invoke(function_name, payload)`` where function names are the functions/ folder names."""

    def __init__(self) -> None:
        self.handlers: dict[str, Any] = {}
        self.calls: list[str] = []

    def invoke(self, function_name: str, payload: bytes) -> tuple[bytes, str | None]:
        self.calls.append(function_name)
        if function_name not in self.handlers:
            self.handlers[function_name] = load_handler(function_name)
        try:
            out = self.handlers[function_name](json.loads(payload), LambdaContext())
        except Exception as exc:  # what Lambda reports for an unhandled error
            body = {
                "errorMessage": str(exc),
                "errorType": type(exc).__name__,
                "stackTrace": traceback.format_exc().splitlines(),
            }
            return json.dumps(body).encode(), "Unhandled"
        return json.dumps(out).encode(), None
