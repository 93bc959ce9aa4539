"""Lambda entry point of IndexFaces (API Gateway: POST /index-faces)."""

from rekface.adapters.lambda_api import make_handler

handler = make_handler("IndexFaces")
