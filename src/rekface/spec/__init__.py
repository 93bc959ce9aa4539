"""The botocore service model of Rekognition: the operation table and request validation."""
