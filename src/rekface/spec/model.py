"""The Rekognition service model that ships with botocore: the contract rekface serves."""

from __future__ import annotations

import functools

from botocore.model import OperationModel, ServiceModel, Shape


@functools.cache
def service_model() -> ServiceModel:
    # Loading the JSON model costs ~50 ms, so it happens on first use, not at import.
    import botocore.session

    return botocore.session.get_session().get_service_model("rekognition")


def operation_model(name: str) -> OperationModel:
    return service_model().operation_model(name)


def input_shape(name: str) -> Shape:
    shape = operation_model(name).input_shape
    assert shape is not None  # every Rekognition operation has an input structure
    return shape


def output_shape(name: str) -> Shape:
    shape = operation_model(name).output_shape
    assert shape is not None
    return shape
