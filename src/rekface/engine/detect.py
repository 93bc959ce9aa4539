"""Face detection with RetinaFace MobileNet-0.25: pre-processing, prior decode and NMS in numpy.

Graph contract (``retinaface_mnet025.onnx``): input ``input`` float32 [N, 3, H, W], BGR minus
(104, 117, 123), H and W multiples of 32; outputs ``loc`` [N, A, 4] box deltas, ``conf`` [N, A, 2]
softmax (background, face), ``landmarks`` [N, A, 10]. Priors: strides 8/16/32 with sizes 16/32,
64/128, 256/512 px, ordered row, column, size; variances 0.1 and 0.2.

Landmark order: 0 the eye on the image's left, 1 the eye on the image's right, 2 the nose tip,
3 the mouth corner on the image's left, 4 the one on the image's right. That is Rekognition's
eyeLeft, eyeRight, nose, mouthLeft, mouthRight (in AWS's examples eyeLeft has the smaller X).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort
from PIL import Image

MEAN_BGR = np.array([104.0, 117.0, 123.0], np.float32)
STEPS = (8, 16, 32)
MIN_SIZES = ((16, 32), (64, 128), (256, 512))
VARIANCES = (0.1, 0.2)

# Detection runs on a copy whose long side is at most this: measured in ../shared/models/README.md,
# a larger input finds no more real faces and starts scoring animal faces as human.
DETECT_MAX_SIDE = 640


@dataclass(frozen=True)
class DetectorConfig:
    """Chosen on ../shared/faces (tools/calibration/fit_detector.py prints the table):

    - at 0.7 every labelled face of the group photos is found and one largest face of 2,781
      identity photos is missed (at 0.8: 2, at 0.85: 3);
    - the one non-face above 0.7 (a dog at 0.81) has landmarks no face can have (nose above the
      eyes), so detections below ``verify_below`` must also have a plausible landmark layout;
      above it the check is skipped because faces cut by the image edge, which the detector scores
      high, extrapolate landmarks that may fail it.
    """

    score_threshold: float = 0.7
    verify_below: float = 0.9
    nms_iou: float = 0.4
    pre_nms_top_k: int = 5000


@dataclass(frozen=True)
class Detections:
    """Faces found in one image, in pixels of the image given to ``detect``."""

    boxes: np.ndarray  # [N, 4] x1, y1, x2, y2
    scores: np.ndarray  # [N] 0..1
    points: np.ndarray  # [N, 5, 2] x, y

    def __len__(self) -> int:
        return len(self.scores)


@functools.lru_cache(maxsize=32)
def priors(height: int, width: int) -> np.ndarray:
    """Prior boxes (cx, cy, w, h) in pixels of the padded input, in the graph's output order."""
    out = []
    for step, sizes in zip(STEPS, MIN_SIZES, strict=True):
        fh, fw = -(-height // step), -(-width // step)
        ys, xs = np.meshgrid(
            np.arange(fh, dtype=np.float32), np.arange(fw, dtype=np.float32), indexing="ij"
        )
        cx = (xs.ravel() + 0.5) * step
        cy = (ys.ravel() + 0.5) * step
        per = [np.stack([cx, cy, np.full_like(cx, s), np.full_like(cx, s)], 1) for s in sizes]
        out.append(np.stack(per, 1).reshape(-1, 4))
    result = np.concatenate(out)
    result.setflags(write=False)
    return result


def preprocess(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB -> [1, 3, H', W'] float32 BGR minus the mean, padded to multiples of 32.

    The padding is zero after the mean is subtracted, i.e. the mean colour, as in training."""
    h, w = rgb.shape[:2]
    hp, wp = -(-h // 32) * 32, -(-w // 32) * 32
    x = np.zeros((1, 3, hp, wp), np.float32)
    # Channel by channel straight into NCHW: 8x faster than converting HWC then transposing.
    for c in range(3):
        np.subtract(rgb[:, :, 2 - c], MEAN_BGR[c], out=x[0, c, :h, :w], casting="unsafe")
    return x


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression; indices of the kept boxes, best first."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes.T
    area = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        iw = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        ih = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = iw * ih
        iou = inter / (area[i] + area[rest] - inter + 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, np.int64)


def decode(
    loc: np.ndarray,
    conf: np.ndarray,
    landmarks: np.ndarray,
    input_hw: tuple[int, int],
    config: DetectorConfig,
) -> Detections:
    """One image's raw outputs ([A,4], [A,2], [A,10]) -> detections in network-input pixels."""
    scores = conf[:, 1]
    idx = np.nonzero(scores >= config.score_threshold)[0]
    if idx.size > config.pre_nms_top_k:
        idx = idx[np.argsort(-scores[idx])[: config.pre_nms_top_k]]
    p = priors(*input_hw)[idx]
    d, lm, s = loc[idx], landmarks[idx], scores[idx]
    centre = p[:, :2] + d[:, :2] * VARIANCES[0] * p[:, 2:]
    size = p[:, 2:] * np.exp(d[:, 2:] * VARIANCES[1])
    boxes = np.concatenate([centre - size / 2, centre + size / 2], 1)
    points = p[:, None, :2] + lm.reshape(-1, 5, 2) * VARIANCES[0] * p[:, None, 2:]
    keep = nms(boxes, s, config.nms_iou)
    keep = np.array(
        [i for i in keep if s[i] >= config.verify_below or plausible_landmarks(points[i])],
        np.int64,
    )
    return Detections(boxes[keep], s[keep], points[keep])


def plausible_landmarks(points: np.ndarray) -> bool:
    """Whether 5 landmarks are laid out like a face: measured along the eye line, the left eye and
    mouth corner are left of their right twins, and eyes, nose and mouth come in that order down
    the face."""
    p = np.asarray(points, np.float64).reshape(5, 2)
    axis = p[1] - p[0]
    norm = float(np.hypot(*axis))
    if norm == 0.0:
        return False
    ux = axis / norm
    uy = np.array([-ux[1], ux[0]])  # 90 degrees clockwise on screen: "down" the face
    x, y = p @ ux, p @ uy
    eyes_y, nose_y, mouth_y = (y[0] + y[1]) / 2, y[2], (y[3] + y[4]) / 2
    return bool(x[3] < x[4] and eyes_y < nose_y < mouth_y)


def detection_scale(width: int, height: int) -> float:
    return min(1.0, DETECT_MAX_SIDE / max(width, height))


class Detector:
    def __init__(self, session: ort.InferenceSession, config: DetectorConfig | None = None) -> None:
        self._session = session
        self.config = config or DetectorConfig()

    def detect(self, rgb: np.ndarray) -> Detections:
        """Faces in an HxWx3 uint8 RGB image, in its pixels (boxes not clipped: a face cut by the
        edge keeps its full extent, as Rekognition reports it)."""
        h, w = rgb.shape[:2]
        scale = detection_scale(w, h)
        small = rgb
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            small = np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))
        x = preprocess(small)
        loc, conf, lms = self._session.run(["loc", "conf", "landmarks"], {"input": x})
        found = decode(loc[0], conf[0], lms[0], (x.shape[2], x.shape[3]), self.config)
        # Map back to the given image's pixels (the exact per-axis ratio of the resize).
        sx, sy = w / small.shape[1], h / small.shape[0]
        boxes = found.boxes * np.array([sx, sy, sx, sy], np.float32)
        points = found.points * np.array([sx, sy], np.float32)
        return Detections(boxes, found.scores, points)
