"""``rekface models``: the recognizer packs of this server (``rekface.engine.packs``).

- ``list``: every pack (built-in and ``--packs-dir`` / REKFACE_PACKS_DIR), its width and whether
  it is calibrated;
- ``verify [PACK]``: pack.json's fields, the model's sha256, its input and output shapes, a test
  embedding, the calibration (all packs if none is named);
- ``calibrate PACK --identities DIR [--singletons DIR]``: embeds the photos with the product's own
  pipeline (RetinaFace landmarks, the pack's alignment and model) and fits the Similarity map
  (``rekface.engine.calibration_fit``, by person-level resampling), written to the pack's
  ``calibration.json`` with its measured table.

PACK is a pack folder or a face model version. Exit status 0 on success, 1 when a pack is broken
(the message names the file and the field), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from rekface.settings import Settings, face_model_version

if TYPE_CHECKING:  # numpy and the engine load only when a models command runs
    import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def add_arguments(sub: Any, settings_options: Callable[[argparse.ArgumentParser], None]) -> None:
    models = sub.add_parser("models", help="recognizer packs: list, verify, calibrate")
    msub = models.add_subparsers(dest="models_command", required=True)
    listing = msub.add_parser("list", help="the recognizer packs this server knows")
    verify = msub.add_parser(
        "verify", help="check packs: fields, sha256, input/output shapes, a test embedding"
    )
    verify.add_argument("pack", nargs="?", metavar="PACK", help="a pack folder or a version")
    calibrate = msub.add_parser(
        "calibrate",
        help="fit a pack's Similarity map on labelled photos and write its calibration.json",
    )
    calibrate.add_argument("pack", metavar="PACK", help="a pack folder or a version")
    calibrate.add_argument(
        "--identities",
        type=Path,
        required=True,
        help="a folder per person, each holding that person's photos",
    )
    calibrate.add_argument(
        "--singletons",
        type=Path,
        default=None,
        help="more photos of people not in --identities, each a different person (files, or "
        "folders of one person each)",
    )
    calibrate.add_argument("--seed", type=int, default=0, help="of the resampling (default 0)")
    calibrate.add_argument(
        "--bootstraps",
        type=int,
        default=None,
        help="person-level resamples of the fit (default: the method's, 400)",
    )
    calibrate.add_argument(
        "--output", type=Path, default=None, help="write here instead of <PACK>/calibration.json"
    )
    for p in (listing, verify, calibrate):
        settings_options(p)


def packs_dir_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--packs-dir",
        type=Path,
        action="append",
        default=None,
        help="a recognizer pack folder, or a folder of them, added to the built-in packs "
        "(repeatable; default REKFACE_PACKS_DIR)",
    )


def version_arg(raw: str) -> str:
    """argparse type of --face-model-version: the API's [0-9.]+."""
    try:
        return face_model_version(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def settings_changes(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if getattr(args, "packs_dir", None):
        changes["packs_dirs"] = (*settings.packs_dirs, *args.packs_dir)
    if getattr(args, "face_model_version", None):
        changes["face_model_version"] = args.face_model_version
    return changes


def run(args: argparse.Namespace, settings: Settings, out: TextIO = sys.stdout) -> int:
    # PackError's base: also a model that onnxruntime refuses.
    from rekface.engine.models import ModelLoadError

    try:
        if args.models_command == "list":
            return _list(settings, out)
        if args.models_command == "verify":
            return _verify(args.pack, settings, out)
        return _calibrate(args, settings, out)
    except ModelLoadError as exc:
        print(f"rekface models: {exc}", file=sys.stderr)
        return 1


def _registry(settings: Settings):
    from rekface.engine.packs import PackRegistry

    return PackRegistry(settings)


def resolve(name: str, settings: Settings):
    """A pack by folder (registered or not) or by face model version."""
    from rekface.engine.packs import PACK_FILE, PackError, UnknownFaceModelVersion, read_pack

    folder = Path(name)
    if (folder / PACK_FILE).is_file():
        for pack in _registry(settings):
            if pack.folder.resolve() == folder.resolve():
                return pack
        return read_pack(folder)
    if folder.exists():
        raise PackError(f"{folder / PACK_FILE}: missing; a pack folder holds its pack.json")
    try:
        return _registry(settings).get(name)
    except UnknownFaceModelVersion as exc:
        raise PackError(str(exc)) from None


def _list(settings: Settings, out: TextIO) -> int:
    from rekface.engine.packs import CALIBRATION_FILE

    print("VERSION  NAME  DIMS  INPUT  CALIBRATED  DEFAULT  FOLDER", file=out)
    for pack in _registry(settings):
        spec = pack.input
        calibrated = "yes" if (pack.folder / CALIBRATION_FILE).is_file() else "no"
        default = "yes" if pack.face_model_version == settings.face_model_version else ""
        print(
            f"{pack.face_model_version}  {pack.name}  {pack.dims}  "
            f"{spec.size}x{spec.size} {spec.layout} {spec.channels}  {calibrated}  {default}  "
            f"{pack.folder}",
            file=out,
        )
    return 0


def _verify(name: str | None, settings: Settings, out: TextIO) -> int:
    from rekface.engine.faces import FaceEngine

    engine = FaceEngine(settings)
    packs = [resolve(name, settings)] if name else list(engine.packs)
    for pack in packs:
        verify_pack(engine, pack, out)
    return 0


def verify_pack(engine, pack, out: TextIO) -> None:
    """Every check a pack can be put to without photos; PackError at the first that fails."""
    import numpy as np

    from rekface.engine.packs import PackError, read_calibration

    where = pack.folder
    embedder = engine.embedder_for(pack)  # sha256 and the graph's shapes
    print(f"{pack.face_model_version} {pack.name} ({where}): sha256 ok, shapes ok", file=out)
    size = pack.input.size
    rng = np.random.default_rng(0)
    chips = np.stack([np.full((size, size, 3), 128.0), rng.uniform(0, 255, (size, size, 3))])
    vectors = embedder.embed(chips.astype(np.float32))
    norms = np.linalg.norm(vectors, axis=1)
    if vectors.shape != (2, pack.dims) or not np.all(np.isfinite(vectors)):
        raise PackError(
            f"{where / pack.onnx}: the test embedding is not {pack.dims} finite numbers"
        )
    if not np.allclose(norms, 1.0, atol=1e-3):
        raise PackError(f"{where / pack.onnx}: the test embedding could not be normalised")
    print(f"  test embedding: {pack.dims} values, finite, unit length", file=out)
    if not pack.calibration_file.is_file():
        print(
            f"  {pack.calibration_file}: missing (collections cannot use the pack until "
            f"`rekface models calibrate {where} --identities DIR` writes it)",
            file=out,
        )
        return
    calibration = read_calibration(pack)
    print(
        f"  calibration: Similarity 80 / 90 / 99 at cosine {calibration.cosine_at(80):.4f} / "
        f"{calibration.cosine_at(90):.4f} / {calibration.cosine_at(99):.4f}",
        file=out,
    )


# ---------------------------------------------------------------------------------------------
# Calibration


def photos(identities: Path, singletons: Path | None) -> list[tuple[Path, str]]:
    """(photo, person) for every photo: one person per --identities folder, and one per
    --singletons file or folder."""
    if not identities.is_dir():
        raise ValueError(f"--identities {identities}: not a folder")
    out: list[tuple[Path, str]] = []
    for person in sorted(p for p in identities.iterdir() if p.is_dir()):
        out += [(f, f"id:{person.name}") for f in _images(person)]
    if singletons is not None:
        if not singletons.is_dir():
            raise ValueError(f"--singletons {singletons}: not a folder")
        for entry in sorted(singletons.iterdir()):
            files = _images(entry) if entry.is_dir() else [entry] if _is_image(entry) else []
            out += [(f, f"single:{entry.name}") for f in files]
    return out


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if _is_image(p))


def _decoded(path: Path):
    """The photo as the API would decode it; formats the API does not take (the service takes
    JPEG and PNG) are converted to PNG first, so any labelled photo can serve."""
    from PIL import Image

    from rekface.engine.decode import decode_image

    data = path.read_bytes()
    if not (data.startswith(b"\xff\xd8\xff") or data.startswith(b"\x89PNG")):
        buf = io.BytesIO()
        Image.open(io.BytesIO(data)).convert("RGB").save(buf, "PNG")
        data = buf.getvalue()
    return decode_image(data)


def embed_photos(
    engine, pack, items: list[tuple[Path, str]], say: Callable[[str], None]
) -> Iterator[tuple[np.ndarray, str]]:
    """(embedding, person) of the largest face of each photo, as IndexFaces would take it."""
    from rekface.errors import RekognitionError

    embedder = engine.embedder_for(pack)
    start, skipped = time.monotonic(), 0
    for i, (path, person) in enumerate(items, 1):
        try:
            faces = engine.detect(_decoded(path), max_faces=1)
        except (RekognitionError, OSError, ValueError):
            faces = []
        if faces:
            yield engine.embed_with(pack, embedder, faces[:1])[0], person
        else:
            skipped += 1
        if i % 50 == 0 or i == len(items):
            rate = i / max(time.monotonic() - start, 1e-9)
            say(f"embedded {i}/{len(items)} photos ({rate:.1f}/s), {skipped} without a face")


def _calibrate(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    import numpy as np

    from rekface.engine.calibrate import from_dict
    from rekface.engine.calibration_fit import fit_similarity_map
    from rekface.engine.faces import FaceEngine

    def say(message: str) -> None:
        print(f"rekface models calibrate: {message}", file=sys.stderr, flush=True)

    pack = resolve(args.pack, settings)
    try:
        items = photos(args.identities, args.singletons)
    except ValueError as exc:
        print(f"rekface models calibrate: {exc}", file=sys.stderr)
        return 2
    engine = FaceEngine(settings)
    say(f"pack {pack.face_model_version} ({pack.name}, {pack.dims}-d): {len(items)} photos")
    rows = list(embed_photos(engine, pack, items, say))
    if not rows:
        print("rekface models calibrate: no face found in any photo", file=sys.stderr)
        return 2
    embeddings = np.stack([r[0] for r in rows])
    names = [r[1] for r in rows]
    codes = {name: i for i, name in enumerate(dict.fromkeys(names))}
    person = np.array([codes[n] for n in names])
    options = {} if args.bootstraps is None else {"bootstraps": args.bootstraps}
    try:
        fitted = fit_similarity_map(
            embeddings, person, model=pack.onnx, seed=args.seed, progress=say, **options
        )
    except ValueError as exc:
        print(f"rekface models calibrate: {exc}", file=sys.stderr)
        return 2
    fitted = {
        **fitted,
        "model": pack.onnx,
        "model_sha256": pack.sha256,
        "face_model_version": pack.face_model_version,
        "pipeline": (
            f"retinaface_mnet025 landmarks -> {pack.alignment_size}px chip ({pack.name} "
            f"template) -> {pack.onnx}" + (", flip-averaged" if pack.flip else "")
        ),
    }
    try:
        from_dict(fitted)  # what the server will read must load
    except ValueError as exc:
        # Typically too few different-person pairs for the strictest promises (Similarity 99
        # means FMR <= 1e-5: the photos must hold well over 1e5 different-person pairs).
        print(
            f"rekface models calibrate: the fit is not a usable map ({exc}): "
            f"{len(rows)} photos of {len(codes)} people are too few for the false-match "
            "rates Similarity 90-99 promise; give more people (--singletons helps)",
            file=sys.stderr,
        )
        return 2
    target = args.output or pack.calibration_file
    target.write_text(json.dumps(fitted, indent=1) + "\n")
    say(f"wrote {target}")
    measured = fitted.get("measured", {})
    for similarity, row in sorted(measured.items(), key=lambda kv: float(kv[0])):
        print(f"Similarity {similarity}: {json.dumps(row, sort_keys=True)}", file=out)
    return 0
