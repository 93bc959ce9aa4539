"""Lambda entry point of UntagResource (API Gateway: POST /untag-resource)."""

from rekface.adapters.lambda_api import make_handler

handler = make_handler("UntagResource")
