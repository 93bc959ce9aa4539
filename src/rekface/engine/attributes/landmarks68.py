"""68 face landmarks (iBUG order) with face-api's landmark net, and Rekognition's landmark types.

Graph contract (``faceapi_landmark68.onnx``): input ``input`` float32 [N, 112, 112, 3] RGB 0..255
(normalisation inside the graph), the face square padded with zeros; output ``landmarks``
[N, 136], x, y in 0..1 of that square.

face-api runs the net on its detector's box, then computes age, gender and expressions on the box
of the 68 points padded by 20 % ("aligned box"). Our detector's box is not face-api's, so the net
runs twice: once on the detector box, once on the aligned box of the first answer, which puts the
face where the net expects it whatever detector produced the box. The square is turned by the
face's roll (from the detector's eyes), so tilted faces reach the net upright.

iBUG-68 indices are in the image's frame: 0..16 jaw from the image-left ear to the image-right
one, 17..21 image-left brow, 22..26 image-right brow, 31/35 nose wings, 36..41 image-left eye
(36 outer corner, 39 inner, 37-38 upper lid, 40-41 lower), 42..47 image-right eye (42 inner,
45 outer), 48/54 mouth corners, 51/57 outer lip top/bottom centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from rekface.engine.crops import Crop, rotate_points, square_crop

INPUT_SIZE = 112
ALIGN_PAD = 0.2  # face-api's FaceLandmarks.align() default

# Rekognition landmark type -> iBUG indices whose mean it is. "Left"/"right" are the image's, as
# for the 5 main landmarks (AWS's examples give eyeLeft the smaller X).
REKOGNITION_FROM_68: dict[str, tuple[int, ...]] = {
    "leftEyeBrowLeft": (17,),
    "leftEyeBrowUp": (19,),
    "leftEyeBrowRight": (21,),
    "rightEyeBrowLeft": (22,),
    "rightEyeBrowUp": (24,),
    "rightEyeBrowRight": (26,),
    "leftEyeLeft": (36,),
    "leftEyeRight": (39,),
    "leftEyeUp": (37, 38),
    "leftEyeDown": (40, 41),
    "rightEyeLeft": (42,),
    "rightEyeRight": (45,),
    "rightEyeUp": (43, 44),
    "rightEyeDown": (46, 47),
    "noseLeft": (31,),
    "noseRight": (35,),
    "mouthUp": (51,),
    "mouthDown": (57,),
    # The jaw contour from ear to ear: upper = at the ear (eye height), mid = at mouth height.
    "upperJawlineLeft": (0,),
    "midJawlineLeft": (4,),
    "chinBottom": (8,),
    "midJawlineRight": (12,),
    "upperJawlineRight": (16,),
}


# iBUG-68 index of each point's mirror twin (a left-right flip of the face).
MIRROR_68 = np.array(
    [*range(16, -1, -1), *range(26, 21, -1), *range(21, 16, -1), 27, 28, 29, 30,
     *range(35, 30, -1), 45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40,
     *range(54, 47, -1), *range(59, 54, -1), *range(64, 59, -1), 67, 66, 65],
    np.int64,
)  # fmt: skip


def box_square(box: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre and side of the square face-api pads a box to."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2]), max(x2 - x1, y2 - y1)


def aligned_square(
    points: np.ndarray, angle: float, pad: float = ALIGN_PAD
) -> tuple[np.ndarray, float]:
    """Centre and side of the square of face-api's aligned box: the bounding box of the 68
    points (in the face's upright frame) grown by ``pad`` of its width and height."""
    p = np.asarray(points, np.float64)
    ctr = p.mean(0)
    upright = rotate_points(p, ctr, -angle)
    lo, hi = upright.min(0), upright.max(0)
    size = (hi - lo) * (1.0 + pad)
    centre = rotate_points((lo + hi) / 2, ctr, angle)
    return centre, float(max(size))


def decode(raw: np.ndarray, crop: Crop) -> np.ndarray:
    """One row of the net's output ([136], 0..1 of the square) -> [68, 2] image pixels."""
    return crop.points_to_image(np.asarray(raw, np.float64).reshape(68, 2) * INPUT_SIZE)


def rekognition_landmarks(points68: np.ndarray) -> dict[str, tuple[float, float]]:
    """Rekognition landmark types derivable from the 68 points (pupils come from the iris
    model; the 5 main types from the detector) -> (x, y) image pixels."""
    p = np.asarray(points68, np.float64)
    return {
        name: (float(p[list(idx), 0].mean()), float(p[list(idx), 1].mean()))
        for name, idx in REKOGNITION_FROM_68.items()
    }


@dataclass(frozen=True)
class Landmarks68Result:
    points: np.ndarray  # [68, 2] image pixels
    aligned: Crop  # the 112 px crop of the aligned box, input of age/gender and expressions


class Landmarks68:
    def __init__(self, session: ort.InferenceSession) -> None:
        self._session = session

    def _run(
        self, rgb: np.ndarray, centre: np.ndarray, side: float, angle: float, mirror: bool
    ) -> np.ndarray:
        crop = square_crop(rgb, centre, side, angle, INPUT_SIZE)
        if not mirror:
            raw = self._session.run(["landmarks"], {"input": crop.pixels[None]})[0][0]
            return decode(raw, crop)
        # The crop and its mirror image in one batch; the mirror's points are flipped back and
        # renumbered to their twins, and the two answers averaged (halves the net's jitter).
        x = np.stack([crop.pixels, crop.pixels[:, ::-1]])
        raw = self._session.run(["landmarks"], {"input": x})[0].reshape(2, 68, 2)
        flipped = raw[1][MIRROR_68].copy()
        flipped[:, 0] = 1.0 - flipped[:, 0]
        return decode((raw[0] + flipped) / 2, crop)

    def run(self, rgb: np.ndarray, box: np.ndarray, angle: float) -> Landmarks68Result:
        centre, side = box_square(box)
        points = self._run(rgb, centre, side, angle, mirror=False)
        centre, side = aligned_square(points, angle)
        points = self._run(rgb, centre, side, angle, mirror=True)
        centre, side = aligned_square(points, angle)
        return Landmarks68Result(points, square_crop(rgb, centre, side, angle, INPUT_SIZE))
