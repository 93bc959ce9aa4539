"""Lambda entry point of SearchFacesByImage (API Gateway: POST /search-faces-by-image)."""

from rekface.adapters.lambda_api import make_handler

handler = make_handler("SearchFacesByImage")
