"""Recognizer packs: pack.json validation (each error names the file and the field), the model's
sha256 and shapes, the calibration, the registry, and the embedder's input preparation."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from rekface.engine.align import TEMPLATE_150, face_chip
from rekface.engine.calibrate import BUILTIN_CALIBRATION
from rekface.engine.embed import Embedder
from rekface.engine.faces import FaceEngine
from rekface.engine.models import RECOGNIZER
from rekface.engine.packs import (
    BUILTIN_VERSION,
    InputSpec,
    PackError,
    PackRegistry,
    UnknownFaceModelVersion,
    builtin_root,
    check_session,
    parse_pack,
    read_calibration,
    read_model,
    read_pack,
)
from rekface.settings import Settings

ARCFACE_112 = [
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
]


def tiny_model(size: int = 16, dims: int = 8, layout: str = "NCHW", output: str = "emb") -> bytes:
    """A real ONNX graph: global average of each channel, then a fixed [3, dims] projection."""
    shape = [None, 3, size, size] if layout == "NCHW" else [None, size, size, 3]
    axes = [2, 3] if layout == "NCHW" else [1, 2]
    weights = np.arange(3 * dims, dtype=np.float32).reshape(3, dims) / 10 + 1
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["x", "axes"], ["m"], keepdims=0),
            helper.make_node("MatMul", ["m", "w"], [output]),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, [None, dims])],
        [
            helper.make_tensor("axes", TensorProto.INT64, [2], axes),
            helper.make_tensor("w", TensorProto.FLOAT, [3, dims], weights.ravel()),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return model.SerializeToString()


def pack_json(model: bytes, **changes) -> dict:
    data = {
        "name": "tiny",
        "face_model_version": "7.5",
        "onnx": "model.onnx",
        "sha256": hashlib.sha256(model).hexdigest(),
        "input": {"size": 16, "layout": "NCHW", "channels": "RGB", "mean": 127.5, "std": 128.0},
        "alignment": {"size": 16, "template": (np.array(ARCFACE_112) * 16 / 112).tolist()},
        "output": {"name": "emb", "dims": 8},
        "flip": True,
        "license": "test",
        "source": "generated",
    }
    data.update(changes)
    return data


def write_pack(folder: Path, model: bytes | None = None, **changes) -> Path:
    model = tiny_model() if model is None else model
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(model)
    (folder / "pack.json").write_text(json.dumps(pack_json(model, **changes)))
    return folder


def test_the_builtin_pack_is_dlib_with_its_calibration():
    pack = read_pack(builtin_root() / BUILTIN_VERSION, builtin=True)
    assert (pack.face_model_version, pack.dims, pack.output_name) == ("1.0", 128, "embedding")
    assert pack.onnx == RECOGNIZER.file and pack.sha256 == RECOGNIZER.sha256
    assert np.allclose(pack.template, TEMPLATE_150) and pack.flip
    assert pack.calibration_file == Path(str(BUILTIN_CALIBRATION))
    assert read_calibration(pack).model == RECOGNIZER.file


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"face_model_version": "v2"}, "'face_model_version'"),
        ({"face_model_version": 2.0}, "'face_model_version'"),
        ({"onnx": "../model.onnx"}, "'onnx'"),
        ({"sha256": "abc"}, "'sha256'"),
        ({"input": {"size": 16, "layout": "NWHC", "channels": "RGB"}}, "'layout'"),
        ({"input": {"size": 16, "layout": "NCHW", "channels": "RGBA"}}, "'channels'"),
        ({"input": {"size": 16, "layout": "NCHW", "channels": "RGB", "std": 0}}, "'std'"),
        ({"input": {"size": 16, "layout": "NCHW", "channels": "RGB", "mean": [1, 2]}}, "'mean'"),
        ({"input": {"size": True, "layout": "NCHW", "channels": "RGB"}}, "'size'"),
        ({"alignment": {"size": 16, "template": [[1, 2]] * 4}}, "'template'"),
        ({"alignment": {"size": 16, "template": [[1, 2]] * 4 + [[99, 2]]}}, "'template'"),
        ({"alignment": {"size": 32, "template": ARCFACE_112}}, "'size'"),
        ({"output": {"name": "emb", "dims": 1}}, "'dims'"),
        ({"output": {"dims": 8}}, "'name'"),
        ({"flip": "yes"}, "'flip'"),
        ({"models_dir": True}, "'models_dir'"),
    ],
)
def test_broken_fields_are_named(tmp_path, change, field):
    with pytest.raises(PackError) as err:
        parse_pack(pack_json(tiny_model(), **change), tmp_path)
    assert str(tmp_path / "pack.json") in str(err.value) and field in str(err.value)


def test_missing_fields_and_bad_json_are_named(tmp_path):
    for key in ("name", "onnx", "sha256", "input", "alignment", "output"):
        data = pack_json(tiny_model())
        del data[key]
        with pytest.raises(PackError, match=f"missing field '{key}'"):
            parse_pack(data, tmp_path)
    (tmp_path / "pack.json").write_text("{not json")
    with pytest.raises(PackError, match=r"pack.json: not valid JSON"):
        read_pack(tmp_path)
    with pytest.raises(PackError, match=r"cannot be read"):
        read_pack(tmp_path / "nowhere")


def test_sha256_and_shapes_are_checked_at_load(tmp_path):
    settings = Settings()
    pack = read_pack(write_pack(tmp_path / "p"))
    assert read_model(pack, settings) == (tmp_path / "p" / "model.onnx").read_bytes()
    (tmp_path / "p" / "model.onnx").write_bytes(tiny_model(dims=9))  # another file
    with pytest.raises(PackError, match=r"differs from field 'sha256'"):
        read_model(pack, settings)

    def session(model: bytes) -> ort.InferenceSession:
        return ort.InferenceSession(model, providers=["CPUExecutionProvider"])

    check_session(pack, session(tiny_model()))
    with pytest.raises(PackError, match=r"input.layout/input.size"):
        check_session(pack, session(tiny_model(size=20)))
    with pytest.raises(PackError, match=r"input.layout/input.size"):
        check_session(pack, session(tiny_model(layout="NHWC")))
    with pytest.raises(PackError, match=r"'output.dims'"):
        check_session(pack, session(tiny_model(dims=9)))
    with pytest.raises(PackError, match=r"'output.name'"):
        check_session(pack, session(tiny_model(output="other")))


def test_calibration_must_exist_load_and_fit_the_model(tmp_path):
    pack = read_pack(write_pack(tmp_path / "p"))
    with pytest.raises(PackError, match=r"calibration.json: missing"):
        read_calibration(pack)
    good = {"model": "model.onnx", "knots": [[-1, 0], [0.5, 80], [1, 100]]}
    pack.calibration_file.write_text(json.dumps(good))
    assert read_calibration(pack).cosine_at(80) == pytest.approx(0.5)
    pack.calibration_file.write_text(json.dumps({**good, "knots": [[-1, 0], [1, 90]]}))
    with pytest.raises(PackError, match=r"not a valid calibration"):
        read_calibration(pack)
    pack.calibration_file.write_text(json.dumps({**good, "model_sha256": "0" * 64}))
    with pytest.raises(PackError, match=r"'model_sha256'"):
        read_calibration(pack)


def test_registry_adds_packs_and_refuses_a_version_twice(tmp_path):
    write_pack(tmp_path / "packs" / "a")
    write_pack(tmp_path / "packs" / "b", face_model_version="3.1")
    registry = PackRegistry(Settings(packs_dirs=(tmp_path / "packs",)))
    assert registry.versions() == ["1.0", "3.1", "7.5"]
    with pytest.raises(UnknownFaceModelVersion, match=r"face model version 9.9"):
        registry.get("9.9")
    # One pack folder given directly works too.
    assert PackRegistry(Settings(packs_dirs=(tmp_path / "packs" / "a",))).versions() == [
        "1.0",
        "7.5",
    ]
    write_pack(tmp_path / "clash", face_model_version="1.0")
    with pytest.raises(PackError, match=r"already the version of"):
        PackRegistry(Settings(packs_dirs=(tmp_path / "clash",)))
    with pytest.raises(PackError, match=r"packs directory not found"):
        PackRegistry(Settings(packs_dirs=(tmp_path / "none",)))


def test_embedder_prepares_the_input_the_pack_declares():
    chips = np.random.default_rng(0).uniform(0, 255, (2, 4, 4, 3)).astype(np.float32)
    spec = InputSpec(4, "NCHW", "BGR", mean=(1.0, 2.0, 3.0), std=(2.0, 4.0, 8.0))
    embedder = Embedder(
        ort.InferenceSession(tiny_model(size=4), providers=["CPUExecutionProvider"]),
        spec=spec,
        output="emb",
        dims=8,
    )
    x = embedder.prepare(chips)
    bgr = chips[..., ::-1]
    want = ((bgr - np.array([1, 2, 3])) / np.array([2, 4, 8])).transpose(0, 3, 1, 2)
    assert x.shape == (2, 3, 4, 4) and np.allclose(x, want, atol=1e-5)
    out = embedder.embed(chips)
    assert out.shape == (2, 8) and np.allclose(np.linalg.norm(out, axis=1), 1.0)
    assert embedder.embed(chips[:0]).shape == (0, 8)


def test_engine_embeds_with_the_pack_of_the_version(tmp_path):
    folder = write_pack(tmp_path / "p", model=tiny_model(size=112, dims=8))
    data = json.loads((folder / "pack.json").read_text())
    data["input"]["size"] = 112
    data["alignment"] = {"size": 112, "template": ARCFACE_112}
    (folder / "pack.json").write_text(json.dumps(data))
    (folder / "calibration.json").write_text(
        json.dumps({"model": "model.onnx", "knots": [[-1, 0], [0.5, 80], [1, 100]]})
    )
    engine = FaceEngine(Settings(packs_dirs=(folder,)))
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 255, (200, 200, 3), np.uint8)
    points = np.array([[80, 90], [120, 90], [100, 110], [85, 130], [115, 130]], np.float64)
    from rekface.engine.faces import Face
    from rekface.engine.pose import estimate_pose
    from rekface.engine.quality import measure_quality

    chip = face_chip(rgb, points)
    face = Face(
        box=np.array([60.0, 60.0, 140.0, 150.0]),
        confidence=99.0,
        points=points,
        pose=estimate_pose(points),
        quality=measure_quality(chip),
        chip=chip,
        image=rgb,
    )
    engine.embed([face], "7.5")
    assert face.embedding is not None and face.embedding.shape == (8,)
    # The pack's own chip (ArcFace 112 template), flip-averaged, through its model.
    mine = face_chip(rgb, points, 112, np.array(ARCFACE_112))
    embedder = engine.recognizer("7.5").embedder
    assert np.allclose(face.embedding, embedder.embed(mine[None])[0], atol=1e-6)
    assert engine.similarity(face.embedding, face.embedding[None], "7.5")[0] == pytest.approx(100)
    with pytest.raises(UnknownFaceModelVersion):
        engine.embed([face], "8.0")
    bad = replace(engine.settings, face_model_version="8.0")
    with pytest.raises(PackError, match=r"REKFACE_FACE_MODEL_VERSION"):
        FaceEngine(bad).warm_up()
