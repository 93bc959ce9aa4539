"""mp_face_landmark.onnx and mp_iris_landmark.onnx from PyPI mediapipe 0.10.14 (Apache-2.0).

The wheel ships the TFLite models; PyPI tflite2onnx 0.4.1 converts them, with two patches: its
layout propagation crashes on tensors whose rank differs from the NHWC layout (face_landmark's
flattened heads), which are left as they are, and rank-3 HWC initializers (PReLU alpha [1,1,C])
are turned into [C,1,1] so they broadcast over NCHW. tflite2onnx orders initializers and
value_info by a hash, so they are sorted by name afterwards: two rebuilds give the same bytes.
The check runs each .tflite with Google's own interpreter (PyPI ai-edge-litert) and our ONNX on
the same inputs and requires the outputs to agree.

Contracts:
  mp_face_landmark: input ``input_1`` [1,3,192,192] RGB 0..1, a square crop of 1.5x the face box;
    outputs ``conv2d_21`` [1,1404,1,1] (468 points x (x, y, z) in pixels of the 192 input),
    ``conv2d_31`` [1,1,1,1] (face presence, a logit: apply a sigmoid).
  mp_iris_landmark: input ``input_1`` [1,3,64,64] RGB 0..1, an eye crop (the subject's left eye
    mirrored horizontally); outputs ``output_eyes_contours_and_brows`` [1,213] (71 points x
    (x, y, z)), ``output_iris`` [1,15] (5 points x (x, y, z), the pupil centre first), in pixels of
    the 64 input.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from registry import Member, Output, Package, Recipe, RecipeError, read_member

PACKAGE = Package(
    registry="PyPI",
    name="mediapipe",
    version="0.10.14",
    filename="mediapipe-0.10.14-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    sha256="a807328339e7356fda0bb14df12fedbf1d33bdf81649c5f8666b0026b1cc30b4",
    # The wheel, not the package: name the platform so any machine downloads this exact file.
    pip_args=(
        "--only-binary",
        ":all:",
        "--python-version",
        "3.11",
        "--implementation",
        "cp",
        "--abi",
        "cp311",
        "--platform",
        "manylinux_2_17_x86_64",
    ),
)
FACE = Member(
    "mediapipe/modules/face_landmark/face_landmark.tflite",
    "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814",
)
IRIS = Member(
    "mediapipe/modules/iris_landmark/iris_landmark.tflite",
    "d1744d2a09c25f501d39eba4faff47e53ecca8852c5ce19bce8eeac39357521f",
)
FILES = {FACE: "mp_face_landmark.onnx", IRIS: "mp_iris_landmark.onnx"}
RECIPE = Recipe(
    name="mediapipe",
    package=PACKAGE,
    outputs=tuple(
        Output(
            file=file,
            members=(member,),
            license="Apache-2.0",
            license_file="LICENSE.mediapipe.txt",
            package_license="mediapipe-0.10.14.dist-info/LICENSE",
        )
        for member, file in FILES.items()
    ),
)

_patched = False


def _patch_tflite2onnx() -> None:
    global _patched
    if _patched:
        return
    import tflite2onnx.layout as layout
    import tflite2onnx.tensor as tensor

    transform = layout.transform

    def safe_transform(inp, ilayout, olayout):
        # A tensor whose rank differs from the layout's (a flattened head) keeps its shape.
        if ilayout != olayout and len(inp) != len(ilayout):
            return inp
        return transform(inp, ilayout, olayout)

    layout.transform = safe_transform
    tensor_transform = tensor.Tensor.transform

    def safe_tensor_transform(self):
        if self.layout is not None and len(self.shape) != len(self.layout.source):
            if (
                self.isInitializer
                and len(self.shape) == 3
                and self.layout.source == "NHWC"
                and self.layout.target == "NCHW"
            ):
                # PReLU alpha [1,1,C] (HWC) -> [C,1,1], so it broadcasts over NCHW.
                self.data = self.data.reshape(self.shape).transpose(2, 0, 1)
                self.shape = [self.shape[2], self.shape[0], self.shape[1]]
            return None
        return tensor_transform(self)

    tensor.Tensor.transform = safe_tensor_transform
    _patched = True


def stabilise(path: Path) -> None:
    """Sort initializers and value_info by name: tflite2onnx emits them in hash order."""
    model = onnx.load(os.fspath(path))
    for field in (model.graph.initializer, model.graph.value_info):
        items = sorted(field, key=lambda t: t.name)
        del field[:]
        field.extend(items)
    onnx.save(model, os.fspath(path))


# Largest difference allowed between ONNX and TFLite, in pixels of the model's input (the face
# score is a logit): a thousandth of a pixel. Measured: <= 1.1e-4 (face mesh), 3.8e-5 (iris).
TOLERANCE = 1e-3


def check(tflite: Path, onnx_path: Path) -> float:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=os.fspath(tflite))
    interpreter.allocate_tensors()
    (inp,) = interpreter.get_input_details()
    outputs = interpreter.get_output_details()
    session = ort.InferenceSession(os.fspath(onnx_path), providers=["CPUExecutionProvider"])
    onnx_input = session.get_inputs()[0].name
    onnx_outputs = [o.name for o in session.get_outputs()]
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(3):
        x = rng.random(inp["shape"], dtype=np.float32)  # NHWC for TFLite
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        got = dict(
            zip(onnx_outputs, session.run(None, {onnx_input: x.transpose(0, 3, 1, 2)}), strict=True)
        )
        for out in outputs:
            expected = interpreter.get_tensor(out["index"])
            if out["name"] not in got:
                raise RecipeError(f"{onnx_path.name}: no output {out['name']}")
            diff = float(np.abs(got[out["name"]].reshape(expected.shape) - expected).max())
            worst = max(worst, diff)
    if worst > TOLERANCE:
        raise RecipeError(f"{onnx_path.name} differs from {tflite.name} by {worst:.2e}")
    return worst


def build(wheel: Path, work: Path, out_dir: Path) -> None:
    import tflite2onnx

    # tflite2onnx warns about every float16 weight ("may contain error"): the check against the
    # TFLite interpreter below is what tells whether it did.
    logging.getLogger("tflite2onnx").setLevel(logging.ERROR)
    _patch_tflite2onnx()
    for member, file in FILES.items():
        tflite = work / Path(member.path).name
        tflite.write_bytes(read_member(wheel, member.path, member.sha256))
        out = out_dir / file
        tflite2onnx.convert(os.fspath(tflite), os.fspath(out))
        stabilise(out)
        worst = check(tflite, out)
        print(f"  mediapipe: {file} vs {tflite.name} (ai-edge-litert): max |diff| {worst:.1e}")
