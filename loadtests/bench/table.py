"""The markdown table of a run's result (`bench.json`): one row per cell, the sides side by
side, and the ratios that compare them.

`python -m loadtests.bench.table [bench.json]` prints the table of a result written earlier.
"""

import json
import sys
from pathlib import Path
from typing import Any

from loadtests.bench import RESULTS

Result = dict[str, Any]


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "-"


def markdown(result: Result) -> str:
    sides, floor = result["sides"], result.get("floor")
    lines = [_heading(result), ""]
    if len(sides) == 2:
        lines += [f"A: {sides[0]['label']}; B: {sides[1]['label']}", ""]
    lines += _cells_table(sides, floor)
    lines.append("")
    lines += _cpu_table([*sides, *([floor] if floor else [])])
    lines += _measures(sides)
    return "\n".join(lines) + "\n"


def _heading(result: Result) -> str:
    config, machine = result["config"], result["machine"]
    sides = [*result["sides"], *([result["floor"]] if result.get("floor") else [])]
    servers = " vs ".join(f"{side['label']} ({side['server']})" for side in sides)
    return (
        f"wrk, {config['duration']} s per cell; {servers}: {config['instances']} x "
        f"({config['web_workers']} workers x {config['web_threads']} threads); "
        f"{machine['cpus']} CPUs, load average {machine['load_average_before'][0]} before, "
        f"{machine['load_average_after'][0]} after"
    )


def _cells_table(sides: list[Result], floor: Result | None) -> list[str]:
    """One project side: its figures, 2xx and notes; two: both, and A / B. With the floor, its
    figures beside, and the first side over the floor's on the endpoints the floor has."""
    single = len(sides) == 1
    columns = ["endpoint", "conns"]
    for name in [""] if single else ["A ", "B "]:
        columns += [f"{name}req/s", "p50 / p99 ms", "vs /ping", "errors"]
    columns.append("2xx" if single else "A / B")
    if floor is not None:
        columns += [
            "floor req/s",
            "p50 / p99 ms",
            "errors",
            f"{'project' if single else 'A'} / floor",
        ]
    if single:
        columns.append("notes")
    floor_cells = {(c["endpoint"], c["connections"]): c for c in (floor or {}).get("cells", [])}
    pings = [_pings(side) for side in sides]
    lines = [_row(columns), _rule(columns)]
    for cells in zip(*(side["cells"] for side in sides), strict=True):
        first = cells[0]
        row = [first["endpoint"], str(first["connections"])]
        for n, cell in enumerate(cells):
            ping = pings[n].get(cell["connections"], 0)
            row += [f"{cell['rps']:,.0f}", _latency(cell), ratio(cell["rps"], ping)]
            row.append(str(cell["errors"]))
        row.append(f"{first['ok']:,}" if single else f"**{ratio(first['rps'], cells[1]['rps'])}**")
        if floor is not None:
            row += _beside_floor(first, floor_cells.get((first["endpoint"], first["connections"])))
        if single:
            row.append(first["note"])
        lines.append(_row(row))
    return lines


def _beside_floor(cell: Result, floor: Result | None) -> list[str]:
    """The floor's figures for the cell and project / floor; blank where the floor has no such
    endpoint."""
    if floor is None:
        return ["", "", "", ""]
    mark = f"**{ratio(cell['rps'], floor['rps'])}**"
    return [f"{floor['rps']:,.0f}", _latency(floor), str(floor["errors"]), mark]


def _cpu_table(sides: list[Result]) -> list[str]:
    """CPU per request by part (web / PostgreSQL / Redis, µs) and in all, side by side."""
    if not any(cell.get("cpu_us") for side in sides for cell in side["cells"]):
        return []
    columns = ["endpoint", "conns"]
    columns += [f"{side['label']}: web / PostgreSQL / Redis = all, µs" for side in sides]
    lines = ["CPU per request, where it went:", "", _row(columns), _rule(columns)]
    by_side = [{(c["endpoint"], c["connections"]): c for c in side["cells"]} for side in sides]
    for key in by_side[0]:
        row = [key[0], str(key[1])]
        for cells in by_side:
            cpu = cells.get(key, {}).get("cpu_us")
            row.append(f"{' / '.join(map(str, cpu.values()))} = {sum(cpu.values())}" if cpu else "")
        lines.append(_row(row))
    return [*lines, ""]


def _pings(side: Result) -> dict[int, float]:
    """`/ping`'s rate by connections: what each endpoint is set against."""
    return {c["connections"]: c["rps"] for c in side["cells"] if c["endpoint"] == "ping"}


def _latency(cell: Result) -> str:
    return f"{cell['p50_ms']} / {cell['p99_ms']}"


def _row(values: list[str]) -> str:
    return "| " + " | ".join(values) + " |"


def _rule(columns: list[str]) -> str:
    return "|" + "|".join("---" if c in ("endpoint", "notes") else "---:" for c in columns) + "|"


def _measures(sides: list[Result]) -> list[str]:
    """Opening a sale and the backlog parse rate, per project side, and their A / B."""
    lines = []
    for side in sides:
        opening, backlog = side["sale_open"], side["backlog"]
        lines += [
            f"{side['label']}: opening a {opening['items']:,}-item sale: min {opening['min_s']} s, "
            f"median {opening['median_s']} s over {len(opening['runs_s'])} runs. Backlog: "
            f"{backlog['tickets']:,} tickets parsed by one worker "
            f"({backlog['worker_processes']} process) at {backlog['parse_rate_per_s']:,} "
            f"tickets/s sustained ({backlog['overall_rate_per_s']:,}/s from the worker's start); "
            f"outcome {backlog['statuses']}"
            + ("" if backlog["drained"] else " — NOT DRAINED within 300 s"),
            "",
        ]
    if len(sides) == 2:
        a, b = (side["backlog"]["parse_rate_per_s"] for side in sides)
        lines.append(
            f"Backlog parse rate, {sides[0]['label']} / {sides[1]['label']}: **{ratio(a, b)}**"
        )
    return lines


if __name__ == "__main__":
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS / "bench.json"
    print(markdown(json.loads(source.read_text())), end="")
