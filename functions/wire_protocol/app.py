"""Lambda entry point of POST /: the Rekognition wire protocol, routed by X-Amz-Target to the
operation's own function (rekface.adapters.lambda_router says why it forwards, not runs)."""

from rekface.adapters.lambda_router import make_handler

handler = make_handler()
