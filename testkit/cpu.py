"""Where a load's CPU went: a web server's processes, a redis-server and the PostgreSQL
server, read from `/proc` before and after the load and divided by the requests answered.
When only one stack is under load, the PostgreSQL server's time is that stack's (its
background work included). A process's figure counts the children it reaped, so nothing is
lost when a child exits mid-load. Empty where there is no `/proc`."""

import os
from collections.abc import Collection
from pathlib import Path

PARTS = ("web", "postgres", "redis")


def _ticks(stat: str) -> tuple[str, int, int]:
    """(command, session, user + system ticks of it and its reaped children)."""
    command, fields = stat[stat.index("(") + 1 : stat.rindex(")")], stat.rsplit(")", 1)[1].split()
    return command, int(fields[3]), sum(int(f) for f in fields[11:15])


def used(web: Collection[int], redis: int | None) -> dict[str, float]:
    """CPU seconds used so far by each part: `web` are the sessions of the web servers (each
    started in a session of its own), `redis` the redis-server's process id."""
    seconds = dict.fromkeys(PARTS, 0.0)
    tick = 1 / os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            command, session, ticks = _ticks((entry / "stat").read_text())
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        part = (
            "web" if session in web
            else "redis" if int(entry.name) == redis
            else "postgres" if command.startswith("postgres")
            else None
        )  # fmt: skip
        if part:
            seconds[part] += ticks * tick
    return seconds


def per_request(before: dict[str, float], after: dict[str, float], requests: int) -> dict[str, int]:
    """Microseconds of each part per request answered."""
    if not requests or not any(after.values()):
        return {}
    return {part: round((after[part] - before[part]) / requests * 1e6) for part in PARTS}
