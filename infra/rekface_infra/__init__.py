"""The rekface CDK app: a thin stack composed of one construct per capability (storage, layers,
functions, api, ingest, monitoring). Functions, routes and IAM come from the operation table
``rekface.spec.operations.OPERATIONS``."""
