"""Lambda entry point of POST /: the Rekognition wire protocol, routed by X-Amz-Target."""

from rekface.adapters.lambda_api import make_handler

handler = make_handler(None)
