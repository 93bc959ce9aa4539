"""Build the app: feature flags, the stack from context, cdk-nag. Used by app.py and the tests."""

from __future__ import annotations

import os
from typing import Any

from aws_cdk import App, Environment

from rekface_infra.config import StackConfig
from rekface_infra.nag import apply as apply_nag
from rekface_infra.stack import RekfaceStack

# Feature flags live here, not only in cdk.json, so that `python app.py` and the tests (which do
# not read cdk.json) synthesize exactly what `cdk deploy` does.
FEATURE_FLAGS: dict[str, Any] = {
    "@aws-cdk/aws-iam:minimizePolicies": True,
    "@aws-cdk/aws-lambda:recognizeLayerVersion": True,
    "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": True,
    "@aws-cdk/core:checkSecretUsage": True,
}


def new_app(outdir: str | None = None, context: dict[str, Any] | None = None) -> App:
    return App(outdir=outdir, context={**FEATURE_FLAGS, **(context or {})})


def build(app: App, config: StackConfig | None = None, stack_id: str | None = None) -> RekfaceStack:
    """The stack from the app's context (or an explicit config)."""
    config = config or StackConfig.from_context(app.node.try_get_context)
    stack = RekfaceStack(
        app,
        stack_id or app.node.try_get_context("stack_name") or "Rekface",
        config=config,
        description="rekface: the Amazon Rekognition face API, self-hosted",
        env=Environment(
            account=os.environ.get("CDK_DEFAULT_ACCOUNT"),
            region=os.environ.get("CDK_DEFAULT_REGION"),
        ),
    )
    return stack


def synth(app: App) -> None:
    """cdk-nag on everything in the app, then synthesize (a finding fails the synth)."""
    apply_nag(app)
    app.synth()
