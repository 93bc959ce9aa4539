"""The shipped models: MANIFEST.tsv agrees with the files, the engine's pinned hashes and the
licenses; a missing or corrupt model fails with one clear error; the models directory resolves
REKFACE_MODELS_DIR, then /opt/models (the Lambda layer), then the repository's layers/models.

The rebuild from the registries (``make models-verify``) is not here: it downloads ~150 MB.
"""

from __future__ import annotations

import csv
import hashlib
import re
import shutil
from pathlib import Path

import pytest

import rekface.settings
from rekface import cli
from rekface.engine import models
from rekface.engine.faces import FaceEngine
from rekface.engine.models import DETECTOR, ModelLoadError, ModelSpec, SessionCache, find_model
from rekface.settings import REPO_MODELS_DIR, Settings

MANIFEST_COLUMNS = [
    "file",
    "bytes",
    "sha256",
    "package",
    "registry",
    "source_file",
    "source_sha256",
    "member",
    "member_sha256",
    "license",
    "license_file",
]
SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Words every license file of that kind contains.
LICENSE_MARKERS = {"MIT": "MIT License", "CC0-1.0": "CC0 1.0", "Apache-2.0": "Apache License"}
# Reference-only models from repository snapshots: never in the product (shared/models/README.md).
NEVER_SHIPPED = ("face_detection_yunet", "version-RFB", "facenet", "centerface")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest() -> list[dict[str, str]]:
    with (REPO_MODELS_DIR / "MANIFEST.tsv").open(newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        assert reader.fieldnames == MANIFEST_COLUMNS
        return list(reader)


def engine_specs() -> list[ModelSpec]:
    """Every ModelSpec the engine declares, including ones added after this test was written."""
    specs = [v for v in vars(models).values() if isinstance(v, ModelSpec)]
    assert DETECTOR in specs
    return specs


@pytest.mark.parametrize("row", manifest(), ids=lambda r: r["file"])
def test_manifest_row_matches_its_file_and_license(row: dict[str, str]) -> None:
    path = REPO_MODELS_DIR / row["file"]
    assert path.is_file(), f"{row['file']} is in MANIFEST.tsv but not in layers/models"
    assert path.stat().st_size == int(row["bytes"])
    assert sha256(path) == row["sha256"]
    assert row["registry"] in ("PyPI", "npm")
    assert re.fullmatch(r"[@\w./-]+==[\w.]+", row["package"]), row["package"]
    assert SHA256.match(row["source_sha256"])
    members = row["member"].split(" + ")
    member_hashes = row["member_sha256"].split(" + ")
    assert len(members) == len(member_hashes)
    assert all(SHA256.match(h) for h in member_hashes)
    license_file = REPO_MODELS_DIR / row["license_file"]
    assert license_file.is_file(), f"{row['file']}: {row['license_file']} is missing"
    assert LICENSE_MARKERS[row["license"]] in license_file.read_text(encoding="utf-8")


def test_every_shipped_model_is_in_the_manifest_and_nothing_else_ships() -> None:
    listed = {row["file"] for row in manifest()}
    shipped = {p.name for p in REPO_MODELS_DIR.glob("*.onnx")}
    assert shipped == listed
    assert not [f for f in shipped if f.startswith(NEVER_SHIPPED)]


def test_every_engine_model_is_in_the_manifest_with_the_same_sha256() -> None:
    by_file = {row["file"]: row for row in manifest()}
    for spec in engine_specs():
        assert spec.file in by_file, f"{spec.file} ({spec.role}) is not in MANIFEST.tsv"
        assert by_file[spec.file]["sha256"] == spec.sha256, spec.file


def test_missing_model_gives_one_error_naming_the_file(tmp_path: Path) -> None:
    settings = Settings.from_env({"REKFACE_MODELS_DIR": str(tmp_path)})
    with pytest.raises(ModelLoadError) as info:
        SessionCache(settings).get(DETECTOR)
    message = str(info.value)
    assert DETECTOR.file in message and str(tmp_path) in message
    assert "REKFACE_MODELS_DIR" in message  # says how to fix it


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "empty"])
def test_corrupt_model_gives_one_error_naming_the_file(tmp_path: Path, damage: str) -> None:
    data = bytearray((REPO_MODELS_DIR / DETECTOR.file).read_bytes())
    if damage == "flip a byte":
        data[len(data) // 2] ^= 0xFF  # still the right size: only the hash can tell
    elif damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data = bytearray()
    (tmp_path / DETECTOR.file).write_bytes(bytes(data))
    settings = Settings.from_env({"REKFACE_MODELS_DIR": str(tmp_path)})
    with pytest.raises(ModelLoadError) as info:
        SessionCache(settings).get(DETECTOR)
    message = str(info.value)
    assert DETECTOR.file in message and "sha256" in message and DETECTOR.sha256 in message


def test_engine_warm_up_reports_the_missing_model(tmp_path: Path) -> None:
    settings = Settings.from_env({"REKFACE_MODELS_DIR": str(tmp_path)})
    with pytest.raises(ModelLoadError, match=re.escape(DETECTOR.file)):
        FaceEngine(settings).warm_up()


def test_serve_exits_with_the_model_error_instead_of_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REKFACE_MODELS_DIR", str(tmp_path))
    assert cli.main(["serve", "--port", "0", "--data-dir", str(tmp_path / "data")]) == 1
    err = capsys.readouterr().err
    assert DETECTOR.file in err and "Traceback" not in err


def test_resolution_order_env_then_lambda_layer_then_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layer = tmp_path / "opt-models"
    layer.mkdir()
    monkeypatch.setattr(rekface.settings, "LAMBDA_LAYER_MODELS_DIR", layer)
    default = Settings.from_env({})
    assert default.model_dirs() == [layer, REPO_MODELS_DIR]

    # Nothing in the layer: the repository's copy.
    assert find_model(DETECTOR, default) == REPO_MODELS_DIR / DETECTOR.file
    # The layer has it: the layer wins over the repository.
    shutil.copy(REPO_MODELS_DIR / DETECTOR.file, layer / DETECTOR.file)
    assert find_model(DETECTOR, default) == layer / DETECTOR.file
    # REKFACE_MODELS_DIR wins over both, and is the only place looked at: a model missing there
    # is an error rather than a silent fallback to another copy.
    own = tmp_path / "own"
    own.mkdir()
    explicit = Settings.from_env({"REKFACE_MODELS_DIR": str(own)})
    assert explicit.model_dirs() == [own]
    with pytest.raises(ModelLoadError, match=re.escape(DETECTOR.file)):
        find_model(DETECTOR, explicit)
    shutil.copy(REPO_MODELS_DIR / DETECTOR.file, own / DETECTOR.file)
    assert find_model(DETECTOR, explicit) == own / DETECTOR.file


def test_a_verified_copy_in_the_models_dir_loads(tmp_path: Path) -> None:
    shutil.copy(REPO_MODELS_DIR / DETECTOR.file, tmp_path / DETECTOR.file)
    settings = Settings.from_env({"REKFACE_MODELS_DIR": str(tmp_path)})
    session = SessionCache(settings).get(DETECTOR)
    assert [i.name for i in session.get_inputs()] == ["input"]
