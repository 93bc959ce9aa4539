"""The rekface CDK app: a thin stack composed of one construct per capability (storage, layers,
functions, api, ingest, monitoring). Functions, routes and IAM come from the operation table
``rekface.spec.operations.OPERATIONS``."""

import os

# The jsii runtime prints a banner on Node 20 (end of life for jsii since 2026-10); synth works.
# Set before aws_cdk starts its Node process, whichever module of the app is imported first.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
