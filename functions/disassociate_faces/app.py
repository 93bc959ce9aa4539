"""Lambda entry point of DisassociateFaces (API Gateway: POST /disassociate-faces)."""

from rekface.adapters.lambda_api import make_handler

handler = make_handler("DisassociateFaces")
