"""Build the three Lambda layers from the repository: ``make layers`` (or run this file).

    python layers/python/build.py [--python 3.12] [--arch x86_64|arm64] [--out layers/build]

Output, under ``<out>/py<python>-<arch>/`` (each folder is one layer's content, unzipped at /opt):

- ``deps/python/``     numpy, onnxruntime, pillow, boto3, Powertools: the pinned wheels of
                       ``layers/python/requirements.txt`` for the Lambda runtime's Python and CPU,
                       trimmed of what rekface never imports (see ``TRIM``);
- ``models/models/``   the ONNX models of ``layers/models`` (-> ``/opt/models``), and the models
                       of the recognizer packs of ``--packs`` (their pack.json and calibration
                       go into the package layer, beside the built-in pack's);
- ``rekface/python/``  the rekface package itself (a separate layer: code changes re-upload 1 MB,
                       not the 150 MB of dependencies).

Offline-capable: wheels are downloaded once into ``<out>/wheels-py<python>-<arch>/`` and installed
from there with ``--no-index``; once that folder is filled (or copied from another machine), the
build needs no network. Each layer is rebuilt only when its inputs change (a hash per layer).

No Docker: pip installs the manylinux wheels for the target platform directly (``--platform``),
which is exact for binary wheels.

Bytecode: Lambda's file system is read-only, so a layer without .pyc compiles every module it
imports at every cold start (~1 s of DetectFaces' first response). The .pyc files are compiled by
an interpreter of the runtime's version (this one, ``$LAMBDA_PYTHON_BIN``, or ``python3.12`` from
PATH / pyenv) and are *hash-based, unchecked* (PEP 552): the CDK asset zips reset every file's
date to 1980, so timestamp-checked .pyc would never match their source and be recompiled (and not
written) at each cold start. Unchecked is right for a layer: its files never change after the
build (a changed input rebuilds the layer from scratch). Without such an interpreter the layers
are built without bytecode and a warning says so.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REQUIREMENTS = REPO / "layers" / "python" / "requirements.txt"
MODELS = REPO / "layers" / "models"
PACKAGE = REPO / "src" / "rekface"
DEFAULT_OUT = REPO / "layers" / "build"

# Lambda's python3.12/3.13 runtimes run on Amazon Linux 2023 (glibc 2.34): every manylinux wheel up
# to manylinux_2_34 runs there. (python3.11 runs on Amazon Linux 2, glibc 2.26: onnxruntime 1.32 and
# numpy 2.4 ship only manylinux_2_27/2_28 wheels, which is why the stack uses python3.12.)
RUNTIME_GLIBC = (2, 34)
ARCH_TAGS = {"x86_64": "x86_64", "arm64": "aarch64"}

# Paths removed from the dependencies layer (globs relative to python/), each with why it is safe.
TRIM: tuple[tuple[str, str], ...] = (
    (
        "onnxruntime/capi/libonnxruntime.so*",
        "the C API library; the Python binding links the runtime statically (readelf: not NEEDED)",
    ),
    ("onnxruntime/tools", "model conversion tools (need onnx, sympy)"),
    ("onnxruntime/transformers", "transformer optimisation tools (need onnx, torch)"),
    ("onnxruntime/quantization", "quantisation tools (need onnx)"),
    ("onnxruntime/datasets", "sample models for onnxruntime's own examples"),
    ("onnxruntime/backend", "the ONNX backend-test API (needs onnx)"),
    ("numpy/f2py", "Fortran wrapper generator: build-time tool"),
    ("numpy/distutils", "build-time tool"),
    ("numpy/_core/include", "C headers for building extensions"),
    ("numpy/_core/lib", "static libraries and pkg-config files for building extensions"),
    ("numpy/_pyinstaller", "PyInstaller hooks"),
    ("**/tests", "the packages' own test suites"),
    ("**/*.pyi", "type stubs"),
    ("**/*.pxd", "Cython declarations"),
)

# botocore ships ~400 service models; rekface's Lambdas create clients for these only (the store:
# dynamodb; images and S3 results: s3; the POST / router: lambda; the X-Ray SDK's sampling rules:
# xray; Rekognition's model drives validation; the S3 Vectors search backend: s3vectors; the
# paging functions' token secret: secretsmanager). The layer smoke test and `make test-sam` (every
# function invoked in the Lambda runtime stand-in) catch a missing one.
BOTOCORE_SERVICES = frozenset(
    {"rekognition", "dynamodb", "s3", "lambda", "sts", "xray", "s3vectors", "secretsmanager"}
)
BOTO3_RESOURCES = frozenset({"dynamodb", "s3"})


@dataclass(frozen=True)
class Target:
    python: str  # "3.12"
    arch: str  # "x86_64" | "arm64"

    @property
    def tag(self) -> str:
        return f"py{self.python}-{self.arch}"

    @property
    def cp(self) -> str:
        return "cp" + self.python.replace(".", "")

    def platforms(self) -> list[str]:
        machine = ARCH_TAGS[self.arch]
        tags = [f"manylinux_2_{minor}_{machine}" for minor in range(17, RUNTIME_GLIBC[1] + 1)]
        return [*tags, f"manylinux2014_{machine}"]

    @property
    def compiles(self) -> bool:
        """True when this interpreter can write .pyc files the runtime will use."""
        return self.python == f"{sys.version_info.major}.{sys.version_info.minor}"


@dataclass(frozen=True)
class Compiler:
    """The runtime's Python on this machine, to write the layers' .pyc files."""

    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    version: str = ""  # sys.version of that interpreter: part of the layers' input hash

    def compile(self, tree: Path, runtime_path: str) -> None:
        """Bytecode for ``tree``, which Lambda mounts at ``runtime_path``: the .pyc files name
        their sources by that path (for tracebacks), so they are the same bytes wherever the
        layer was built."""
        cmd = [*self.argv, "-m", "compileall", "-q", "-j", "0"]
        cmd += ["-s", str(tree), "-p", runtime_path]
        cmd += ["--invalidation-mode", "unchecked-hash", str(tree)]
        subprocess.run(cmd, check=True, env={**os.environ, **dict(self.env)})


def _pyenv_versions(python: str) -> list[str]:
    """pyenv's installed versions of ``python`` ("3.12" -> ["3.12.1", ...]), newest first."""
    try:
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return []
    versions = Path(root.stdout.strip()) / "versions"
    found = [p.name for p in versions.glob(f"{python}.*") if (p / "bin").is_dir()]
    return sorted(found, key=lambda v: [int(x) if x.isdigit() else 0 for x in v.split(".")])[::-1]


def find_compiler(target: Target) -> Compiler | None:
    """An interpreter of the target's version: this one, ``$LAMBDA_PYTHON_BIN``, ``pythonX.Y``
    on PATH, or pyenv's ``pythonX.Y`` (with PYENV_VERSION set). None if there is none."""
    candidates: list[Compiler] = []
    if target.compiles:
        candidates.append(Compiler((sys.executable,)))
    if os.environ.get("LAMBDA_PYTHON_BIN"):
        candidates.append(Compiler((os.environ["LAMBDA_PYTHON_BIN"],)))
    name = f"python{target.python}"
    candidates.append(Compiler((name,)))
    candidates += [
        Compiler((name,), (("PYENV_VERSION", v),)) for v in _pyenv_versions(target.python)
    ]
    probe = "import sys; print('%d.%d' % sys.version_info[:2]); print(sys.version)"
    for candidate in candidates:
        try:
            out = subprocess.run(
                [*candidate.argv, "-c", probe],
                capture_output=True,
                text=True,
                env={**os.environ, **dict(candidate.env)},
                timeout=60,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        lines = out.stdout.splitlines()
        if out.returncode == 0 and lines and lines[0] == target.python:
            return Compiler(candidate.argv, candidate.env, " ".join(lines[1:]))
    return None


def _hash(*paths: Path, extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            if "__pycache__" in path.parts:
                continue
            h.update(str(path.relative_to(REPO)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def _pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet", *args]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def _platform_args(target: Target) -> list[str]:
    args = ["--only-binary=:all:", "--no-deps", "--implementation", "cp"]
    args += ["--python-version", target.python]
    for abi in (target.cp, "abi3", "none"):
        args += ["--abi", abi]
    for platform in target.platforms():
        args += ["--platform", platform]
    return args


def fetch_wheels(target: Target, wheelhouse: Path) -> None:
    """Download the pinned wheels once; later builds install from this folder, offline."""
    stamp = wheelhouse / ".requirements.sha256"
    digest = _hash(REQUIREMENTS, extra=target.tag)
    if stamp.is_file() and stamp.read_text() == digest:
        return
    wheelhouse.mkdir(parents=True, exist_ok=True)
    _pip("download", "--dest", str(wheelhouse), *_platform_args(target), "-r", str(REQUIREMENTS))
    stamp.write_text(digest)


def trim(site: Path) -> list[str]:
    """Apply ``TRIM`` and the botocore/boto3 data filters; returns what was removed."""
    removed: list[str] = []
    for pattern, _why in TRIM:
        for path in sorted(site.glob(pattern), key=lambda p: -len(p.parts)):
            if not path.exists():
                continue
            removed.append(str(path.relative_to(site)))
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    for data, keep in (
        (site / "botocore" / "data", BOTOCORE_SERVICES),
        (site / "boto3" / "data", BOTO3_RESOURCES),
    ):
        for path in sorted(data.iterdir()) if data.is_dir() else []:
            if path.is_dir() and path.name not in keep:
                removed.append(str(path.relative_to(site)))
                shutil.rmtree(path)
    return removed


def _bytecode_tag(compiler: Compiler | None) -> str:
    return f"unchecked-hash {compiler.version}" if compiler else "no bytecode"


def build_deps(target: Target, out: Path, wheelhouse: Path, compiler: Compiler | None) -> None:
    layer = out / "deps"
    digest = _hash(REQUIREMENTS, Path(__file__), extra=target.tag + _bytecode_tag(compiler))
    if _fresh(layer, digest):
        return
    fetch_wheels(target, wheelhouse)
    site = layer / "python"
    shutil.rmtree(layer, ignore_errors=True)
    _pip(
        "install", "--no-index", "--find-links", str(wheelhouse), "--target", str(site),
        "--no-compile", *_platform_args(target), "-r", str(REQUIREMENTS),
    )  # fmt: skip
    removed = trim(site)
    if compiler:
        compiler.compile(site, "/opt/python")
    _stamp(layer, digest, {"trimmed": removed, "bytecode": _bytecode_tag(compiler)})


def build_models(out: Path, packs: tuple[Path, ...] = ()) -> None:
    """The shipped models, and the models of the recognizer packs given (``make layers
    PACKS="dir ..."``) as ``pack-<face model version>-<file>`` beside them (/opt/models); their
    pack.json and calibration.json go into the package layer (``build_package``)."""
    layer = out / "models"
    checked = [_checked_pack(p) for p in packs]
    digest = _hash(MODELS, extra=_packs_digest(checked))
    if _fresh(layer, digest):
        return
    shutil.rmtree(layer, ignore_errors=True)
    dest = layer / "models"
    dest.mkdir(parents=True)
    for path in sorted(MODELS.iterdir()):
        if path.is_file():
            shutil.copy2(path, dest / path.name)
    for folder, pack, _ in checked:
        shutil.copyfile(folder / pack["onnx"], dest / _layer_model(pack))
    _stamp(layer, digest, {"packs": [pack["face_model_version"] for _, pack, _ in checked]})


def _layer_model(pack: dict) -> str:
    return f"pack-{pack['face_model_version']}-{pack['onnx']}"


def _checked_pack(folder: Path) -> tuple[Path, dict, dict[str, str]]:
    """A pack that the engine will load: pack.json valid, model sha256 right, calibrated, a
    version the package does not already have (SystemExit naming the file otherwise). Returns its
    folder, pack.json's content and its files' sha256."""
    sys.path.insert(0, str(PACKAGE.parent))
    from rekface.engine.packs import PackError, read_calibration, read_pack

    try:
        pack = read_pack(folder)
        read_calibration(pack)
    except PackError as exc:
        raise SystemExit(f"PACKS: {exc}") from None
    if (PACKAGE / "engine" / "packs" / pack.face_model_version).exists():
        raise SystemExit(f"PACKS: {folder}: version {pack.face_model_version} is built in")
    files = {}
    for name in ("pack.json", pack.onnx, "calibration.json"):
        files[name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    if files[pack.onnx] != pack.sha256:
        raise SystemExit(f"PACKS: {folder / pack.onnx}: sha256 differs from pack.json's")
    return folder, json.loads((folder / "pack.json").read_text()), files


def _packs_digest(checked: list[tuple[Path, dict, dict[str, str]]]) -> str:
    return json.dumps([files for _, _, files in checked])


def _package_packs(dest: Path, checked: list[tuple[Path, dict, dict[str, str]]]) -> None:
    """Each pack's pack.json and calibration.json beside the built-in pack's, in the package
    (``rekface/engine/packs/<version>/``), its model named as ``build_models`` names it in the
    models directory (``"models_dir": true``, as the built-in pack). So every function knows the
    layer's packs and their calibration, also those without the models layer (SearchFaces,
    SearchUsers, AssociateFaces score with the calibration alone)."""
    for folder, pack, _ in checked:
        target = dest / "engine" / "packs" / pack["face_model_version"]
        target.mkdir(parents=True)
        shipped = {**pack, "onnx": _layer_model(pack), "models_dir": True}
        (target / "pack.json").write_text(json.dumps(shipped, indent=1))
        shutil.copyfile(folder / "calibration.json", target / "calibration.json")


def build_package(
    target: Target, out: Path, compiler: Compiler | None, packs: tuple[Path, ...] = ()
) -> None:
    """Copy the package source (calibration JSON included) and the packs' pack.json and
    calibration.json: no build backend, no network."""
    layer = out / "rekface"
    checked = [_checked_pack(p) for p in packs]
    extra = target.tag + _bytecode_tag(compiler) + _packs_digest(checked)
    digest = _hash(PACKAGE, Path(__file__), extra=extra)
    if _fresh(layer, digest):
        return
    shutil.rmtree(layer, ignore_errors=True)
    dest = layer / "python" / "rekface"
    shutil.copytree(PACKAGE, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _package_packs(dest, checked)
    if compiler:
        compiler.compile(dest, "/opt/python/rekface")
    _stamp(layer, digest, {"bytecode": _bytecode_tag(compiler)})


def _fresh(layer: Path, digest: str) -> bool:
    stamp = layer / ".build.json"
    return stamp.is_file() and json.loads(stamp.read_text()).get("inputs") == digest


def _stamp(layer: Path, digest: str, info: dict[str, object]) -> None:
    (layer / ".build.json").write_text(json.dumps({"inputs": digest, **info}, indent=1))


def tree_size(path: Path) -> int:
    """Bytes of the files under ``path`` as Lambda counts them (unzipped, symlinks not followed)."""
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def build(target: Target, out_root: Path = DEFAULT_OUT, packs: tuple[Path, ...] = ()) -> Path:
    out_root.mkdir(parents=True, exist_ok=True)
    # One build at a time per output folder, whoever runs it (make layers, make synth, the tests):
    # a layer is rebuilt by deleting it first, and a synth copying it meanwhile would package
    # half a layer (seen: a deps layer holding only dateutil).
    with (out_root / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build(target, out_root, packs)


def _build(target: Target, out_root: Path, packs: tuple[Path, ...]) -> Path:
    out = out_root / target.tag
    out.mkdir(parents=True, exist_ok=True)
    compiler = find_compiler(target)
    if compiler is None:
        print(
            f"warning: no Python {target.python} here (set LAMBDA_PYTHON_BIN): the layers carry "
            "no bytecode and every cold start compiles its imports",
            file=sys.stderr,
        )
    build_deps(target, out, out_root / f"wheels-{target.tag}", compiler)
    build_models(out, packs)
    build_package(target, out, compiler, packs)
    sizes = {name: tree_size(out / name) for name in ("deps", "models", "rekface")}
    (out / "BUILD.json").write_text(
        json.dumps({"python": target.python, "arch": target.arch, "bytes": sizes}, indent=1)
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=os.environ.get("LAMBDA_PYTHON", "3.12"))
    parser.add_argument(
        "--arch", default=os.environ.get("LAMBDA_ARCH", "x86_64"), choices=ARCH_TAGS
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--packs",
        type=Path,
        nargs="*",
        default=[],
        help="recognizer pack folders to put in the models layer (make layers PACKS=...)",
    )
    args = parser.parse_args(argv)
    out = build(Target(args.python, args.arch), args.out, tuple(args.packs))
    sizes = json.loads((out / "BUILD.json").read_text())["bytes"]
    for name, size in sizes.items():
        print(f"{out / name}: {size / 1e6:.1f} MB unzipped")
    print(f"total: {sum(sizes.values()) / 1e6:.1f} MB (Lambda limit: 262.1 MB = 250 MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
