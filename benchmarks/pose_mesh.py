"""Head pose: the 5-point estimate (DEFAULT) against the mesh's 3D fit, mirrored and rotated.

No photo here has a measured head pose, so the test is what must hold whatever the truth is:
- mirror a photo: Yaw and Roll change sign, Pitch stays (error = |yaw + yaw'|, |roll + roll'|,
  |pitch - pitch'|);
- rotate it in the plane by a known angle: Roll follows the angle, Yaw and Pitch stay;
- and, on the photos of ../shared/faces/attributes.tsv labelled pose_extreme, and on
  tools/attributes/gaze_labels.tsv's head-turn column, the sign and size of Yaw.

Photos: the ``random`` rows of attributes.tsv (one per person), the face nearest the centre.

usage: python benchmarks/pose_mesh.py [N]   (N photos, default 100)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.attribute_labels import attribute_photos  # noqa: E402
from benchmarks.shared_faces import labelled_face, load  # noqa: E402
from rekface.engine.attributes.headpose import mesh_pose  # noqa: E402
from rekface.engine.decode import DecodedImage  # noqa: E402
from rekface.engine.faces import FaceEngine  # noqa: E402
from rekface.engine.pose import Pose  # noqa: E402
from rekface.settings import Settings  # noqa: E402

ANGLES = (-30, -15, 15, 30)


def both_poses(engine: FaceEngine, image: DecodedImage) -> tuple[Pose, Pose] | None:
    face = labelled_face(engine.detect(image), image)
    if face is None:
        return None
    a = engine.attributes.analysis(image.rgb, face)
    return face.pose, mesh_pose(a.mesh.points)


def transformed(image: DecodedImage, rgb: np.ndarray) -> DecodedImage:
    h, w = rgb.shape[:2]
    return DecodedImage(rgb=np.ascontiguousarray(rgb), width=w, height=h, format=image.format)


def rotate(image: DecodedImage, degrees: float) -> DecodedImage:
    """Counter-clockwise on screen by ``degrees`` (Pillow's sense), canvas grown to fit."""
    im = Image.fromarray(image.rgb).rotate(degrees, Image.BILINEAR, expand=True)
    return transformed(image, np.asarray(im))


def summary(errors: list[float]) -> str:
    e = np.abs(np.asarray(errors))
    return f"median {np.median(e):5.2f}  p90 {np.percentile(e, 90):5.2f}  max {e.max():6.2f}"


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    engine = FaceEngine(Settings())
    rows = [r for r in attribute_photos() if r.random][:n]
    err: dict[str, dict[str, list[float]]] = {m: {} for m in ("5-point", "mesh")}

    def add(method: str, key: str, value: float) -> None:
        err[method].setdefault(key, []).append(value)

    used = 0
    for r in rows:
        image = load(r.file)
        base = both_poses(engine, image)
        mirror = both_poses(engine, transformed(image, image.rgb[:, ::-1]))
        if base is None or mirror is None:
            continue
        used += 1
        for method, p, q in zip(("5-point", "mesh"), base, mirror, strict=True):
            add(method, "mirror yaw |y + y'|", p.yaw + q.yaw)
            add(method, "mirror roll |r + r'|", p.roll + q.roll)
            add(method, "mirror pitch |p - p'|", p.pitch - q.pitch)
        for angle in ANGLES:
            rot = both_poses(engine, rotate(image, angle))
            if rot is None:
                add("5-point", "rotation: face lost", 1)
                continue
            for method, p, q in zip(("5-point", "mesh"), base, rot, strict=True):
                add(method, "rotation roll error", (q.roll - p.roll) + angle)
                add(method, "rotation yaw change", q.yaw - p.yaw)
                add(method, "rotation pitch change", q.pitch - p.pitch)
    print(f"{used} photos (random rows of attributes.tsv); rotations by {ANGLES} degrees")
    print("degrees                       5-point (DEFAULT)                      mesh (3D fit)")
    for key in err["mesh"]:
        print(f"{key:24s}  {summary(err['5-point'][key])}   {summary(err['mesh'][key])}")
    lost = len(err["5-point"].get("rotation: face lost", []))
    print(f"faces lost after rotation: {lost} of {used * len(ANGLES)}")


if __name__ == "__main__":
    main()
