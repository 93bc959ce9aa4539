"""Lambda entry point of AssociateFaces (API Gateway: POST /associate-faces)."""

from rekface.adapters.lambda_api import make_handler

handler = make_handler("AssociateFaces")
