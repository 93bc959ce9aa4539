"""Lambda entry point of the S3 flows: ObjectCreated under index/, compare/ and search/ -> the
operation, with its Rekognition JSON (or error) written to results/ (rekface.adapters.lambda_s3)."""

from rekface.adapters.lambda_s3 import make_handler

handler = make_handler()
