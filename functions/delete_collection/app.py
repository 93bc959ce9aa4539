"""Lambda entry point of DeleteCollection (API Gateway: POST /delete-collection)."""

from rekface.adapters.lambda_api import make_handler

handler = make_handler("DeleteCollection")
