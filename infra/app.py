"""The rekface CDK app: ``cdk deploy`` (or ``python app.py`` to synthesize offline into cdk.out).

Context (``-c name=value``): see rekface_infra/config.py (arch, auth, reserved_concurrency,
deletion_protection, throttle_rate, ...). The layers come from ``make layers``.

Every synth writes ``aws:asset:path`` metadata (context ``aws:cdk:enable-asset-metadata``): the SAM
CLI finds a function's code and layers through it (without it, ``sam local invoke X`` answers
"Function X not found in template").

``make synth-local`` (context ``sam_local=true``, written to ``cdk.out/sam-local``) is the variant
for ``sam local``: SAM's ``--env-vars`` only overrides variables the template declares, so this
variant declares the ones a local run needs (``LOCAL_ENVIRONMENT``) with their local defaults.
It is never deployed.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # rekface_infra, without installing it

from aws_cdk import aws_lambda as lambda_  # noqa: E402
from constructs import Construct  # noqa: E402
from rekface_infra.application import build, new_app, synth  # noqa: E402

ASSET_METADATA = {"aws:cdk:enable-asset-metadata": True}
LOCAL_CONTEXT = "sam_local"
# Declared on every function of the local variant. AWS_ENDPOINT_URL: botocore's endpoint for
# every service (moto's server: DynamoDB, S3, Secrets Manager); traces off (no X-Ray daemon).
LOCAL_ENVIRONMENT = {
    "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
    "POWERTOOLS_TRACE_DISABLED": "true",
}
# The POST / router's Lambda client: `sam local start-lambda` (its default port).
LOCAL_ROUTER_ENVIRONMENT = {"AWS_ENDPOINT_URL_LAMBDA": "http://127.0.0.1:3001"}
ROUTER_ID = "WireProtocol"


def is_local(context_json: str | None) -> bool:
    """``sam_local`` in the context the cdk CLI (or ``make synth-local``) passes as JSON."""
    value = json.loads(context_json or "{}").get(LOCAL_CONTEXT)
    return str(value or "").lower() in ("true", "1", "yes")


def declare_local_environment(app: Construct) -> int:
    """Add the local run's variables to every function of the app; returns how many."""
    functions = [c for c in app.node.find_all() if isinstance(c, lambda_.Function)]
    for fn in functions:
        env = dict(LOCAL_ENVIRONMENT)
        if fn.node.id == ROUTER_ID:
            env.update(LOCAL_ROUTER_ENVIRONMENT)
        for name, value in env.items():
            fn.add_environment(name, value)
    return len(functions)


def main() -> None:
    # The cdk CLI passes CDK_OUTDIR, and its -c context in CDK_CONTEXT_JSON (which App reads too).
    local = is_local(os.environ.get("CDK_CONTEXT_JSON"))
    default_out = HERE / "cdk.out" / "sam-local" if local else HERE / "cdk.out"
    app = new_app(outdir=os.environ.get("CDK_OUTDIR") or str(default_out), context=ASSET_METADATA)
    build(app)
    if local:
        declare_local_environment(app)
    synth(app)


if __name__ == "__main__":
    main()
