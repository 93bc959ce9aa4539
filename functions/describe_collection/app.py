"""Lambda entry point of DescribeCollection (API Gateway: POST /describe-collection)."""

from rekface.adapters.lambda_api import make_handler

handler = make_handler("DescribeCollection")
