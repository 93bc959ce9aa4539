"""The three Lambda layers, from the folders `make layers` builds (layers/python/build.py)."""

from __future__ import annotations

import json
from pathlib import Path

from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from rekface_infra.config import StackConfig

EXCLUDE = [".build.json"]  # the build's own stamps


def runtime(config: StackConfig) -> lambda_.Runtime:
    return {"3.12": lambda_.Runtime.PYTHON_3_12, "3.13": lambda_.Runtime.PYTHON_3_13}[config.python]


def architecture(config: StackConfig) -> lambda_.Architecture:
    return lambda_.Architecture.ARM_64 if config.arch == "arm64" else lambda_.Architecture.X86_64


def check_build(path: Path, config: StackConfig) -> None:
    """Refuse layers that are missing or built for another Python/CPU than the functions."""
    build = path / "BUILD.json"
    if not build.is_file():
        raise FileNotFoundError(
            f"no Lambda layers in {path}: run `make layers LAMBDA_PYTHON={config.python} "
            f"LAMBDA_ARCH={config.arch}` first"
        )
    info = json.loads(build.read_text())
    if (info.get("python"), info.get("arch")) != (config.python, config.arch):
        raise ValueError(
            f"layers in {path} are for python {info.get('python')} / {info.get('arch')}, "
            f"the stack deploys python {config.python} / {config.arch}"
        )


class Layers(Construct):
    def __init__(self, scope: Construct, id: str, *, config: StackConfig) -> None:
        super().__init__(scope, id)
        path = config.layers_path
        check_build(path, config)

        def layer(name: str, description: str) -> lambda_.LayerVersion:
            return lambda_.LayerVersion(
                self,
                name.capitalize(),
                code=lambda_.Code.from_asset(str(path / name), exclude=EXCLUDE),
                compatible_runtimes=[runtime(config)],
                compatible_architectures=[architecture(config)],
                description=description,
            )

        self.deps = layer(
            "deps", "rekface: numpy, onnxruntime, pillow, boto3, Powertools (trimmed)"
        )
        self.models = layer("models", "rekface: ONNX face models at /opt/models")
        self.package = layer("rekface", "rekface: the rekface package")
