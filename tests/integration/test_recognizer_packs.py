"""Bring-your-own recognizer, end to end, with the reference 192-d MobileFaceNet of
../shared/models (reference only: its pack is built in a tmp dir at test time, never committed).

`rekface models verify` and `calibrate` on it (a small subset of ../shared/faces), then
`rekface serve --packs-dir`: a 2.0 collection beside a 1.0 one through boto3, each indexed,
searched and reporting its own FaceModelVersion; served again without the pack, the 2.0
collection answers a 4xx naming the version while the 1.0 one still works.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from rekface.models_cli import photos
from tests.integration.test_cli import BIN, free_port

REPO = Path(__file__).resolve().parents[2]
REFERENCE_MODEL = REPO.parent / "shared" / "models" / "mobilefacenet_expo.onnx"
ARCFACE_112 = [
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
]
pytestmark = pytest.mark.slow


def rekface(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "rekface"), *args], capture_output=True, text=True, timeout=timeout
    )


def make_pack(folder: Path, **changes) -> Path:
    """The reference model as a pack, as a user would write it."""
    assert REFERENCE_MODEL.is_file(), f"missing {REFERENCE_MODEL} (../shared/models)"
    folder.mkdir(parents=True)
    shutil.copyfile(REFERENCE_MODEL, folder / "model.onnx")
    pack = {
        "name": "mobilefacenet-expo",
        "face_model_version": "2.0",
        "onnx": "model.onnx",
        "sha256": hashlib.sha256((folder / "model.onnx").read_bytes()).hexdigest(),
        "input": {"size": 112, "layout": "NCHW", "channels": "RGB", "mean": 127.5, "std": 128.0},
        "alignment": {"size": 112, "template": ARCFACE_112},
        "output": {"name": "embeddings", "dims": 192},
        "flip": True,
        "license": "reference only (../shared/models/MANIFEST.tsv): may not ship",
        "source": "../shared/models/mobilefacenet_expo.onnx",
        **changes,
    }
    (folder / "pack.json").write_text(json.dumps(pack, indent=1))
    return folder


def link_subset(faces_dir: Path, root: Path, identities: int, singletons: int) -> Path:
    """Symlinks to the first people of ../shared/faces (the photos stay where they are)."""
    for kind, count in (("identities", identities), ("singletons", singletons)):
        (root / kind).mkdir(parents=True)
        for person in sorted((faces_dir / kind).iterdir())[:count]:
            (root / kind / person.name).symlink_to(person)
    return root


@pytest.fixture(scope="module")
def pack(tmp_path_factory, faces_dir) -> Path:
    """The reference pack, calibrated on 120 people with several photos + 400 singletons (970
    photos, ~1 min: fewer people leave too few different-person pairs for Similarity 99's
    false-match rate, and calibrate refuses, as it must)."""
    folder = make_pack(tmp_path_factory.mktemp("packs") / "mobilefacenet")
    subset = link_subset(faces_dir, tmp_path_factory.mktemp("subset"), 120, 400)
    count = len(photos(subset / "identities", subset / "singletons"))
    out = rekface(
        "models", "calibrate", str(folder),
        "--identities", str(subset / "identities"),
        "--singletons", str(subset / "singletons"),
        "--bootstraps", "20",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert f"embedded {count}/{count} photos" in out.stderr and f"wrote {folder}" in out.stderr
    assert "Similarity 80:" in out.stdout
    return folder


def test_verify_checks_the_pack_and_names_what_is_broken(tmp_path):
    good = make_pack(tmp_path / "good")
    out = rekface("models", "verify", str(good))
    assert out.returncode == 0, out.stderr
    assert "sha256 ok, shapes ok" in out.stdout and "192 values, finite, unit length" in out.stdout
    assert "calibration.json: missing" in out.stdout

    wide = make_pack(tmp_path / "wide", output={"name": "embeddings", "dims": 128})
    out = rekface("models", "verify", str(wide))
    assert out.returncode == 1 and "'output.dims'" in out.stderr and "[N, 128]" in out.stderr

    layout = make_pack(
        tmp_path / "layout",
        input={"size": 112, "layout": "NHWC", "channels": "RGB", "mean": 127.5, "std": 128.0},
    )
    out = rekface("models", "verify", str(layout))
    assert out.returncode == 1 and "input.layout/input.size" in out.stderr

    corrupt = make_pack(tmp_path / "corrupt")
    with (corrupt / "model.onnx").open("r+b") as fh:
        fh.seek(1000)
        fh.write(b"\0\1\2\3")
    out = rekface("models", "verify", str(corrupt))
    assert out.returncode == 1 and "differs from field 'sha256'" in out.stderr

    out = rekface("models", "verify", "9.9")
    assert out.returncode == 1 and "face model version 9.9 is not available" in out.stderr


def test_calibration_and_listing(pack):
    fitted = json.loads((pack / "calibration.json").read_text())
    pack_json = json.loads((pack / "pack.json").read_text())
    assert fitted["model_sha256"] == pack_json["sha256"] and fitted["face_model_version"] == "2.0"
    assert fitted["knots"][0] == [-1.0, 0.0] and fitted["knots"][-1] == [1.0, 100.0]
    assert {"80", "90", "99"} <= set(fitted["measured"])
    out = rekface("models", "list", "--packs-dir", str(pack))
    assert out.returncode == 0
    rows = {line.split()[0]: line.split() for line in out.stdout.splitlines()[1:]}
    assert rows["1.0"][2] == "128" and rows["2.0"][2] == "192" and rows["2.0"][-2] == "yes"
    out = rekface("models", "verify", "2.0", "--packs-dir", str(pack))
    assert out.returncode == 0 and "calibration: Similarity 80 / 90 / 99" in out.stdout


class Served:
    def __init__(self, data_dir: Path, *args: str) -> None:
        port = free_port()
        self.proc = subprocess.Popen(
            [
                str(BIN / "rekface"),
                "serve",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        line = self.proc.stdout.readline()
        assert f"listening on http://127.0.0.1:{port}" in line, line
        self.client = boto3.client(
            "rekognition",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
            config=Config(retries={"max_attempts": 1}),
        )

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)


@pytest.fixture
def serving(tmp_path) -> Iterator:
    servers: list[Served] = []

    def start(*args: str) -> Served:
        server = Served(tmp_path / "data", *args)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def people(faces_dir: Path) -> list[list[Path]]:
    """People the calibration subset did not see (of the last folders), three photos each."""
    folders = sorted((faces_dir / "identities").iterdir())[-40:]
    return [sorted(f.glob("*.jpg"))[:3] for f in folders if len(list(f.glob("*.jpg"))) >= 3][:2]


def image(path: Path) -> dict:
    return {"Bytes": path.read_bytes()}


def test_collections_keep_their_face_model_version(pack, faces_dir, serving):
    (alice, bob) = people(faces_dir)
    # A 1.0 collection (the default), then the server restarted with 2.0 as the default.
    rek = serving("--packs-dir", str(pack)).client
    assert rek.create_collection(CollectionId="v1")["FaceModelVersion"] == "1.0"
    serving_v1 = rek
    rek = serving("--packs-dir", str(pack), "--face-model-version", "2.0").client
    assert rek.create_collection(CollectionId="v2")["FaceModelVersion"] == "2.0"
    assert serving_v1.describe_collection(CollectionId="v2")["FaceModelVersion"] == "2.0"

    listed = rek.list_collections()
    assert dict(zip(listed["CollectionIds"], listed["FaceModelVersions"], strict=True)) == {
        "v1": "1.0",
        "v2": "2.0",
    }
    for collection, version in (("v1", "1.0"), ("v2", "2.0")):
        assert rek.describe_collection(CollectionId=collection)["FaceModelVersion"] == version
        indexed = rek.index_faces(
            CollectionId=collection, Image=image(alice[0]), ExternalImageId="alice", MaxFaces=1
        )
        assert indexed["FaceModelVersion"] == version
        face_id = indexed["FaceRecords"][0]["Face"]["FaceId"]
        assert indexed["FaceRecords"][0]["Face"]["IndexFacesModelVersion"] == version
        rek.index_faces(
            CollectionId=collection, Image=image(bob[0]), ExternalImageId="bob", MaxFaces=1
        )
        listed = rek.list_faces(CollectionId=collection)
        assert listed["FaceModelVersion"] == version and len(listed["Faces"]) == 2
        assert {f["IndexFacesModelVersion"] for f in listed["Faces"]} == {version}

        # Another photo of alice finds alice, and not bob, with this collection's pack.
        found = rek.search_faces_by_image(CollectionId=collection, Image=image(alice[1]))
        assert found["FaceModelVersion"] == version
        assert [m["Face"]["ExternalImageId"] for m in found["FaceMatches"]] == ["alice"]
        assert found["FaceMatches"][0]["Similarity"] >= 80
        by_id = rek.search_faces(CollectionId=collection, FaceId=face_id, FaceMatchThreshold=0)
        assert by_id["FaceModelVersion"] == version
        assert [m["Face"]["ExternalImageId"] for m in by_id["FaceMatches"]] == ["bob"]
        assert by_id["FaceMatches"][0]["Similarity"] < 80

        # Users: a centroid of the collection's width, scored by its calibration.
        second = rek.index_faces(CollectionId=collection, Image=image(alice[2]), MaxFaces=1)
        rek.create_user(CollectionId=collection, UserId="alice")
        associated = rek.associate_faces(
            CollectionId=collection,
            UserId="alice",
            FaceIds=[face_id, second["FaceRecords"][0]["Face"]["FaceId"]],
        )
        assert len(associated["AssociatedFaces"]) == 2
        users = rek.search_users_by_image(CollectionId=collection, Image=image(alice[1]))
        assert users["FaceModelVersion"] == version
        assert [u["User"]["UserId"] for u in users["UserMatches"]] == ["alice"]
        users = rek.search_users(CollectionId=collection, FaceId=face_id)
        assert users["FaceModelVersion"] == version and users["UserMatches"]

    # CompareFaces uses the server's default pack (2.0 here).
    compared = rek.compare_faces(SourceImage=image(alice[0]), TargetImage=image(alice[1]))
    assert compared["FaceMatches"][0]["Similarity"] >= 80


def test_a_collection_whose_pack_is_missing_answers_a_4xx(pack, faces_dir, serving):
    (alice, _) = people(faces_dir)
    rek = serving("--packs-dir", str(pack), "--face-model-version", "2.0").client
    rek.create_collection(CollectionId="v2")
    face_id = rek.index_faces(CollectionId="v2", Image=image(alice[0]))["FaceRecords"][0]["Face"][
        "FaceId"
    ]
    rek.create_user(CollectionId="v2", UserId="u")
    # Served again without the pack: the collection still exists and says what it needs.
    rek = serving().client
    assert rek.describe_collection(CollectionId="v2")["FaceModelVersion"] == "2.0"
    assert rek.list_faces(CollectionId="v2")["Faces"][0]["FaceId"] == face_id
    calls = [
        lambda: rek.index_faces(CollectionId="v2", Image=image(alice[1])),
        lambda: rek.search_faces_by_image(CollectionId="v2", Image=image(alice[1])),
        lambda: rek.search_faces(CollectionId="v2", FaceId=face_id),
        lambda: rek.search_users(CollectionId="v2", FaceId=face_id),
        lambda: rek.search_users_by_image(CollectionId="v2", Image=image(alice[1])),
        lambda: rek.associate_faces(CollectionId="v2", UserId="u", FaceIds=[face_id]),
    ]
    for call in calls:
        with pytest.raises(ClientError) as err:
            call()
        error = err.value.response
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert error["Error"]["Code"] == "InvalidParameterException"
        assert "face model version 2.0" in error["Error"]["Message"]
    # A 1.0 collection beside it works as before.
    rek.create_collection(CollectionId="v1")
    assert rek.index_faces(CollectionId="v1", Image=image(alice[0]))["FaceModelVersion"] == "1.0"
