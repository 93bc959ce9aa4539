"""rekface: the Amazon Rekognition face API, self-hosted."""

__version__ = "0.1.0"
