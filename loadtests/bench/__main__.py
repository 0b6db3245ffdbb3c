"""`make bench`: the run, from the environment to `loadtests/results/bench.md` (the package's
docstring says what it measures)."""

import contextlib
import json
import os
import platform
import signal
import sys
import time
from dataclasses import asdict
from typing import Any

import psycopg

from loadtests.bench import RESULTS, say
from loadtests.bench.config import Config
from loadtests.bench.measures import measure_backlog
from loadtests.bench.sides import FloorSide, FloorStack, ProjectSide, Side, plan
from loadtests.bench.table import markdown, ratio
from loadtests.bench.trees import checkout_of, git, short_commit
from testkit.stack import Stack
from testkit.tickets import TicketFactory


def bench(config: Config) -> dict[str, Any]:
    started = time.monotonic()
    load_before = os.getloadavg()
    factory = TicketFactory(seed=1)
    tickets = [factory.make().body for _ in range(30_000)]
    with contextlib.ExitStack() as resources:
        projects = _project_sides(config, resources)
        floor = None
        if config.floor:
            floor = FloorSide("floor", "granian", resources.enter_context(FloorStack("bench_f")))
        sides: list[Side] = [*projects, *([floor] if floor else [])]
        for side in sides:
            side.prepare(config)
        _measure_cells(config, sides, tickets)
        for project in projects:
            with psycopg.connect(project.stack.db_url, autocommit=True) as db:
                project.backlog = measure_backlog(project.stack, db, project.urls, config)
            say(f"{project.label}: backlog parsed at {project.backlog['parse_rate_per_s']}/s")
    return {
        "config": asdict(config),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        },
        "sides": [project.result() for project in projects],
        "floor": floor.result() if floor else None,
        "seconds": round(time.monotonic() - started),
    }


def _project_sides(config: Config, resources: contextlib.ExitStack) -> list[ProjectSide]:
    """This checkout's stack, and in A/B the baseline's (another commit, or another server)."""
    here = git("describe", "--always", "--dirty")
    stack = resources.enter_context(Stack("bench_a"))
    sides = [ProjectSide(f"{here}/{config.server}", config.server, stack)]
    if config.ab:
        tree, python = resources.enter_context(checkout_of(config.baseline))
        there = short_commit(config.baseline) if config.baseline else here
        stack = resources.enter_context(Stack("bench_b", root=tree, python=python))
        server = config.baseline_server
        sides.append(ProjectSide(f"{there}/{server}", server, stack))
    return sides


def _measure_cells(config: Config, sides: list[Side], tickets: list[bytes]) -> None:
    """Every cell of the plan on every side that takes it. Which side goes first alternates
    from one shared cell to the next, so that neither always runs on a warmer machine."""
    shared = 0
    for endpoint, conns in plan(config.connections):
        taking = [n for n, side in enumerate(sides) if side.takes(endpoint, conns)]
        if len(taking) > 1:
            if shared % 2:
                taking.reverse()
            shared += 1
        cells = {n: sides[n].measure(endpoint, conns, config, tickets) for n in taking}
        first = cells.get(0)
        for n in range(1, len(sides)):
            if first and (other := cells.get(n)):
                pair = f"{sides[0].label} / {sides[n].label}"
                say(f"  {endpoint} at {conns}: {pair} = {ratio(first.rps, other.rps)}")


def main() -> int:
    config = Config.from_env()
    # The whole run is bounded: past the deadline, the stacks are torn down and we exit.
    signal.signal(signal.SIGALRM, lambda *_: sys.exit("bench: out of time"))
    signal.alarm(config.timeout)
    result = bench(config)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    (RESULTS / "bench.md").write_text(table)
    say("\n" + table)
    say(f"written: {RESULTS / 'bench.json'}, {RESULTS / 'bench.md'} ({result['seconds']} s)")
    measured = [*result["sides"], *([result["floor"]] if result["floor"] else [])]
    errors = sum(cell["errors"] for side in measured for cell in side["cells"])
    if errors:
        say(
            f"WARNING: {errors} unexpected answers or socket errors; see the statuses in bench.json"
        )
    return 0 if all(side["backlog"]["drained"] for side in result["sides"]) else 1


if __name__ == "__main__":
    sys.exit(main())
