"""Lambda entry point of DetectFaces (API Gateway: POST /detect-faces)."""

from rekface.adapters.lambda_api import make_handler

handler = make_handler("DetectFaces")
