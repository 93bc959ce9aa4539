"""faceapi_age_gender.onnx, faceapi_expression.onnx, faceapi_landmark68.onnx from npm
@vladmandic/face-api 1.7.15 (MIT).

The package ships each net as a TFJS weights manifest (``model/<name>-weights_manifest.json``) plus
uint8-quantised weights (``model/<name>.bin``); the architecture lives in the library's TypeScript
(src/xception/TinyXception.ts, src/faceFeatureExtractor/*.ts, src/ageGenderNet/AgeGenderNet.ts,
src/faceProcessor/FaceProcessor.ts, src/faceLandmarkNet/*.ts). This recipe re-implements that
architecture with onnx.helper; nothing but the weights comes from the package. The check runs the
library itself (its ESM bundle with tfjs, under Node, ``faceapi_reference.mjs``) and our ONNX
graphs on the same inputs and requires the outputs to agree.

Contract (all three): input ``input`` float32 [N,112,112,3] RGB 0..255, the face box padded to a
square with zeros (centred) and resized bilinear to 112 (face-api's NetInput.toBatchTensor(112,
true)); the normalisation (x - mean_rgb) / 255 is inside the graph.
  age_gender: ``age`` [N] years (regression), ``gender`` [N,2] softmax (0 male, 1 female)
  expression: ``expressions`` [N,7] softmax: neutral, happy, sad, angry, fearful, disgusted,
              surprised
  landmark68: ``landmarks`` [N,136] x0,y0,x1,y1,... in 0..1 of the padded square (iBUG-68 order)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from registry import Member, Output, Package, Recipe, RecipeError, read_member

PACKAGE = Package(
    registry="npm",
    name="@vladmandic/face-api",
    version="1.7.15",
    filename="vladmandic-face-api-1.7.15.tgz",
    sha256="0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031",
)
# Files inside the npm tarball, per net: the weights manifest, then the weights.
MEMBERS = {
    "age_gender_model": (
        Member(
            "package/model/age_gender_model-weights_manifest.json",
            "74b60bf3ebf981bf4e661e9cca3a185614e10b25d797118b62e2a68d3ff2569f",
        ),
        Member(
            "package/model/age_gender_model.bin",
            "49f92bbc0afef2342c4385e4a2b0acb6d7a727c6f0aa539499719a81acf9abaa",
        ),
    ),
    "face_expression_model": (
        Member(
            "package/model/face_expression_model-weights_manifest.json",
            "5b349c17c7836da506e03422cd6461c74085d8bb2713ad4114647dc5d28174c8",
        ),
        Member(
            "package/model/face_expression_model.bin",
            "9a9840f2cf1f4c7eab95f197512569345c00d2426754d4608b92af30e0300f3d",
        ),
    ),
    "face_landmark_68_model": (
        Member(
            "package/model/face_landmark_68_model-weights_manifest.json",
            "ca4886639f86e99b39fed0c155f81b63317225773bd9616716e887b0153389c9",
        ),
        Member(
            "package/model/face_landmark_68_model.bin",
            "4611ef65c87d836d03d684b30eec4d195d8b219fa1dd58fc58945831c6b9299b",
        ),
    ),
}
FILES = {
    "age_gender_model": "faceapi_age_gender.onnx",
    "face_expression_model": "faceapi_expression.onnx",
    "face_landmark_68_model": "faceapi_landmark68.onnx",
}
RECIPE = Recipe(
    name="faceapi",
    package=PACKAGE,
    outputs=tuple(
        Output(
            file=FILES[net],
            members=MEMBERS[net],
            license="MIT",
            license_file="LICENSE.faceapi.txt",
            package_license="package/LICENSE",
        )
        for net in FILES
    ),
)
MEAN_RGB = [122.782, 117.001, 104.298]
# The library's own ESM bundle (tfjs included): the reference our graphs are checked against.
BUNDLE = Member(
    "package/dist/face-api.esm.js",
    "14f0e9813f6d9f14a9cdafb6543a74835ebb13085090e2942310a7a737f55d9a",
)
REFERENCE_SCRIPT = Path(__file__).with_name("faceapi_reference.mjs")


def load_weights(model_dir: Path, net: str) -> dict[str, np.ndarray]:
    """Dequantise a TFJS weights manifest: uint8 * scale + min, or plain float32."""
    manifest = json.loads((model_dir / f"{net}-weights_manifest.json").read_text())
    out = {}
    for group in manifest:
        buf = b"".join((model_dir / p).read_bytes() for p in group["paths"])
        off = 0
        for w in group["weights"]:
            n = int(np.prod(w["shape"])) if w["shape"] else 1
            q = w.get("quantization")
            if q:
                if q["dtype"] != "uint8":
                    raise ValueError(f"{net}: unsupported quantisation {q}")
                raw = np.frombuffer(buf, np.uint8, n, off).astype(np.float32)
                off += n
                arr = raw * np.float32(q["scale"]) + np.float32(q["min"])
            else:
                if w["dtype"] != "float32":
                    raise ValueError(f"{net}: unsupported dtype {w['dtype']}")
                arr = np.frombuffer(buf, np.float32, n, off).copy()
                off += 4 * n
            out[w["name"]] = arr.reshape(w["shape"]).astype(np.float32)
        if off != len(buf):
            raise ValueError(f"{net}: read {off} of {len(buf)} weight bytes")
    return out


class _Graph:
    """A tiny graph builder; names are numbered in creation order (stable bytes)."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.w = weights
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.k = 0

    def name(self, prefix: str) -> str:
        self.k += 1
        return f"{prefix}_{self.k}"

    def const(self, arr: np.ndarray, prefix: str = "c") -> str:
        n = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(arr, np.float32), n))
        return n

    def op(self, op_type: str, inputs: list[str], prefix: str | None = None, **attrs) -> str:
        o = self.name(prefix or op_type)
        self.nodes.append(helper.make_node(op_type, inputs, [o], **attrs))
        return o

    def relu(self, x: str) -> str:
        return self.op("Relu", [x])

    def add(self, a: str, b: str) -> str:
        return self.op("Add", [a, b])

    def conv(self, x: str, prefix: str, stride: int) -> str:
        """tf.conv2d(x, filters [kh,kw,ci,co], 'same') + bias."""
        f = self.w[prefix + "/filters"].transpose(3, 2, 0, 1)
        b = self.w[prefix + "/bias"]
        return self.op(
            "Conv",
            [x, self.const(f, prefix), self.const(b, prefix)],
            auto_pad="SAME_UPPER",
            strides=[stride, stride],
            kernel_shape=list(f.shape[2:]),
        )

    def sepconv(self, x: str, prefix: str, stride: int) -> str:
        """tf.separableConv2d(x, depthwise [3,3,C,1], pointwise [1,1,C,Co], 'same') + bias."""
        dw = self.w[prefix + "/depthwise_filter"]
        pw = self.w[prefix + "/pointwise_filter"]
        b = self.w[prefix + "/bias"]
        channels = dw.shape[2]
        y = self.op(
            "Conv",
            [x, self.const(dw.transpose(2, 3, 0, 1), prefix + "_dw")],
            auto_pad="SAME_UPPER",
            group=channels,
            strides=[stride, stride],
            kernel_shape=[3, 3],
        )
        return self.op(
            "Conv",
            [y, self.const(pw.transpose(3, 2, 0, 1), prefix + "_pw"), self.const(b, prefix + "_b")],
            kernel_shape=[1, 1],
        )

    def fc(self, x: str, prefix: str) -> str:
        weights = self.const(self.w[prefix + "/weights"])
        return self.op("Gemm", [x, weights, self.const(self.w[prefix + "/bias"])])

    def preprocess(self, inp: str) -> str:
        x = self.op("Sub", [inp, self.const(np.array(MEAN_RGB, np.float32).reshape(1, 1, 1, 3))])
        x = self.op("Div", [x, self.const(np.array(255.0, np.float32))])
        return self.op("Transpose", [x], perm=[0, 3, 1, 2])

    def rename(self, src: str, dst: str) -> None:
        self.nodes.append(helper.make_node("Identity", [src], [dst]))

    def model(self, outputs: list[tuple[str, list[str | int]]], doc: str) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes,
            "g",
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 112, 112, 3])],
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs],
            self.inits,
        )
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="rekface-recipe"
        )
        model.ir_version = 8
        model.doc_string = doc
        onnx.checker.check_model(model)
        return model


def _dense_block(g: _Graph, x: str, prefix: str, first: bool, n_convs: int) -> str:
    conv0 = g.conv(x, prefix + "/conv0", 2) if first else g.sepconv(x, prefix + "/conv0", 2)
    outs = [g.relu(conv0)]
    cur = outs[0]
    for i in range(1, n_convs):
        outs.append(g.sepconv(cur, f"{prefix}/conv{i}", 1))
        s = outs[-1]
        for t in reversed(outs[:-1]):
            s = g.add(t, s)
        cur = g.relu(s)
    return cur


def _feature_extractor(g: _Graph, x: str) -> str:
    """FaceFeatureExtractor: 4 dense blocks, then face-api's avgPool 7x7 stride 2 'valid' on a
    7x7 map, i.e. a global average pool."""
    for i in range(4):
        x = _dense_block(g, x, f"dense{i}", i == 0, 4)
    x = g.op("AveragePool", [x], kernel_shape=[7, 7], strides=[2, 2])
    return g.op("Flatten", [x])


def build_face_processor(
    weights: dict[str, np.ndarray], n_out: int, outname: str, doc: str, softmax: bool
) -> onnx.ModelProto:
    g = _Graph(weights)
    y = g.fc(_feature_extractor(g, g.preprocess("input")), "fc")
    if softmax:
        y = g.op("Softmax", [y], axis=1)
    g.rename(y, outname)
    return g.model([(outname, ["N", n_out])], doc)


def build_age_gender(weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    """AgeGenderNet: TinyXception(2) and two fully connected heads."""
    g = _Graph(weights)
    x = g.preprocess("input")

    def reduction(x: str, prefix: str, act_in: bool = True) -> str:
        o = g.relu(x) if act_in else x
        o = g.sepconv(o, prefix + "/separable_conv0", 1)
        o = g.sepconv(g.relu(o), prefix + "/separable_conv1", 1)
        o = g.op("MaxPool", [o], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")
        return g.add(o, g.conv(x, prefix + "/expansion_conv", 2))

    def main_block(x: str, prefix: str) -> str:
        o = g.sepconv(g.relu(x), prefix + "/separable_conv0", 1)
        o = g.sepconv(g.relu(o), prefix + "/separable_conv1", 1)
        o = g.sepconv(g.relu(o), prefix + "/separable_conv2", 1)
        return g.add(o, x)

    o = g.relu(g.conv(x, "entry_flow/conv_in", 2))
    o = reduction(o, "entry_flow/reduction_block_0", False)
    o = reduction(o, "entry_flow/reduction_block_1")
    for i in range(2):
        o = main_block(o, f"middle_flow/main_block_{i}")
    o = reduction(o, "exit_flow/reduction_block")
    o = g.relu(g.sepconv(o, "exit_flow/separable_conv", 1))
    o = g.op("AveragePool", [o], kernel_shape=[7, 7], strides=[2, 2])
    f = g.op("Flatten", [o])
    shape = g.name("shape")
    g.inits.append(numpy_helper.from_array(np.array([-1], np.int64), shape))
    age = g.op("Reshape", [g.fc(f, "fc/age"), shape])
    gender = g.op("Softmax", [g.fc(f, "fc/gender")], axis=1)
    g.rename(age, "age")
    g.rename(gender, "gender")
    return g.model(
        [("age", ["N"]), ("gender", ["N", 2])],
        "face-api AgeGenderNet (TinyXception(2)) from @vladmandic/face-api@1.7.15 "
        "model/age_gender_model; age: years; gender softmax [male, female]",
    )


def build(tarball: Path, work: Path, out_dir: Path) -> None:
    model_dir = work / "faceapi-model"
    model_dir.mkdir(exist_ok=True)
    for members in MEMBERS.values():
        for m in members:
            (model_dir / Path(m.path).name).write_bytes(read_member(tarball, m.path, m.sha256))
    models = {
        "age_gender_model": build_age_gender(load_weights(model_dir, "age_gender_model")),
        "face_expression_model": build_face_processor(
            load_weights(model_dir, "face_expression_model"),
            7,
            "expressions",
            "face-api FaceExpressionNet from @vladmandic/face-api@1.7.15 "
            "model/face_expression_model; softmax over "
            "neutral,happy,sad,angry,fearful,disgusted,surprised",
            True,
        ),
        "face_landmark_68_model": build_face_processor(
            load_weights(model_dir, "face_landmark_68_model"),
            136,
            "landmarks",
            "face-api FaceLandmark68Net from @vladmandic/face-api@1.7.15; "
            "x,y interleaved in 0..1 of padded square",
            False,
        ),
    }
    for net, model in models.items():
        onnx.save(model, os.fspath(out_dir / FILES[net]))
    check(tarball, work, model_dir, out_dir)


# Largest differences allowed between our graphs and the library (float32 on both sides; tfjs
# and onnxruntime sum in different orders). Ages are in years, the rest in 0..1.
TOLERANCE = {"age": 1e-3, "gender": 1e-4, "expressions": 1e-4, "landmarks": 1e-4}


def check(tarball: Path, work: Path, model_dir: Path, out_dir: Path) -> None:
    node = shutil.which("node")
    if node is None:
        raise RecipeError("the face-api check needs Node.js (`node`) to run the library")
    bundle = work / "face-api.esm.mjs"  # .mjs: Node loads it as a module without guessing
    bundle.write_bytes(read_member(tarball, BUNDLE.path, BUNDLE.sha256))
    rng = np.random.default_rng(0)
    # Noise plus smooth gradients: inputs that drive the nets away from saturated outputs.
    n = 4
    yy, xx = np.mgrid[0:112, 0:112].astype(np.float32)
    ramp = np.stack([xx * 2.2, yy * 2.2, (xx + yy) * 1.1], -1)
    x = np.clip(rng.uniform(0, 255, (n, 112, 112, 3)) * 0.5 + ramp * 0.5, 0, 255)
    x = x.astype(np.float32)
    inputs, result = work / "faceapi-input.bin", work / "faceapi-reference.json"
    x.astype("<f4").tofile(inputs)
    cmd = [node, REFERENCE_SCRIPT, bundle, model_dir, inputs, str(n), result]
    proc = subprocess.run([os.fspath(c) for c in cmd], capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise RecipeError(f"running face-api under Node failed:\n{tail}")
    ref = json.loads(result.read_text())

    def run(file: str) -> dict[str, np.ndarray]:
        session = ort.InferenceSession(
            os.fspath(out_dir / file), providers=["CPUExecutionProvider"]
        )
        names = [o.name for o in session.get_outputs()]
        return dict(zip(names, session.run(None, {"input": x}), strict=True))

    ours = run(FILES["age_gender_model"])
    ours |= run(FILES["face_expression_model"])
    ours |= run(FILES["face_landmark_68_model"])
    diffs = {}
    for key, tol in TOLERANCE.items():
        expected = np.asarray(ref[key], np.float32)
        diffs[key] = float(np.abs(ours[key].reshape(expected.shape) - expected).max())
        if diffs[key] > tol:
            raise RecipeError(f"face-api {key}: ONNX differs from the library by {diffs[key]:.2e}")
    shown = ", ".join(f"{k} {v:.1e}" for k, v in diffs.items())
    print(f"  faceapi: vs the library (tfjs {ref['tfjs']}) on {n} inputs: max |diff| {shown}")
