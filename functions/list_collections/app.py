"""Lambda entry point of ListCollections (API Gateway: POST /list-collections)."""

from rekface.adapters.lambda_api import make_handler

handler = make_handler("ListCollections")
