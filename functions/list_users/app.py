"""Lambda entry point of ListUsers (API Gateway: POST /list-users)."""

from rekface.adapters.lambda_api import make_handler

handler = make_handler("ListUsers")
