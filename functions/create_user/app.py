"""Lambda entry point of CreateUser (API Gateway: POST /create-user)."""

from rekface.adapters.lambda_api import make_handler

handler = make_handler("CreateUser")
