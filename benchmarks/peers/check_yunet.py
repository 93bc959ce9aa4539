"""Check the benchmark's numpy YuNet decoder against OpenCV's own ``cv2.FaceDetectorYN``.

    PYTHONPATH=src .venv-peers/bin/python -m benchmarks.peers.check_yunet   (run by bench-peers)

Both get the same BGR image (long side capped at 640 px, as in the benchmark) at its own size;
the script fails unless they find the same faces with the same boxes, points and scores. OpenCV is
only in .venv-peers: the project itself does not depend on it.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from benchmarks.peers.detectors import SHARED_MODELS, YuNet, capped
from benchmarks.shared_faces import SHARED_FACES, load

TOLERANCE_PX = 0.05
TOLERANCE_SCORE = 1e-4


def photos() -> list[str]:
    out = [f"groups/{n}" for n in sorted(os.listdir(SHARED_FACES / "groups"))]
    out += [f"nofaces/{n}" for n in sorted(os.listdir(SHARED_FACES / "nofaces"))]
    people = sorted(os.listdir(SHARED_FACES / "identities"))
    out += [f"identities/{p}/1.jpg" for p in people[::10]]
    return out


def main() -> int:
    import cv2  # only in .venv-peers

    # Errors only: OpenCV 5 warns about its new graph engine on every image.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    ours = YuNet(threads=1)
    path = str(SHARED_MODELS / "face_detection_yunet_2023mar.onnx")
    cv = cv2.FaceDetectorYN.create(path, "", (320, 320), ours.score, ours.nms_iou, 5000)
    worst_px = worst_score = 0.0
    failures = []
    checked = 0
    for rel in photos():
        small, _ = capped(load(rel).rgb)
        h, w = small.shape[:2]
        cv.setInputSize((w, h))
        _, ref = cv.detect(np.ascontiguousarray(small[:, :, ::-1]))
        ref = np.zeros((0, 15), np.float32) if ref is None else ref[np.argsort(-ref[:, 14])]
        mine = ours.detect(small)
        checked += 1
        if len(ref) != len(mine):
            failures.append(f"{rel}: OpenCV {len(ref)} faces, ours {len(mine)}")
            continue
        if not len(ref):
            continue
        order = np.argsort(-mine.scores)
        ref_boxes = np.c_[ref[:, :2], ref[:, :2] + ref[:, 2:4]]
        assert mine.points is not None
        px = max(
            float(np.abs(mine.boxes[order] - ref_boxes).max()),
            float(np.abs(mine.points[order] - ref[:, 4:14].reshape(-1, 5, 2)).max()),
        )
        sc = float(np.abs(mine.scores[order] - ref[:, 14]).max())
        worst_px, worst_score = max(worst_px, px), max(worst_score, sc)
        if px > TOLERANCE_PX or sc > TOLERANCE_SCORE:
            failures.append(f"{rel}: differs by {px:.3f} px, score by {sc:.2e}")
    print(
        f"YuNet decoder vs cv2.FaceDetectorYN {cv2.__version__}: {checked} photos, "
        f"max difference {worst_px:.2e} px, {worst_score:.2e} in score"
    )
    for f in failures:
        print("  MISMATCH", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
