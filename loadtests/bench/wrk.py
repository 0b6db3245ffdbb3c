"""Running wrk (`loadtests/wrk/bench.lua`) against the web instances of a side, and adding up
what it prints into one `Cell`."""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtests.bench import ROOT

LUA = ROOT / "loadtests" / "wrk" / "bench.lua"
RECORD_SEPARATOR = b"\x1e"  # between tickets in a data file: tickets span several lines
# Refusals the spec promises for well-formed requests: reported apart, not as errors.
EXPECTED_REFUSALS = {"checkout": {409}}


@dataclass
class Cell:
    endpoint: str
    connections: int
    requests: int = 0
    seconds: float = 0.0
    rps: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    ok: int = 0
    expected_refusals: int = 0
    errors: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)
    samples: list[str] = field(default_factory=list)  # a few answers of each 4xx/5xx status
    note: str = ""
    cpu_us: dict[str, int] = field(default_factory=dict)  # per request, by part (`cpu.py`)


@dataclass(frozen=True)
class Load:
    """What every wrk of one cell is told."""

    endpoint: str
    connections: int  # in all, split between the instances
    seconds: int
    workdir: Path
    codes_out: Path | None = None  # where checkout writes the codes of its holds
    once: bool = False  # each record sent once, then only pings


def write_records(path: Path, records: list[bytes], separator: bytes = b"\n") -> Path:
    path.write_bytes(separator.join(records) + separator)
    return path


def run_wrk(
    urls: list[str],
    load: Load,
    records: list[bytes] | None = None,
    *,
    until: Callable[[], bool] | None = None,
) -> Cell:
    """One wrk per web instance, connections and records split between them, results added up.

    With `until`, wrk is interrupted as soon as it returns true (checked four times a second).
    """
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install -y wrk)")
    processes = []
    try:
        for n, url in enumerate(urls):
            share = None if records is None else records[n :: len(urls)]
            processes.append(_start(wrk, url, n, len(urls), load, share))
        if until is not None:
            _interrupt_when(until, processes)
        outputs = [_output(process, load.seconds) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    if load.codes_out is not None:
        parts = [load.codes_out.with_suffix(f".{n}") for n in range(len(urls))]
        load.codes_out.write_text("".join(p.read_text() for p in parts if p.exists()))
    cell = merge(load.endpoint, load.connections, outputs)
    for n in range(len(urls)):
        with contextlib.suppress(FileNotFoundError):
            cell.samples += (load.workdir / f"samples.{n}").read_text().splitlines()
    return cell


def _start(
    wrk: str, url: str, n: int, instances: int, load: Load, records: list[bytes] | None
) -> subprocess.Popen[bytes]:
    """The n-th of a cell's wrk processes, on its share of the connections and records."""
    threads = max(1, (os.cpu_count() or 2) // instances)
    env = {
        **os.environ,
        "WRK_ENDPOINT": load.endpoint,
        "WRK_THREADS": str(threads),
        "WRK_PREFIX": f"{load.endpoint}-{load.connections}-{n}-{time.monotonic_ns()}",
        "WRK_ONCE": "1" if load.once else "0",
        "WRK_SAMPLES_OUT": str(load.workdir / f"samples.{n}"),
    }
    if records is not None:
        separator = RECORD_SEPARATOR if load.endpoint == "ticket" else b"\n"
        part = load.workdir / f"{load.endpoint}-{n}.data"
        env["WRK_DATA"] = str(write_records(part, records, separator))
    if load.codes_out is not None:
        env["WRK_CODES_OUT"] = str(load.codes_out.with_suffix(f".{n}"))
    args = [wrk, f"-t{threads}", f"-c{max(threads, load.connections // instances)}"]
    args += [f"-d{load.seconds}s", "--timeout", "10s", "-s", str(LUA), url]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _interrupt_when(until: Callable[[], bool], processes: list[subprocess.Popen[bytes]]) -> None:
    while any(p.poll() is None for p in processes) and not until():
        time.sleep(0.25)
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGINT)


def _output(process: subprocess.Popen[bytes], seconds: int) -> dict[str, Any]:
    """The one line wrk's `done()` printed, as a dict."""
    stdout, stderr = process.communicate(timeout=seconds + 60)
    text = stdout.decode()
    line = next((ln for ln in text.splitlines() if ln.startswith("WRK_JSON")), "")
    if not line:
        raise RuntimeError(f"wrk printed no result:\n{text}{stderr.decode()}")
    result: dict[str, Any] = json.loads(line.removeprefix("WRK_JSON "))
    return result


def merge(endpoint: str, connections: int, outputs: list[dict[str, Any]]) -> Cell:
    """Adds the runs up. Percentiles can't be added: with two runs the worse of each is kept."""
    cell = Cell(endpoint, connections)
    statuses: dict[str, int] = {}
    for out in outputs:
        for status, count in out["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
        for kind, count in out["socket_errors"].items():
            cell.socket_errors[kind] = cell.socket_errors.get(kind, 0) + count
        cell.requests += out["requests"]
        cell.rps += out["requests"] / (out["duration_us"] / 1e6)
        cell.seconds = max(cell.seconds, round(out["duration_us"] / 1e6, 1))
    for name in ("p50", "p90", "p99", "max"):
        worst = max(out["latency_us"][name] for out in outputs)
        setattr(cell, f"{name}_ms", round(worst / 1000, 1))
    cell.rps = round(cell.rps, 1)
    cell.statuses = dict(sorted(statuses.items()))
    _classify(cell)
    return cell


def _classify(cell: Cell) -> None:
    """Answers into ok, expected refusals and errors. Timeouts are requests without an answer,
    connect/read/write errors broken connections: errors both."""
    expected = EXPECTED_REFUSALS.get(cell.endpoint, set())
    for status, count in cell.statuses.items():
        if 200 <= int(status) < 400:
            cell.ok += count
        elif int(status) in expected:
            cell.expected_refusals += count
        else:
            cell.errors += count
    cell.errors += sum(cell.socket_errors.values())
