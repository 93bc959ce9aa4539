"""Build the canonical face mesh for head pose from the mesh's 3D points and write
src/rekface/engine/attributes/mesh_canonical.json.

The wheel of MediaPipe that our mesh model comes from does not ship its canonical 3D face model,
so we build one: the generalised-Procrustes mean (rotation + scale, 3D) of the meshes of the first
photo of every person in ../shared/faces/identities, each also mirrored (x -> -x with the mesh's
left/right point pairs swapped) so that the mean is exactly symmetric. Starting from the plain
average of the meshes in camera coordinates keeps the mean in the photos' average orientation,
so a typical frontal photo reads Yaw, Pitch, Roll about 0 (the convention of the 5-point pose).

usage: python tools/attributes/fit_mesh_pose.py [--check]   (--check: print, don't write)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from benchmarks.attribute_labels import analyses  # noqa: E402
from benchmarks.shared_faces import identity_photos  # noqa: E402
from rekface.engine.attributes.headpose import CANONICAL_FILE, rotation_to  # noqa: E402
from rekface.engine.faces import FaceEngine  # noqa: E402
from rekface.settings import Settings  # noqa: E402


def normalise(p: np.ndarray) -> np.ndarray:
    p = p - p.mean(0)
    return p / np.sqrt((p**2).sum(1).mean())


def mirror_pairs(mean: np.ndarray) -> np.ndarray:
    """Index of each point's mirror twin: the nearest point of the x-mirrored mean shape, once
    that mirror image is aligned onto the mean (the mean's own symmetry plane need not be x = 0
    yet); nearest neighbours and alignment alternate until they agree."""
    m = mean.copy()
    m[:, 0] = -m[:, 0]
    twin = np.arange(len(mean))
    for _ in range(10):
        d = np.linalg.norm(mean[:, None, :] - m[None, :, :], axis=2)
        twin = d.argmin(1)
        m = (m - m.mean(0)) @ rotation_to(m[twin], mean).T
    if not (twin[twin] == np.arange(len(mean))).all():
        raise SystemExit("mirror matching is not a clean involution")
    return twin


def gpa(shapes: list[np.ndarray], iterations: int = 10) -> np.ndarray:
    mean = normalise(np.mean(shapes, 0))
    for _ in range(iterations):
        aligned = [normalise(s) @ rotation_to(s, mean).T for s in shapes]
        mean = normalise(np.mean(aligned, 0))
    return mean


def main() -> None:
    engine = FaceEngine(Settings())
    firsts: dict[str, str] = {}
    for person, rel in identity_photos():
        firsts.setdefault(person, rel)
    meshes = [normalise(a.mesh.points) for _, a in analyses(engine, list(firsts.values()))]
    first = gpa(meshes)
    # A first mean finds the left/right twins; a second, with every mesh also mirrored, is exactly
    # symmetric.
    twin = mirror_pairs(first)
    mirrored = []
    for m in meshes:
        f = m[twin].copy()
        f[:, 0] = -f[:, 0]
        mirrored.append(f)
    mean = gpa(meshes + mirrored)
    # Symmetrise exactly (the GPA mean of a symmetric set is symmetric up to rounding).
    sym = mean[twin].copy()
    sym[:, 0] = -sym[:, 0]
    mean = normalise((mean + sym) / 2)
    print(f"canonical mesh from {len(meshes)} photos (+ mirrors)")
    text = json.dumps(
        {
            "source": "tools/attributes/fit_mesh_pose.py: GPA mean of first photos of "
            "../shared/faces/identities and their mirror images",
            "n_photos": len(meshes),
            "mirror_twin": twin.tolist(),
            "points": [[round(float(v), 5) for v in p] for p in mean],
        }
    )
    if "--check" in sys.argv:
        print(text[:400], "...")
    else:
        CANONICAL_FILE.write_text(text + "\n")
        print(f"wrote {CANONICAL_FILE.relative_to(REPO)}")


if __name__ == "__main__":
    main()
