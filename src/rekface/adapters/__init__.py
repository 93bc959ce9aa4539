"""Adapters: the wire codec and dispatch shared by `rekface serve`, the Lambda handlers and the S3
event handler. They know the transport, never faces."""
