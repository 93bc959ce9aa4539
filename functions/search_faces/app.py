"""Lambda entry point of SearchFaces (API Gateway: POST /search-faces)."""

from rekface.adapters.lambda_api import make_handler

handler = make_handler("SearchFaces")
