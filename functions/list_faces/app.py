"""Lambda entry point of ListFaces (API Gateway: POST /list-faces)."""

from rekface.adapters.lambda_api import make_handler

handler = make_handler("ListFaces")
