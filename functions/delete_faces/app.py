"""Lambda entry point of DeleteFaces (API Gateway: POST /delete-faces)."""

from rekface.adapters.lambda_api import make_handler

handler = make_handler("DeleteFaces")
