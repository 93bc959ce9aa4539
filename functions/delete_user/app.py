"""Lambda entry point of DeleteUser (API Gateway: POST /delete-user)."""

from rekface.adapters.lambda_api import make_handler

handler = make_handler("DeleteUser")
