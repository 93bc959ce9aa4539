"""Access to ../shared/faces for benchmarks and tools (never copied into the repository).

The photos are read in place. One file of identities/ is a WebP named .jpg: Rekognition (and
rekface) refuse it, so for measurements it is converted to PNG in memory, as a user would.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from rekface.engine.decode import DecodedImage, decode_image
from rekface.engine.faces import Face, FaceEngine

REPO = Path(__file__).resolve().parents[1]
SHARED_FACES = Path(os.environ.get("REKFACE_SHARED_FACES", REPO.parent / "shared" / "faces"))
# deepface_person_* folders are probably these LFW people: never pair them as "different".
ALIASED_NAMES = frozenset({"Jennifer_Aniston", "Matt_Damon", "Leonardo_DiCaprio", "George_Clooney"})


def image_bytes(rel: str) -> bytes:
    data = (SHARED_FACES / rel).read_bytes()
    if data.startswith(b"\xff\xd8\xff") or data.startswith(b"\x89PNG"):
        return data
    buf = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").save(buf, "PNG")
    return buf.getvalue()


def load(rel: str) -> DecodedImage:
    return decode_image(image_bytes(rel))


def labelled_face(faces: list[Face], image: DecodedImage) -> Face | None:
    """The face a dataset label refers to: LFW-style crops centre the labelled person, and in a
    few of them another, larger face is cut by the edge. The product itself always takes the
    largest face (``faces[0]``); benchmarks report both."""
    if not faces:
        return None
    h, w = image.rgb.shape[:2]
    centre = np.array([w / 2, h / 2])
    return min(faces, key=lambda f: float(np.linalg.norm((f.box[:2] + f.box[2:]) / 2 - centre)))


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    same: bool


def pairs() -> list[Pair]:
    with (SHARED_FACES / "pairs.tsv").open() as fh:
        return [
            Pair(r["img_a"], r["img_b"], r["same"] == "1")
            for r in csv.DictReader(fh, delimiter="\t")
        ]


def tenfold_ids(labels: np.ndarray) -> np.ndarray:
    """Fold of each pair: same and different pairs dealt round-robin into 10 folds, in order."""
    folds = np.zeros(len(labels), int)
    for v in (True, False):
        idx = np.where(labels == v)[0]
        folds[idx] = np.arange(len(idx)) % 10
    return folds


def identity_photos() -> Iterator[tuple[str, str]]:
    """(person, relative path) for every photo of identities/, sorted."""
    root = SHARED_FACES / "identities"
    for person in sorted(os.listdir(root)):
        for name in sorted(os.listdir(root / person), key=lambda n: (len(n), n)):
            yield person, f"identities/{person}/{name}"


def may_pair_as_different(person_a: str, person_b: str) -> bool:
    if person_a == person_b:
        return False
    a_alias = person_a.startswith("deepface_person_")
    b_alias = person_b.startswith("deepface_person_")
    return not ((a_alias and person_b in ALIASED_NAMES) or (b_alias and person_a in ALIASED_NAMES))


def embed_labelled(engine: FaceEngine, rel: str) -> np.ndarray | None:
    image = load(rel)
    face = labelled_face(engine.detect(image), image)
    if face is None:
        return None
    engine.embed([face])
    return face.embedding
