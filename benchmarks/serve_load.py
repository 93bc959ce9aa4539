"""Load and slow-connection faults against a real `rekface serve`, before vs after, in one run.

    .venv/bin/python -m benchmarks.serve_load --baseline-ref ed63996^      # issue 18's table
    .venv/bin/python -m benchmarks.serve_load --clients 20 --duration 10 --skip-attacks

For each server (the working tree's, and a git ref's source exported to a tmp dir with
``git archive`` when ``--baseline-ref`` is given), on 127.0.0.1 only:

1. load: ``--clients`` concurrent CompareFaces clients (raw HTTP/1.1 keep-alive connections,
   photos of ../shared/faces) for ``--duration`` s; a throttled client waits 0.05-0.5 s before
   its next request, as boto3's back-off would. Reported: answered requests per second, p50/p99
   of the 200s, the throttled share, connection resets and timeouts (target 0), /health p99 on
   a new connection every 0.2 s (target <= 1 s), and the server's peak RSS (target <= 1 GB);
2. faults: ``--attack-connections`` idle, slowloris and stalled-body connections
   (benchmarks/slow_clients.py), each with a well-behaved client beside them: how many the
   server closed and when, whether the client was served, the server's peak threads and fds.

Everything is bounded (each phase gives up after a fixed time) and every process started is
stopped. The machine is shared: compare the two columns of one run, not runs of different days.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.serve_process import REPO, ServeProcess, serve_command, start_serve
from benchmarks.shared_faces import image_bytes
from benchmarks.slow_clients import KINDS, run_attack

PAIR = ("identities/Paul_Bremer/12.jpg", "identities/Paul_Bremer/5.jpg")
CLIENT_TIMEOUT = 60.0
RESETS = (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine)


@dataclass
class Target:
    name: str
    command: list[str]
    env: dict[str, str]
    options: set[str]  # the serve options this version knows


@dataclass
class LoadFigures:
    ok_latencies: list[float] = field(default_factory=list)
    throttled_latencies: list[float] = field(default_factory=list)
    other_errors: dict[str, int] = field(default_factory=dict)
    resets: int = 0
    timeouts: int = 0
    health_latencies: list[float] = field(default_factory=list)
    health_failures: int = 0
    rss_before_mb: float = 0.0
    rss_peak_mb: float = 0.0
    rss_after_mb: float = 0.0
    seconds: float = 0.0


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def compare_body() -> bytes:
    source, target = (base64.b64encode(image_bytes(p)).decode() for p in PAIR)
    return json.dumps({"SourceImage": {"Bytes": source}, "TargetImage": {"Bytes": target}}).encode()


HEADERS = {
    "X-Amz-Target": "RekognitionService.CompareFaces",
    "Content-Type": "application/x-amz-json-1.1",
}
_LIST = "RekognitionService.ListCollections"


def post(conn: http.client.HTTPConnection, body: bytes, headers=HEADERS) -> tuple[int, bytes]:
    conn.request("POST", "/", body=body, headers=headers)
    response = conn.getresponse()
    return response.status, response.read()


def error_code(data: bytes) -> str:
    try:
        return str(json.loads(data).get("__type", "?")).rsplit("#", 1)[-1]
    except (ValueError, AttributeError):
        return "unparseable"


def get_health(port: int) -> float | None:
    """Seconds for GET /health on a new connection, None if it failed."""
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/health")
        response = conn.getresponse()
        response.read()
        return time.monotonic() - started if response.status == 200 else None
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


class Sampler:
    """RSS, threads and fds of the server every 0.2 s while in a ``with`` block."""

    def __init__(self, server: ServeProcess) -> None:
        self.server = server
        self.rss: list[float] = []
        self.threads: list[int] = []
        self.fds: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self.rss.append(self.server.rss_mb())
                self.threads.append(self.server.threads())
                self.fds.append(self.server.fds())
            except (OSError, KeyError):  # exited
                return

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_load(server: ServeProcess, clients: int, duration: float) -> LoadFigures:
    body = compare_body()
    figures = LoadFigures(rss_before_mb=server.rss_mb())
    lock = threading.Lock()
    deadline = time.monotonic() + duration

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=CLIENT_TIMEOUT)
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                status, data = post(conn, body)
            except TimeoutError:
                with lock:
                    figures.timeouts += 1
                conn.close()
                continue
            except RESETS:
                with lock:
                    figures.resets += 1
                conn.close()
                time.sleep(0.1)
                continue
            seconds = time.monotonic() - started
            code = "OK" if status == 200 else error_code(data)
            with lock:
                if code == "OK":
                    figures.ok_latencies.append(seconds)
                elif code == "ThrottlingException":
                    figures.throttled_latencies.append(seconds)
                else:
                    figures.other_errors[code] = figures.other_errors.get(code, 0) + 1
            if code == "ThrottlingException":
                time.sleep(random.uniform(0.05, 0.5))
        conn.close()

    def health() -> None:
        while time.monotonic() < deadline:
            seconds = get_health(server.port)
            if seconds is None:
                figures.health_failures += 1
            else:
                figures.health_latencies.append(seconds)
            time.sleep(0.2)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    threads.append(threading.Thread(target=health, daemon=True))
    started = time.monotonic()
    with Sampler(server) as sample:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=duration + CLIENT_TIMEOUT + 10)
    figures.seconds = time.monotonic() - started
    figures.rss_peak_mb = max(sample.rss, default=server.rss_mb())
    time.sleep(5)
    figures.rss_after_mb = server.rss_mb()
    return figures


@dataclass
class FaultFigures:
    kind: str
    opened: int
    closed: int
    left_open: int
    max_close_seconds: float | None
    good_ok: int
    good_total: int
    good_p99: float | None
    held_while_served: int | None
    peak_threads: int
    peak_fds: int
    rss_delta_mb: float


def run_fault(
    server: ServeProcess, kind: str, count: int, give_up_after: float, stalled_bytes: int
) -> FaultFigures:
    latencies: list[float] = []
    answered: list[int] = []
    stop = threading.Event()

    def good_client() -> None:
        # One request a second on a fresh connection, while the bad ones are held.
        for _ in range(int(give_up_after)):
            if stop.is_set():
                return
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            started = time.monotonic()
            try:
                status, _ = post(conn, b"{}", {**HEADERS, "X-Amz-Target": _LIST})
                answered.append(status)
                latencies.append(time.monotonic() - started)
            except (OSError, http.client.HTTPException):
                answered.append(0)
            finally:
                conn.close()
            if len(answered) >= 5:
                return
            time.sleep(1)

    rss_before = server.rss_mb()
    with Sampler(server) as sample:
        result = run_attack(
            "127.0.0.1",
            server.port,
            kind,
            count,
            give_up_after=give_up_after,
            body_sent=stalled_bytes,
            during=good_client,
        )
        stop.set()
    return FaultFigures(
        kind=kind,
        opened=result.opened,
        closed=result.closed,
        left_open=result.left_open,
        max_close_seconds=result.max_close_seconds,
        good_ok=answered.count(200),
        good_total=len(answered),
        good_p99=percentile(latencies, 99),
        held_while_served=result.open_after_during,
        peak_threads=max(sample.threads, default=0),
        peak_fds=max(sample.fds, default=0),
        rss_delta_mb=max(sample.rss, default=rss_before) - rss_before,
    )


def serve_options(command: list[str], env: dict[str, str]) -> set[str]:
    out = subprocess.run(
        [*command, "--help"], capture_output=True, text=True, env={**os.environ, **env}, timeout=120
    ).stdout
    return {word.rstrip(",") for word in out.split() if word.startswith("--")}


def prepare_targets(baseline_ref: str | None, workdir: Path) -> list[Target]:
    targets = []
    if baseline_ref:
        tree = workdir / "baseline"
        tree.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", baseline_ref, "src"],
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        # The models are the repository's own (layers/models): linked, not copied.
        (tree / "layers").symlink_to(REPO / "layers")
        env = {"PYTHONPATH": str(tree / "src"), "REKFACE_MODELS_DIR": str(REPO / "layers/models")}
        command = serve_command()
        targets.append(Target(f"before ({baseline_ref})", command, env, set()))
    targets.append(Target("working tree", serve_command(), {}, set()))
    for target in targets:
        target.options = serve_options(target.command, target.env)
    return targets


def fmt(value: float | None, unit: str = "", digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}{unit}"


def measure(target: Target, args: argparse.Namespace, workdir: Path, log: Callable) -> dict:
    extra: list[str] = []
    if "--idle-timeout" in target.options:
        extra += ["--idle-timeout", str(args.timeout), "--request-timeout", str(args.timeout)]
    data_dir = Path(tempfile.mkdtemp(prefix="data-", dir=workdir))
    log(f"{target.name}: starting rekface serve {' '.join(extra)}")
    server = start_serve(
        ["--data-dir", str(data_dir), *extra], command=target.command, env=target.env
    )
    row: dict[str, str] = {}
    try:
        warm = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
        post(warm, compare_body())  # first request: sessions warmed, arenas sized
        warm.close()
        log(f"{target.name}: {args.clients} CompareFaces clients for {args.duration} s")
        load = run_load(server, args.clients, args.duration)
        answered = len(load.ok_latencies) + len(load.throttled_latencies)
        total = answered + sum(load.other_errors.values()) + load.resets + load.timeouts
        row.update(
            {
                "answered 200 / s": fmt(len(load.ok_latencies) / load.seconds, digits=1),
                "p50 of 200s": fmt(percentile(load.ok_latencies, 50), " s"),
                "p99 of 200s": fmt(percentile(load.ok_latencies, 99), " s"),
                "p99 of ThrottlingExceptions": fmt(percentile(load.throttled_latencies, 99), " s"),
                "throttled share": fmt(
                    100 * len(load.throttled_latencies) / total if total else None, " %", 1
                ),
                "other errors": ", ".join(f"{k} {v}" for k, v in load.other_errors.items()) or "0",
                "connection resets": str(load.resets),
                "client timeouts (60 s)": str(load.timeouts),
                "/health p99 (max, probes)": (
                    f"{fmt(percentile(load.health_latencies, 99), ' s')} "
                    f"({fmt(max(load.health_latencies, default=None), ' s')}, "
                    f"{len(load.health_latencies) + load.health_failures})"
                ),
                "/health failures": str(load.health_failures),
                "RSS before / peak / 5 s after": (
                    f"{load.rss_before_mb:,.0f} / {load.rss_peak_mb:,.0f} / "
                    f"{load.rss_after_mb:,.0f} MB"
                ),
            }
        )
        if not args.skip_attacks:
            for kind in KINDS:
                log(f"{target.name}: {args.attack_connections} {kind} connections")
                f = run_fault(
                    server, kind, args.attack_connections, args.give_up_after, args.stalled_bytes
                )
                row[f"{kind}: closed by server"] = (
                    f"{f.closed}/{f.opened} (last after {fmt(f.max_close_seconds, ' s', 1)})"
                )
                row[f"{kind}: good client"] = (
                    f"{f.good_ok}/{f.good_total} ok, p99 {fmt(f.good_p99, ' s')}, "
                    f"{f.held_while_served} bad held meanwhile"
                )
                row[f"{kind}: peak threads / fds"] = f"{f.peak_threads} / {f.peak_fds}"
                row[f"{kind}: RSS delta"] = fmt(f.rss_delta_mb, " MB", 0)
    finally:
        code = server.stop()
        row["exit code on SIGTERM"] = str(code)
    return row


def print_table(columns: list[str], rows: list[dict]) -> None:
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    width = max(len(k) for k in keys)
    widths = [
        max(len(c), *(len(r.get(k, "")) for k in keys)) for c, r in zip(columns, rows, strict=True)
    ]
    heads = " | ".join(f"{c:<{w}}" for c, w in zip(columns, widths, strict=True))
    print()
    print(f"| {'':<{width}} | {heads} |")
    print(f"|{'-' * (width + 2)}|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for k in keys:
        cells = " | ".join(f"{r.get(k, '-'):<{w}}" for r, w in zip(rows, widths, strict=True))
        print(f"| {k:<{width}} | {cells} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline-ref", help="also measure this git ref's server (e.g. HEAD~3)")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--attack-connections", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=5.0, help="--idle/--request-timeout")
    parser.add_argument("--give-up-after", type=float, default=30.0, help="per fault run")
    parser.add_argument(
        "--stalled-bytes", type=int, default=1 << 20, help="body bytes a stalled client sends"
    )
    parser.add_argument("--skip-attacks", action="store_true")
    args = parser.parse_args(argv)
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    load_average = os.getloadavg()[0]
    workdir = Path(tempfile.mkdtemp(prefix="rekface-serve-load-"))
    try:
        targets = prepare_targets(args.baseline_ref, workdir)
        rows = [measure(t, args, workdir, log) for t in targets]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"\n{args.clients} CompareFaces clients x {args.duration:.0f} s; "
        f"{args.attack_connections} bad connections per fault run; timeouts {args.timeout} s "
        f"where supported; {os.cpu_count()} cores, load average {load_average:.1f} at start"
    )
    print_table([t.name for t in targets], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
