"""Lambda entry point of CompareFaces (API Gateway: POST /compare-faces)."""

from rekface.adapters.lambda_api import make_handler

handler = make_handler("CompareFaces")
