"""Lambda entry point of SearchUsersByImage (API Gateway: POST /search-users-by-image)."""

from rekface.adapters.lambda_api import make_handler

handler = make_handler("SearchUsersByImage")
