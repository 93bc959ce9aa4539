"""Peak memory and time of decoding the images of issue 18, before and after the decode budget.

Generates the cases into a temporary directory (PNGs streamed row by row, JPEGs with Pillow in a
subprocess), then decodes each one in a fresh subprocess and reports the increase of the peak RSS
over the RSS just before the call (VmHWM, reset with /proc/self/clear_refs) and the wall time:

- "before": ``src/rekface/engine/decode.py`` as it was at ``--baseline-rev`` (git show), loaded
  from a temporary copy;
- "after": the working tree's ``rekface.engine.decode``.

Then 4 worst-case images decoded at once by 4 threads of one process, before and after. Targets
(issue 18): any single image within the API's limits +300 MB at most, 4 at once +1 GB at most.
The machine is shared (2 cores): times are indicative, compare before/after of the same run.

    .venv/bin/python benchmarks/decode_memory.py [--cases a,b] [--skip-before]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The last revision of decode.py before the memory budget (issue 18).
BASELINE_REV = "7f9444835c3e08a43c78ebb5975c08ce1847fe46"
MB = 1024 * 1024
API_BYTES, API_S3_BYTES = 5 * MB, 15 * MB


# -- generating the cases --------------------------------------------------------------------------


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


# Adam7 passes: (x0, y0, dx, dy).
_ADAM7 = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)


def write_png(
    path: Path,
    size: tuple[int, int],
    color_type: int,
    depth: int,
    row: Callable[[int, int], bytes],
    extra: tuple[tuple[bytes, bytes], ...] = (),
    interlace: bool = False,
) -> None:
    """A PNG streamed row by row (filter 0), so a 177 MP image costs no memory to make.
    ``row(y, width)`` gives the bytes of a row of ``width`` pixels (an Adam7 pass is narrower)."""
    w, h = size
    passes = _ADAM7 if interlace else ((0, 0, 1, 1),)
    with path.open("wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        ihdr = struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, int(interlace))
        f.write(png_chunk(b"IHDR", ihdr))
        for kind, data in extra:
            f.write(png_chunk(kind, data))
        z = zlib.compressobj(6)
        pending = b""
        for x0, y0, dx, dy in passes:
            pw = -(-(w - x0) // dx)
            if pw <= 0:
                continue
            for y in range(y0, h, dy):
                pending += z.compress(b"\x00" + row(y, pw))
                if len(pending) >= MB:
                    f.write(png_chunk(b"IDAT", pending))
                    pending = b""
        f.write(png_chunk(b"IDAT", pending + z.flush()))
        f.write(png_chunk(b"IEND", b""))


def _rows(channels: int, depth: int = 8) -> Callable[[int, int], bytes]:
    """Rows of a pattern that changes every 64 rows: compresses well, is not one flat colour."""
    cache: dict[tuple[int, int], bytes] = {}

    def row(y: int, width: int) -> bytes:
        band = (y // 64) % 256
        if (band, width) not in cache:
            length = -(-width * channels * depth // 8)
            unit = bytes((band + i * 37) % 256 for i in range(channels * 2))
            cache[band, width] = (unit * length)[:length]
        return cache[band, width]

    return row


def make_jpeg(path: Path, size: tuple[int, int], mode: str, **save: object) -> None:
    """A JPEG made by Pillow in a subprocess (the full-size image is held only there)."""
    code = (
        "import sys, json\n"
        "from PIL import Image\n"
        "w, h, mode, path, save = json.loads(sys.argv[1])\n"
        "g = Image.linear_gradient('L').resize((w, h))\n"
        "bands = {'L': [g], 'RGB': [g, g.transpose(Image.Transpose.ROTATE_180), g],\n"
        "         'CMYK': [g, g, g.transpose(Image.Transpose.ROTATE_180), g]}[mode]\n"
        "im = Image.merge(mode, bands)\n"
        "del g, bands\n"
        "im.save(path, 'JPEG', **save)\n"
    )
    args = json.dumps([size[0], size[1], mode, str(path), save])
    subprocess.run([sys.executable, "-c", code, args], check=True)


@dataclass(frozen=True)
class Case:
    name: str
    what: str
    make: Callable[[Path], None]


def _png(size: tuple[int, int], ct: int, depth: int, channels: int, extra=(), **kw) -> Callable:
    return lambda p: write_png(p, size, ct, depth, _rows(channels, depth), extra, **kw)


_PALETTE = bytes(range(256)) * 3
_TRNS = bytes([0]) + bytes([255] * 255)
W50, H50 = 8660, 5773  # 49,994,180 pixels: the largest 3:2 PNG under MAX_PIXELS

CASES = [
    Case("png_rgba_13300", "PNG 13300² RGBA (177 MP)", _png((13300, 13300), 6, 8, 4)),
    Case("png_gray16_7071", "PNG 7071² 16-bit gray (50 MP)", _png((7071, 7071), 0, 16, 1)),
    Case("png_rgba_50mp", "PNG 8660x5773 RGBA (50 MP)", _png((W50, H50), 6, 8, 4)),
    Case(
        "png_rgba_50mp_adam7",
        "PNG 8660x5773 RGBA interlaced",
        _png((W50, H50), 6, 8, 4, interlace=True),
    ),
    Case("png_rgb16_50mp", "PNG 8660x5773 16-bit RGB", _png((W50, H50), 2, 16, 3)),
    Case(
        "png_palette_50mp",
        "PNG 8660x5773 palette + tRNS",
        _png((W50, H50), 3, 8, 1, ((b"PLTE", _PALETTE), (b"tRNS", _TRNS))),
    ),
    Case("png_gray1_50mp", "PNG 8660x5773 1-bit gray", _png((W50, H50), 0, 1, 1)),
    Case(
        "jpeg_prog_13000",
        "JPEG 13000² progressive 4:4:4",
        lambda p: make_jpeg(p, (13000, 13000), "RGB", progressive=True, subsampling=0),
    ),
    Case(
        "jpeg_prog_13000_420",
        "JPEG 13000² progressive 4:2:0",
        lambda p: make_jpeg(p, (13000, 13000), "RGB", progressive=True, subsampling=2),
    ),
    Case(
        "jpeg_base_13000",
        "JPEG 13000² baseline 4:4:4",
        lambda p: make_jpeg(p, (13000, 13000), "RGB", subsampling=0),
    ),
    Case(
        "jpeg_prog_24mp",
        "JPEG 6000x4000 progressive 4:2:0",
        lambda p: make_jpeg(p, (6000, 4000), "RGB", progressive=True, subsampling=2),
    ),
    Case(
        "jpeg_prog_444_36mp",
        "JPEG 7300x4900 progressive 4:4:4",
        lambda p: make_jpeg(p, (7300, 4900), "RGB", progressive=True, subsampling=0),
    ),
    Case(
        "jpeg_cmyk_48mp",
        "JPEG 8000x6000 CMYK",
        lambda p: make_jpeg(p, (8000, 6000), "CMYK"),
    ),
    Case(
        "jpeg_gray_prog_170mp",
        "JPEG 13000² gray progressive",
        lambda p: make_jpeg(p, (13000, 13000), "L", progressive=True),
    ),
]
# Decoded by 4 threads of one process at once: the mix, and the 4 costliest images the
# budget accepts (each alone ~210 MB: the cap on concurrent decodes is what keeps 4 under 1 GB).
AT_ONCE = {
    "issue's 4": ("png_rgba_50mp", "jpeg_prog_13000", "png_gray16_7071", "png_palette_50mp"),
    "4 costliest accepted": (
        "png_rgba_50mp",
        "png_rgba_50mp_adam7",
        "png_rgb16_50mp",
        "png_gray16_7071",
    ),
}


# -- measuring (in a child process) ----------------------------------------------------------------


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(version: str, decoder: str, paths: list[str]) -> None:
    """Decode ``paths`` (one thread each) and print the peak RSS increase as JSON."""
    import importlib.util
    import threading
    import time

    import numpy  # noqa: F401  (imported before the baseline, as in a server)
    from PIL import Image

    if version == "before":
        spec = importlib.util.spec_from_file_location("decode_before", decoder)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["decode_before"] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
    else:
        import rekface.engine.decode as module
    # Warm up Pillow's plugins and codecs on small images, outside the measurement.
    for fmt in ("PNG", "JPEG"):
        buf = io.BytesIO()
        Image.new("RGB", (256, 256), (120, 80, 40)).save(buf, fmt)
        module.decode_image(buf.getvalue())
    blobs = [Path(p).read_bytes() for p in paths]
    results: list[dict] = [{} for _ in blobs]

    def run(i: int) -> None:
        start = time.perf_counter()
        try:
            out = module.decode_image(blobs[i])
            results[i] = {"ok": True, "shape": list(out.rgb.shape)}
        except Exception as exc:  # the Rekognition error, reported by name
            results[i] = {"ok": False, "error": type(exc).__name__, "message": str(exc)[:200]}
        results[i]["seconds"] = time.perf_counter() - start

    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = _status("VmRSS")
    start = time.perf_counter()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(blobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    print(json.dumps({"peak": _status("VmHWM") - before, "wall": wall, "results": results}))


def measure(version: str, decoder: str, paths: list[Path], max_decodes: int = 2) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), REKFACE_MAX_DECODES=str(max_decodes))
    cmd = [sys.executable, __file__, "--child", version, decoder, *map(str, paths)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode != 0:
        return {"peak": 0, "wall": 0.0, "crash": proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _cell(m: dict) -> str:
    if "crash" in m:
        return f"crashed {m['crash']}"
    res = m["results"]
    if all(r["ok"] for r in res):
        what = "decoded"
    elif len(res) == 1:
        what = res[0]["error"].removesuffix("Exception")
    else:
        what = f"{sum(r['ok'] for r in res)}/{len(res)} decoded"
    return f"{what:>16} {m['peak'] / MB:>8.0f} MB {m['wall']:>6.2f} s"


def predicted(path: Path) -> str:
    from rekface.engine.decode import plan_decode
    from rekface.engine.image_header import read_header

    try:
        return f"{plan_decode(read_header(path.read_bytes())).cost / MB:.0f} MB"
    except Exception as exc:
        return type(exc).__name__


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="", help="comma-separated case names (default: all)")
    parser.add_argument("--skip-before", action="store_true", help="measure only the new code")
    parser.add_argument("--skip-at-once", action="store_true")
    parser.add_argument("--baseline-rev", default=BASELINE_REV)
    args = parser.parse_args()
    chosen = [c for c in CASES if not args.cases or c.name in args.cases.split(",")]
    with tempfile.TemporaryDirectory(prefix="rekface-decode-mem-") as tmp:
        work = Path(tmp)
        decoder = work / "decode_before.py"
        old = subprocess.run(
            ["git", "show", f"{args.baseline_rev}:src/rekface/engine/decode.py"],
            cwd=REPO,
            capture_output=True,
            check=True,
        ).stdout
        decoder.write_bytes(old)
        paths: dict[str, Path] = {}
        for case in chosen:
            path = work / (case.name + (".png" if case.name.startswith("png") else ".jpg"))
            case.make(path)
            paths[case.name] = path
        versions = ["after"] if args.skip_before else ["before", "after"]
        print(
            f"Peak RSS increase and wall time of decode_image, one fresh process per cell; "
            f"before = {args.baseline_rev[:10]}; budget/predicted cost from the header"
        )
        head = f"{'case':<22} {'file':>9} {'predicted':>10}"
        for v in versions:
            head += f" | {v:^34}"
        print(head)
        for case in chosen:
            path = paths[case.name]
            size = path.stat().st_size
            limit = "" if size <= API_BYTES else ("*" if size <= API_S3_BYTES else "!")
            line = f"{case.name:<22} {size / MB:>7.2f}M{limit:1} {predicted(path):>10}"
            for v in versions:
                line += " | " + _cell(measure(v, str(decoder), [path]))
            print(line, flush=True)
        for label, names in AT_ONCE.items():
            four = [paths[n] for n in names if n in paths]
            if len(four) != 4 or args.skip_at_once:
                continue
            line = f"{label:<33}"
            for v in versions:
                line += " | " + _cell(measure(v, str(decoder), four))
            # The same 4 with the cap lifted: what REKFACE_MAX_DECODES=2 buys.
            line += " | cap 4: " + _cell(measure("after", str(decoder), four, max_decodes=4))
            print(line)
            print(f"  ({label}: {', '.join(names)})")
        print("file: * over the 5 MB Bytes limit but within S3's 15 MB; ! over both limits")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        main()
