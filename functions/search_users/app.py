"""Lambda entry point of SearchUsers (API Gateway: POST /search-users)."""

from rekface.adapters.lambda_api import make_handler

handler = make_handler("SearchUsers")
