"""An int8 candidate of the dlib ResNet: onnxruntime static quantization of the shipped fp32 graph,
calibrated on aligned chips of ../shared/faces (issue 20 §3).

Two steps, because the chips come from the product's own pipeline (RetinaFace landmarks ->
``face_chip``), which lives in the product's venv, while quantization needs ``onnx`` (a build tool,
in ``.venv-models`` only):

  .venv/bin/python tools/models/dlib_int8.py chips CHIPS.npy
      the labelled face of one photo of every singletons/ person (400 people that the accuracy
      figures, made on identities/ pairs, never use), and each chip's mirror image (the engine
      embeds both), as float32 [N, 150, 150, 3]; written to a tmp path, never into the repository
  .venv-models/bin/python tools/models/dlib_int8.py build CHIPS.npy OUT.onnx
      QDQ static quantization: int8 per-channel weights, uint8 activations, MinMax ranges
      (percentile and entropy calibration were not better here, see docs/recognition-accuracy.md).
      The input normalisation (Sub, Mul, Transpose) and the final MatMul + LpNormalization stay in
      float: quantizing the 128-d projection moves embeddings most for least time saved.

  python tools/models/dlib_int8.py pack MODEL.onnx PACK_DIR VERSION
      a recognizer pack folder around the int8 graph (pack 1.0's pack.json with this model, its
      sha256 and face model VERSION), ready for ``rekface models calibrate PACK_DIR --identities
      ../shared/faces/identities --singletons ../shared/faces/singletons`` and ``--packs-dir``

The source graph is checked against its pinned sha256 first. Whether the result may replace fp32 is
decided by ``benchmarks/recognizers.py`` (accuracy within 0.1 point, TMR at FMR 1e-3 within 0.5
point on all identity pairs); the int8 file is not shipped unless it passes.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
FP32 = REPO / "layers" / "models" / "dlib_face_recognition_resnet_v1.onnx"
FP32_SHA256 = "eb68be10eea8e9431e31f66f0f4c6693e5bb6359ffab4d2143ac55547f8394a3"
# The op types quantized; everything else (input normalisation, MatMul, LpNormalization) stays
# float (see the module docstring). The graph's nodes are unnamed, so this goes by op type.
QUANTIZED_OPS = ["Conv", "Add", "MaxPool", "AveragePool", "Pad", "Relu", "GlobalAveragePool"]


def dump_chips(out: Path) -> None:
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "tools" / "calibration"))
    import embed_cache  # the product venv only (rekface, Pillow)

    from benchmarks.shared_faces import load
    from rekface.engine.align import face_chip

    ph = embed_cache.photos()
    chips = [
        face_chip(load(f).rgb, p)
        for f, p, single in zip(ph.files, ph.points, ph.singleton, strict=True)
        if single
    ]
    x = np.stack(chips).astype(np.float32)
    np.save(out, np.concatenate([x, x[:, :, ::-1]]))
    print(f"wrote {len(x) * 2} chips ({len(x)} faces and their mirrors) to {out}")


def build(chips_path: Path, out: Path) -> None:
    from onnxruntime.quantization import (  # .venv-models only (needs onnx)
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    data = FP32.read_bytes()
    if hashlib.sha256(data).hexdigest() != FP32_SHA256:
        raise SystemExit(f"{FP32} is not the pinned dlib graph (sha256 {FP32_SHA256})")
    chips = np.load(chips_path)

    class Chips(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter([chips[i : i + 16] for i in range(0, len(chips), 16)])

        def get_next(self) -> dict | None:
            batch = next(self._batches, None)
            return None if batch is None else {"input": batch}

    out.parent.mkdir(parents=True, exist_ok=True)
    prepared = out.with_suffix(".pre.onnx")
    quant_pre_process(str(FP32), str(prepared), skip_symbolic_shape=True)
    quantize_static(
        str(prepared),
        str(out),
        Chips(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        weight_type=QuantType.QInt8,
        activation_type=QuantType.QUInt8,
        calibrate_method=CalibrationMethod.MinMax,
        op_types_to_quantize=QUANTIZED_OPS,
    )
    prepared.unlink()
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    print(f"wrote {out} ({out.stat().st_size} bytes, sha256 {digest}) from {len(chips)} chips")


def make_pack(model: Path, folder: Path, version: str) -> None:
    """Pack 1.0's contract (input, alignment, output, flip) around the int8 graph."""
    meta = json.loads(
        (REPO / "src" / "rekface" / "engine" / "packs" / "1.0" / "pack.json").read_text()
    )
    meta.pop("models_dir", None)
    data = model.read_bytes()
    meta.update(
        name="dlib-resnet-v1-int8",
        face_model_version=version,
        onnx="model.onnx",
        sha256=hashlib.sha256(data).hexdigest(),
        source="tools/models/dlib_int8.py (static int8 quantization of pack 1.0's dlib ResNet)",
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(data)
    (folder / "pack.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(
        f"wrote pack {version} to {folder}; calibrate it with `rekface models calibrate {folder}`"
    )


def main(argv: list[str]) -> None:
    if len(argv) == 2 and argv[0] == "chips":
        dump_chips(Path(argv[1]))
    elif len(argv) == 3 and argv[0] == "build":
        build(Path(argv[1]), Path(argv[2]))
    elif len(argv) == 4 and argv[0] == "pack":
        make_pack(Path(argv[1]), Path(argv[2]), argv[3])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
