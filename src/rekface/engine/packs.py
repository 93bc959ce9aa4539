"""Recognizer packs: a folder holding an embedding model and everything needed to use it.

The layout is a contract (fields may be added, these stay)::

    <pack>/pack.json         name, face_model_version, onnx, sha256, input, alignment, output,
                             flip, license, source
    <pack>/model.onnx        (the file ``onnx`` names, inside the pack folder)
    <pack>/calibration.json  the Similarity map, written by ``rekface models calibrate``

The built-in pack ``1.0`` (dlib's ResNet) lives in ``rekface/engine/packs/1.0/`` beside this module;
its pack.json sets ``"models_dir": true`` because its ONNX is the shipped
``dlib_face_recognition_resnet_v1.onnx``, found like every other shipped model
(``REKFACE_MODELS_DIR``, ``/opt/models``, ``layers/models``) and rebuilt by ``make models-verify``.
User packs come from ``REKFACE_PACKS_DIR`` / ``--packs-dir`` (a pack folder, or a folder of them)
and must hold their model themselves. On Lambda, ``make layers PACKS=...`` ships packs as built-in
ones: pack.json and calibration.json in the package layer, the model in the models layer.

Reading pack.json (``read_pack``) is cheap and checks every field, naming the file and the field
that is wrong; the model's sha256, its input and output shapes (``check_session``) and the
calibration are checked when the pack is first used.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rekface.engine.calibrate import Calibration, from_dict
from rekface.engine.models import ModelLoadError, locate_in_model_dirs, not_found_hint
from rekface.settings import BUILTIN_FACE_MODEL_VERSION, Settings

if TYPE_CHECKING:
    import onnxruntime as ort  # annotations only: the store imports this module

BUILTIN_VERSION = BUILTIN_FACE_MODEL_VERSION  # dlib's ResNet; collections stored before packs
# The botocore model's pattern for IndexFacesModelVersion and friends.
VERSION_PATTERN = re.compile(r"[0-9.]+")
PACK_FILE = "pack.json"
CALIBRATION_FILE = "calibration.json"
LAYOUTS = ("NCHW", "NHWC")
CHANNELS = ("RGB", "BGR")
_MAX_DIMS = 4096  # an embedding wider than this is a mistake, not a face model
_MAX_SIZE = 1024  # chip side in pixels


class PackError(ModelLoadError):
    """A pack is missing, broken or not what its pack.json says."""


class UnknownFaceModelVersion(LookupError):
    """No pack on this server has this face model version."""

    def __init__(self, version: str, available: list[str]) -> None:
        super().__init__(
            f"face model version {version} is not available on this server "
            f"(available: {', '.join(available) or 'none'})"
        )
        self.version = version


@dataclass(frozen=True)
class InputSpec:
    size: int
    layout: str  # "NCHW" or "NHWC"
    channels: str  # "RGB" or "BGR"
    mean: tuple[float, float, float]  # per channel, in the model's channel order
    std: tuple[float, float, float]


@dataclass(frozen=True)
class Pack:
    folder: Path
    name: str
    face_model_version: str
    onnx: str
    sha256: str
    input: InputSpec
    template: np.ndarray  # [5, 2] float64, in alignment pixels
    alignment_size: int
    output_name: str
    dims: int
    flip: bool
    license: str
    source: str
    builtin: bool = False
    models_dir: bool = False  # the ONNX is a shipped model, looked up in the models directories

    @property
    def pack_file(self) -> Path:
        return self.folder / PACK_FILE

    @property
    def calibration_file(self) -> Path:
        return self.folder / CALIBRATION_FILE


def _field(data: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise PackError(f"{where}: missing field {key!r}")
    value = data[key]
    # bool is an int in Python: never accept one where a number is meant.
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise PackError(f"{where}: field {key!r} must be {_kind_name(kind)}, got {value!r}")
    if not isinstance(value, kind):
        raise PackError(f"{where}: field {key!r} must be {_kind_name(kind)}, got {value!r}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    names |= {dict: "an object", list: "a list"}
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in kinds))


def _per_channel(value: Any, key: str, where: str) -> tuple[float, float, float]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (float(value),) * 3
    if (
        isinstance(value, list)
        and len(value) == 3
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        return (float(value[0]), float(value[1]), float(value[2]))
    raise PackError(f"{where}: field {key!r} must be a number or a list of 3 numbers")


def _size(data: dict[str, Any], key: str, where: str) -> int:
    value = _field(data, key, int, where)
    if not 8 <= value <= _MAX_SIZE:
        raise PackError(f"{where}: field {key!r} must be between 8 and {_MAX_SIZE}, got {value}")
    return value


def parse_pack(data: Any, folder: Path, builtin: bool = False) -> Pack:
    """A Pack from pack.json's content; PackError naming the file and field if anything is off."""
    where = str(folder / PACK_FILE)
    if not isinstance(data, dict):
        raise PackError(f"{where}: must hold a JSON object")
    name = _field(data, "name", str, where)
    version = _field(data, "face_model_version", str, where)
    if not VERSION_PATTERN.fullmatch(version) or len(version) > 255:
        raise PackError(
            f"{where}: field 'face_model_version' must match [0-9.]+ (as the API's "
            f"FaceModelVersion), got {version!r}"
        )
    onnx = _field(data, "onnx", str, where)
    if not onnx or Path(onnx).name != onnx or onnx in (".", ".."):
        raise PackError(f"{where}: field 'onnx' must be a file name inside the pack, got {onnx!r}")
    sha256 = _field(data, "sha256", str, where).lower()
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise PackError(f"{where}: field 'sha256' must be 64 hex digits, got {sha256!r}")

    spec = _field(data, "input", dict, where)
    in_where = f"{where}: input"
    layout = _field(spec, "layout", str, in_where)
    if layout not in LAYOUTS:
        raise PackError(f"{in_where}: field 'layout' must be one of {LAYOUTS}, got {layout!r}")
    channels = _field(spec, "channels", str, in_where)
    if channels not in CHANNELS:
        raise PackError(f"{in_where}: field 'channels' must be one of {CHANNELS}, got {channels!r}")
    std = _per_channel(spec.get("std", 1.0), "std", in_where)
    if any(s <= 0 for s in std):
        raise PackError(f"{in_where}: field 'std' must be positive")
    input_spec = InputSpec(
        size=_size(spec, "size", in_where),
        layout=layout,
        channels=channels,
        mean=_per_channel(spec.get("mean", 0.0), "mean", in_where),
        std=std,
    )

    alignment = _field(data, "alignment", dict, where)
    al_where = f"{where}: alignment"
    alignment_size = _size(alignment, "size", al_where)
    if alignment_size != input_spec.size:
        raise PackError(
            f"{al_where}: field 'size' ({alignment_size}) must equal input.size "
            f"({input_spec.size}): the aligned chip is the model's input"
        )
    points = _field(alignment, "template", list, al_where)
    try:
        template = np.asarray(points, np.float64)
    except (TypeError, ValueError):
        template = np.zeros(0)
    if template.shape != (5, 2) or not np.all(np.isfinite(template)):
        raise PackError(
            f"{al_where}: field 'template' must be 5 [x, y] points (image-left eye, image-right "
            "eye, nose tip, image-left and image-right mouth corner)"
        )
    if np.any(template < 0) or np.any(template > alignment_size):
        raise PackError(
            f"{al_where}: field 'template' has points outside the {alignment_size} px chip"
        )

    output = _field(data, "output", dict, where)
    out_where = f"{where}: output"
    dims = _field(output, "dims", int, out_where)
    if not 2 <= dims <= _MAX_DIMS:
        raise PackError(f"{out_where}: field 'dims' must be between 2 and {_MAX_DIMS}, got {dims}")
    models_dir = bool(data.get("models_dir", False))
    if models_dir and not builtin:
        raise PackError(f"{where}: field 'models_dir' is for the built-in packs only")
    return Pack(
        folder=folder,
        name=name,
        face_model_version=version,
        onnx=onnx,
        sha256=sha256,
        input=input_spec,
        template=template,
        alignment_size=alignment_size,
        output_name=_field(output, "name", str, out_where),
        dims=dims,
        flip=_field(data, "flip", bool, where) if "flip" in data else False,
        license=str(data.get("license", "")),
        source=str(data.get("source", "")),
        builtin=builtin,
        models_dir=models_dir,
    )


def read_pack(folder: Path, builtin: bool = False) -> Pack:
    path = folder / PACK_FILE
    try:
        text = path.read_text()
    except OSError as exc:
        raise PackError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PackError(f"{path}: not valid JSON ({exc})") from exc
    return parse_pack(data, folder, builtin)


def model_path(pack: Pack, settings: Settings) -> Path:
    if not pack.models_dir:
        return pack.folder / pack.onnx
    path = locate_in_model_dirs(pack.onnx, settings)
    if path is None:
        raise PackError(
            f"{pack.pack_file}: model {pack.onnx} (field 'onnx') not found; "
            f"{not_found_hint(settings)}"
        )
    return path


def read_model(pack: Pack, settings: Settings) -> bytes:
    """The model's bytes, verified against pack.json's sha256."""
    path = model_path(pack, settings)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PackError(
            f"{path}: the model named by field 'onnx' of {pack.pack_file} cannot be read "
            f"({exc.strerror or exc})"
        ) from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != pack.sha256:
        raise PackError(
            f"{path}: sha256 {digest} differs from field 'sha256' of {pack.pack_file} "
            f"({pack.sha256}): the file is corrupt or not the pack's model"
        )
    return data


def _dim_ok(actual: Any, expected: int) -> bool:
    """A symbolic or free dimension (a name, None, -1) accepts anything."""
    return not isinstance(actual, int) or actual < 0 or actual == expected


def check_session(pack: Pack, session: ort.InferenceSession) -> None:
    """The graph takes one image tensor of the declared layout and size and has the declared
    output with ``dims`` values per face."""
    inputs = session.get_inputs()
    if len(inputs) != 1:
        names = [i.name for i in inputs]
        raise PackError(f"{pack.folder / pack.onnx}: the model must take one input, has {names}")
    shape = list(inputs[0].shape)
    size = pack.input.size
    expected = [None, 3, size, size] if pack.input.layout == "NCHW" else [None, size, size, 3]
    if len(shape) != 4 or not all(
        e is None or _dim_ok(a, e) for a, e in zip(shape, expected, strict=True)
    ):
        raise PackError(
            f"{pack.folder / pack.onnx}: input {inputs[0].name!r} has shape {shape}, but "
            f"{pack.pack_file} fields input.layout/input.size say {pack.input.layout} "
            f"{size}x{size}x3"
        )
    outputs = {o.name: o for o in session.get_outputs()}
    out = outputs.get(pack.output_name)
    if out is None:
        raise PackError(
            f"{pack.pack_file}: field 'output.name' is {pack.output_name!r}, the model's outputs "
            f"are {sorted(outputs)}"
        )
    oshape = list(out.shape)
    if len(oshape) != 2 or not _dim_ok(oshape[1], pack.dims):
        raise PackError(
            f"{pack.folder / pack.onnx}: output {pack.output_name!r} has shape {oshape}, "
            f"{pack.pack_file} field 'output.dims' says [N, {pack.dims}]"
        )


def read_calibration(pack: Pack) -> Calibration:
    path = pack.calibration_file
    if not path.is_file():
        raise PackError(
            f"{path}: missing; a pack needs its Similarity calibration: run "
            f"`rekface models calibrate {pack.folder} --identities DIR`"
        )
    try:
        data = json.loads(path.read_text())
        calibration = from_dict(data)
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise PackError(f"{path}: not a valid calibration ({exc})") from exc
    fitted_for = data.get("model_sha256")
    if fitted_for is not None and fitted_for != pack.sha256:
        raise PackError(
            f"{path}: field 'model_sha256' ({fitted_for}) is not the pack's model "
            f"({pack.sha256}): calibrate the pack again"
        )
    return calibration


def builtin_root() -> Path:
    return Path(str(resources.files("rekface.engine").joinpath("packs")))


def pack_folders(root: Path) -> list[Path]:
    """``root`` itself if it is a pack, else its sub-folders that are."""
    if (root / PACK_FILE).is_file():
        return [root]
    if not root.is_dir():
        raise PackError(f"{root}: packs directory not found")
    return sorted(p for p in root.iterdir() if (p / PACK_FILE).is_file())


class PackRegistry:
    """Every pack this server knows, by face model version: the built-in ones and those of
    ``settings.packs_dirs``. Two packs claiming one version is an error at start-up."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._packs: dict[str, Pack] = {}
        self._calibrations: dict[str, Calibration] = {}
        for folder in pack_folders(builtin_root()):
            self._add(read_pack(folder, builtin=True))
        for root in settings.packs_dirs:
            for folder in pack_folders(Path(root)):
                self._add(read_pack(folder))

    def _add(self, pack: Pack) -> None:
        other = self._packs.get(pack.face_model_version)
        if other is not None:
            raise PackError(
                f"{pack.pack_file}: face_model_version {pack.face_model_version} is already "
                f"the version of {other.pack_file}"
            )
        self._packs[pack.face_model_version] = pack

    def versions(self) -> list[str]:
        return sorted(self._packs, key=_version_key)

    def get(self, version: str) -> Pack:
        pack = self._packs.get(version)
        if pack is None:
            raise UnknownFaceModelVersion(version, self.versions())
        return pack

    def calibration(self, version: str) -> Calibration:
        """The pack's Similarity map, read once; needs neither its model nor onnxruntime (the
        searches of stored faces and AssociateFaces score with it alone)."""
        calibration = self._calibrations.get(version)
        if calibration is None:
            calibration = read_calibration(self.get(version))
            self._calibrations[version] = calibration  # a race reads the same file twice
        return calibration

    def __iter__(self) -> Iterator[Pack]:
        return iter(self._packs[v] for v in self.versions())


@functools.cache
def registry(settings: Settings) -> PackRegistry:
    """The packs of these settings, read once per process (settings are immutable)."""
    return PackRegistry(settings)


def _version_key(version: str) -> tuple:
    return tuple(int(p) if p.isdigit() else -1 for p in version.split("."))
