"""The Lambda layers `make layers` builds: each function fits Lambda's 250 MB (unzipped) with
margin, the wheels are the runtime's (Python, CPU, glibc), the trimmed layer still runs the real
handler on a real photo, and a rebuild needs no network."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DEFAULT_TARGET, REPO, layer_build, locked

from rekface.spec.operations import OPERATIONS

LAMBDA_LIMIT = 250 * 1024 * 1024  # unzipped: function code + all its layers
BUDGET = 200 * 1024 * 1024  # the margin we keep for model and dependency growth


def function_sizes(layers: Path) -> dict[str, int]:
    sizes = {name: layer_build.tree_size(layers / name) for name in ("deps", "models", "rekface")}
    return function_sizes_of(sizes)


def function_sizes_of(sizes: dict[str, int]) -> dict[str, int]:
    """Each function's unzipped size: its code plus the layers it uses (sizes by layer)."""
    out = {}
    for op in OPERATIONS:
        used = ["deps", "rekface"] + (["models"] if op.reads_images else [])
        code = layer_build.tree_size(REPO / "functions" / op.snake)
        out[op.name] = code + sum(sizes[u] for u in used)
    out["WireProtocol"] = (
        layer_build.tree_size(REPO / "functions" / "wire_protocol")
        + sizes["deps"]
        + sizes["rekface"]
    )
    out["S3Events"] = layer_build.tree_size(REPO / "functions" / "s3_events") + sum(sizes.values())
    return out


def test_every_function_fits_with_margin(layers):
    sizes = function_sizes(layers)
    for name, size in sorted(sizes.items(), key=lambda kv: -kv[1]):
        print(f"{name:22s} {size / 2**20:7.1f} MiB unzipped (limit 250 MiB, budget 200 MiB)")
    biggest = max(sizes.values())
    assert biggest < BUDGET < LAMBDA_LIMIT, f"{biggest / 2**20:.1f} MiB"


_TAG = re.compile(r"^Tag: (\S+)-(\S+)-(\S+)$", re.M)


def test_wheels_are_for_the_lambda_runtime(layers):
    """python3.12 on Amazon Linux 2023: cp312/abi3/pure wheels, manylinux up to glibc 2.34, the
    stack's CPU. (Amazon Linux 2's glibc 2.26 could not load onnxruntime 1.32's wheel.)"""
    site = layers / "deps" / "python"
    infos = sorted(site.glob("*.dist-info"))
    assert {p.name.split("-")[0].lower().replace("_", "-") for p in infos} >= {
        "numpy",
        "onnxruntime",
        "pillow",
        "boto3",
        "botocore",
        "aws-lambda-powertools",
    }
    for info in infos:
        tags = _TAG.findall((info / "WHEEL").read_text())
        assert tags, info
        ok = False
        for python, abi, platform in tags:
            if platform == "any":
                ok = ok or python.startswith("py3")
                continue
            glibc = [tuple(map(int, m)) for m in re.findall(r"manylinux_(\d+)_(\d+)", platform)]
            ok = ok or (
                python == "cp312"
                and abi in ("cp312", "abi3")
                and platform.endswith("x86_64")
                and (platform.startswith("manylinux1") or min(glibc, default=(9, 9)) <= (2, 34))
            )
        assert ok, f"{info.name}: {tags}"
    # What the build trimmed is gone; what is left carries no interpreter-specific bytecode.
    assert not (site / "sympy").exists() and not (site / "onnxruntime" / "transformers").exists()
    assert not list(site.glob("onnxruntime/capi/libonnxruntime.so*"))
    assert sorted(p.name for p in (site / "botocore" / "data").iterdir() if p.is_dir()) == sorted(
        layer_build.BOTOCORE_SERVICES
    )
    assert not list(site.rglob("*.cpython-311.pyc"))
    assert (layers / "models" / "models" / "retinaface_mnet025.onnx").is_file()
    pack = layers / "rekface" / "python" / "rekface" / "engine" / "packs" / "1.0"
    assert (pack / "calibration.json").is_file() and (pack / "pack.json").is_file()


SMOKE = r"""
import base64, json, sys
layer, function, photo = sys.argv[1:4]
sys.path[:0] = [function, f"{layer}/deps/python", f"{layer}/rekface/python"]
import app

class Context:
    function_name = "smoke"; memory_limit_in_mb = 1769; aws_request_id = "r1"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:smoke"

body = {"Image": {"Bytes": base64.b64encode(open(photo, "rb").read()).decode()}}
event = {"httpMethod": "POST", "path": "/detect-faces", "headers": {}, "isBase64Encoded": False,
         "body": json.dumps(body)}
out = app.handler(event, Context())
loaded = sorted({m.split(".")[0] for m in sys.modules})
print(json.dumps({"status": out["statusCode"], "body": json.loads(out["body"]),
                  "numpy": sys.modules["numpy"].__file__, "modules": loaded}))
"""


@pytest.fixture(scope="module")
def local_python_layers(tmp_path_factory) -> Path:
    """The same build for this interpreter (3.11, x86_64), which can import it: the trimming is
    the same for every Python, so this proves the trimmed layers are complete."""
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    out = REPO / "layers" / "build"
    with locked(out / ".lock"):
        return layer_build.build(layer_build.Target(here, "x86_64"), out)


def test_trimmed_layers_run_the_real_handler(local_python_layers, tmp_path, photo, faces_dir):
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "REKFACE_MODELS_DIR": str(local_python_layers / "models" / "models"),
        "REKFACE_STORE": "sqlite",
        "REKFACE_DATA_DIR": str(tmp_path),
        "POWERTOOLS_TRACE_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    # -S: no site-packages at all, only the standard library and the layers, as in Lambda.
    proc = subprocess.run(
        [
            sys.executable,
            "-S",
            "-c",
            SMOKE,
            str(local_python_layers),
            str(REPO / "functions" / "detect_faces"),
            str(faces_dir / "identities" / "Paul_Bremer" / "12.jpg"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["status"] == 200, out["body"]
    (face,) = out["body"]["FaceDetails"]
    assert face["Confidence"] > 99
    assert out["numpy"].startswith(str(local_python_layers))
    assert "sympy" not in out["modules"]


def test_a_rebuild_needs_no_network(layers, tmp_path):
    """With the wheelhouse filled, the dependencies layer rebuilds from it alone."""
    env = {**os.environ, "PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_FIND_LINKS": ""}
    out = tmp_path / "build"
    out.mkdir()
    wheelhouse = layer_build.DEFAULT_OUT / f"wheels-{DEFAULT_TARGET.tag}"
    (out / f"wheels-{DEFAULT_TARGET.tag}").symlink_to(wheelhouse)
    proc = subprocess.run(
        [sys.executable, str(REPO / "layers" / "python" / "build.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    built = json.loads((out / DEFAULT_TARGET.tag / "BUILD.json").read_text())
    assert built["bytes"] == json.loads((layers / "BUILD.json").read_text())["bytes"]


def test_packs_go_into_the_models_layer_and_every_function_still_fits(layers, tmp_path):
    """`make layers PACKS=dir`: a user's pack ships as a built-in one (its pack.json and
    calibration in the package layer, its model in /opt/models), found by functions with and
    without the models layer, and counts in the size budget. The pack here is the shipped dlib
    model under another version with its own (real) calibration: what a user pinning a model
    would ship."""
    from rekface.engine.calibrate import BUILTIN_CALIBRATION
    from rekface.engine.models import RECOGNIZER
    from rekface.engine.packs import builtin_root, read_calibration, read_model, read_pack
    from rekface.settings import Settings

    pack = tmp_path / "pinned"
    pack.mkdir()
    data = json.loads((builtin_root() / "1.0" / "pack.json").read_text())
    del data["models_dir"]
    data.update(face_model_version="1.1", onnx="model.onnx", name="dlib-pinned")
    (pack / "pack.json").write_text(json.dumps(data))
    (pack / "model.onnx").write_bytes((REPO / "layers" / "models" / RECOGNIZER.file).read_bytes())
    (pack / "calibration.json").write_text(BUILTIN_CALIBRATION.read_text())

    out = tmp_path / "build"
    layer_build.build_models(out, (pack,))
    layer_build.build_package(DEFAULT_TARGET, out, None, (pack,))
    models = out / "models" / "models"
    assert (models / "pack-1.1-model.onnx").is_file()
    packs = out / "rekface" / "python" / "rekface" / "engine" / "packs"
    assert sorted(p.name for p in packs.iterdir()) == ["1.0", "1.1"]
    shipped = read_pack(packs / "1.1", builtin=True)
    assert shipped.models_dir and shipped.onnx == "pack-1.1-model.onnx"
    assert read_model(shipped, Settings(models_dir=models)) == (pack / "model.onnx").read_bytes()
    assert read_calibration(shipped).cosine_at(80) > 0  # without the model: data functions

    sizes = {name: layer_build.tree_size(layers / name) for name in ("deps", "rekface")}
    sizes["models"] = layer_build.tree_size(out / "models")
    assert sizes["models"] > layer_build.tree_size(layers / "models") + 20e6
    biggest = max(function_sizes_of(sizes).values())
    print(f"biggest function with a 22 MB pack: {biggest / 2**20:.1f} MiB")
    assert biggest < BUDGET, f"{biggest / 2**20:.1f} MiB with a 22 MB pack"

    (pack / "calibration.json").unlink()
    with pytest.raises(SystemExit, match=r"calibration\.json: missing"):
        layer_build.build_models(tmp_path / "again", (pack,))
    data["face_model_version"] = "1.0"
    (pack / "pack.json").write_text(json.dumps(data))
    (pack / "calibration.json").write_text(BUILTIN_CALIBRATION.read_text())
    with pytest.raises(SystemExit, match=r"version 1\.0 is built in"):
        layer_build.build_models(tmp_path / "again", (pack,))
