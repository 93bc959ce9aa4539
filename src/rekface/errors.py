"""One exception per Rekognition error shape, plus the protocol errors, and their HTTP status.

Lower layers raise these; only the wire adapter turns them into ``{"__type", "Message"}`` bodies.
The botocore model gives Rekognition's errors no status code, so the table lives here (pinned by
tests): server faults are 5xx, everything a client can cause is 400.
"""

from __future__ import annotations


class RekognitionError(Exception):
    """Base of every error a client may see. ``code`` is the service's error-shape name."""

    code = "RekognitionError"
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_body(self) -> dict[str, str]:
        return {"__type": self.code, "Message": self.message}


# Error shapes of the 21 operations in the botocore model.


class AccessDeniedException(RekognitionError):
    code = "AccessDeniedException"


class ConflictException(RekognitionError):
    code = "ConflictException"


class IdempotentParameterMismatchException(RekognitionError):
    code = "IdempotentParameterMismatchException"


class ImageTooLargeException(RekognitionError):
    code = "ImageTooLargeException"


class InternalServerError(RekognitionError):
    code = "InternalServerError"
    status = 500


class InvalidImageFormatException(RekognitionError):
    code = "InvalidImageFormatException"


class InvalidPaginationTokenException(RekognitionError):
    code = "InvalidPaginationTokenException"


class InvalidParameterException(RekognitionError):
    code = "InvalidParameterException"


class InvalidS3ObjectException(RekognitionError):
    code = "InvalidS3ObjectException"


class ProvisionedThroughputExceededException(RekognitionError):
    code = "ProvisionedThroughputExceededException"


class ResourceAlreadyExistsException(RekognitionError):
    code = "ResourceAlreadyExistsException"


class ResourceNotFoundException(RekognitionError):
    code = "ResourceNotFoundException"


class ServiceQuotaExceededException(RekognitionError):
    code = "ServiceQuotaExceededException"


class ThrottlingException(RekognitionError):
    code = "ThrottlingException"
    status = 503


# Protocol errors every AWS JSON 1.1 service answers (not in the Rekognition model).


class SerializationException(RekognitionError):
    code = "SerializationException"


class UnknownOperationException(RekognitionError):
    code = "UnknownOperationException"


# Authentication errors, as every AWS JSON service answers a request it cannot attribute to a
# caller (``rekface serve --credentials``). botocore maps them by ``__type``; the messages are the
# service's own, and say no more than AWS says about which part was wrong. All 400, as the JSON
# services (Rekognition, DynamoDB, Kinesis) answer them; the 403 of AWS's "common errors" page is
# the query protocol's (sources in tests/hardening/hardening_wire.py).


class MissingAuthenticationTokenException(RekognitionError):
    code = "MissingAuthenticationTokenException"


class IncompleteSignatureException(RekognitionError):
    code = "IncompleteSignatureException"


class InvalidSignatureException(RekognitionError):
    code = "InvalidSignatureException"


class UnrecognizedClientException(RekognitionError):
    code = "UnrecognizedClientException"


ALL_ERRORS: dict[str, type[RekognitionError]] = {
    cls.code: cls
    for cls in (
        AccessDeniedException,
        ConflictException,
        IdempotentParameterMismatchException,
        ImageTooLargeException,
        InternalServerError,
        InvalidImageFormatException,
        InvalidPaginationTokenException,
        InvalidParameterException,
        InvalidS3ObjectException,
        ProvisionedThroughputExceededException,
        ResourceAlreadyExistsException,
        ResourceNotFoundException,
        ServiceQuotaExceededException,
        ThrottlingException,
        SerializationException,
        UnknownOperationException,
        MissingAuthenticationTokenException,
        IncompleteSignatureException,
        InvalidSignatureException,
        UnrecognizedClientException,
    )
}
