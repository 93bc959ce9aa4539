"""The error classes mirror the service's error shapes, with a pinned status table."""

from rekface import errors
from rekface.spec.model import operation_model
from rekface.spec.operations import OPERATIONS


def test_every_error_shape_of_the_21_operations_has_a_class():
    shapes = {e.name for op in OPERATIONS for e in operation_model(op.name).error_shapes}
    missing = shapes - set(errors.ALL_ERRORS)
    assert not missing, f"no exception class for {sorted(missing)}"


def test_class_names_equal_error_codes():
    for code, cls in errors.ALL_ERRORS.items():
        assert cls.__name__ == code == cls.code


def test_status_table():
    not_400 = {
        "InternalServerError": 500,
        "ThrottlingException": 503,
    }
    for code, cls in errors.ALL_ERRORS.items():
        assert cls.status == not_400.get(code, 400), code


def test_error_body_shape():
    body = errors.InvalidParameterException("bad").to_body()
    assert body == {"__type": "InvalidParameterException", "Message": "bad"}
