"""Lambda entry point of ListTagsForResource (API Gateway: POST /list-tags-for-resource)."""

from rekface.adapters.lambda_api import make_handler

handler = make_handler("ListTagsForResource")
