"""Lambda entry point of TagResource (API Gateway: POST /tag-resource)."""

from rekface.adapters.lambda_api import make_handler

handler = make_handler("TagResource")
