"""Lambda entry point of CreateCollection (API Gateway: POST /create-collection)."""

from rekface.adapters.lambda_api import make_handler

handler = make_handler("CreateCollection")
