"""The sides of a run: the project's stacks (this checkout, and a baseline in A/B) and the floor
(`loadtests/floor/`), each with what its cells have used up so far."""

import bisect
import urllib.request
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import psycopg

from loadtests.bench import say
from loadtests.bench.config import Config
from loadtests.bench.measures import count, time_sale_open
from loadtests.bench.wrk import Cell, Load, run_wrk
from testkit import cpu
from testkit.stack import Stack, free_port, wait_for


def plan(connections: tuple[int, ...]) -> list[tuple[str, int]]:
    """The cells in order. Checkout at 0 connections is the unmeasured pass (at 64) that only
    makes codes for the purchase cells."""
    first = ("ping", "health", "sale", "checkout")
    cells = [(endpoint, c) for endpoint in first for c in connections]
    cells.append(("checkout", 0))
    return cells + [(endpoint, c) for endpoint in ("purchase", "ticket") for c in connections]


@dataclass
class Side:
    """One stack under measurement."""

    label: str
    server: str
    stack: Stack
    urls: list[str] = field(default_factory=list)
    item_ids: list[int] = field(default_factory=list)
    next_item: int = 0
    codes: list[bytes] = field(default_factory=list)
    cells: list[Cell] = field(default_factory=list)

    def prepare(self, config: Config) -> None:
        raise NotImplementedError

    def takes(self, endpoint: str, conns: int) -> bool:
        raise NotImplementedError

    def furthest_item(self, db: psycopg.Connection) -> int:
        """The highest item id any checkout of this side has tried."""
        raise NotImplementedError

    def measure(
        self, endpoint: str, conns: int, config: Config, tickets: list[bytes]
    ) -> Cell | None:
        """One cell; None for the unmeasured checkout pass."""
        say(f"{self.label}: {endpoint} at {conns or 64} connections for {config.duration}s")
        load = Load(endpoint, conns or 64, config.duration, self.stack.workdir)
        with psycopg.connect(self.stack.db_url, autocommit=True) as db:
            before = self.cpu_used()
            cell = self.cell(db, load, config, tickets)
            cell.cpu_us = cpu.per_request(before, self.cpu_used(), cell.requests)
        say(f"  {cell.rps} req/s, p99 {cell.p99_ms} ms, statuses {cell.statuses}")
        say(f"  CPU per request, µs: {cell.cpu_us}")
        for sample in cell.samples[:3]:
            say(f"  e.g. {sample}")
        if not conns:
            return None
        self.cells.append(cell)
        return cell

    def cpu_used(self) -> dict[str, float]:
        """CPU seconds so far of this side's web servers, its redis-server and PostgreSQL."""
        processes = self.stack.processes.items()
        web = [p.pid for name, p in processes if name.startswith(("web-", "floor-"))]
        redis = self.stack.redis.process
        return cpu.used(web, redis.pid if redis else None)

    def cell(
        self, db: psycopg.Connection, load: Load, config: Config, tickets: list[bytes]
    ) -> Cell:
        if load.endpoint == "checkout":
            return self._checkouts(db, load)
        if load.endpoint == "ticket":
            cell = run_wrk(self.urls, load, tickets)
            cell.note = f"{len(tickets)} distinct tickets, reused when exhausted"
            return cell
        return run_wrk(self.urls, load)

    def _checkouts(self, db: psycopg.Connection, load: Load) -> Cell:
        # Each cell starts on items no earlier cell has tried. wrk's threads advance unevenly
        # through their share: the next cell starts past the furthest item tried, not after as
        # many items as there were requests.
        codes_file = self.stack.workdir / "codes"
        items = [str(pk).encode() for pk in self.item_ids[self.next_item :]]
        cell = run_wrk(self.urls, replace(load, codes_out=codes_file), items)
        self.next_item = bisect.bisect_right(self.item_ids, self.furthest_item(db))
        self.codes += codes_file.read_bytes().split()
        cell.note = f"{cell.statuses.get('201', 0)} new holds"
        return cell

    def result(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "server": self.server,
            "cells": [asdict(cell) for cell in self.cells],
        }


@dataclass
class ProjectSide(Side):
    """The project, on a stack of `testkit/stack.py`: a sale to check out from, the purchase
    cells that spend its codes, and the measures beside the cells."""

    purchase_cells: int = 0
    sale_id: int = 0
    sale_open: dict[str, Any] = field(default_factory=dict)
    backlog: dict[str, Any] = field(default_factory=dict)

    def prepare(self, config: Config) -> None:
        self.urls = [
            self.stack.start_web(
                workers=config.web_workers, threads=config.web_threads, server=self.server
            )
            for _ in range(config.instances)
        ]
        say(f"{self.label}: {self.server} on {', '.join(self.urls)}; timing sale_open")
        self.sale_open = time_sale_open(self.stack, config.sale_open_runs)
        sale = self.stack.manage_json(
            "start_sale", "--items", str(config.sale_items), "--user-limit", "10", "--ttl", "3600"
        )
        self.sale_id = sale["id"]
        rows = self.stack.query(
            "SELECT id FROM sales_item WHERE sale_id = %s ORDER BY id", [self.sale_id]
        )
        self.item_ids = [row[0] for row in rows]

    def takes(self, endpoint: str, conns: int) -> bool:
        return True

    def furthest_item(self, db: psycopg.Connection) -> int:
        sql = "SELECT max(item_id) FROM sales_checkoutattempt WHERE sale_id = %s"
        return count(db, sql, self.sale_id)

    def cell(
        self, db: psycopg.Connection, load: Load, config: Config, tickets: list[bytes]
    ) -> Cell:
        if load.endpoint != "purchase":
            return super().cell(db, load, config, tickets)
        # The codes split between the cells; a code is spent once per cell.
        share = len(self.codes) // len(config.connections)
        n, self.purchase_cells = self.purchase_cells, self.purchase_cells + 1
        before = count(db, "SELECT count(*) FROM sales_purchase")
        cell = run_wrk(self.urls, load, self.codes[n * share : (n + 1) * share])
        first_time = count(db, "SELECT count(*) FROM sales_purchase") - before
        cell.note = f"{first_time} first-time purchases of {share} codes"
        if first_time < cell.ok:
            cell.note += f", {cell.ok - first_time} repeats (200, idempotent)"
        return cell

    def result(self) -> dict[str, Any]:
        return {**super().result(), "sale_open": self.sale_open, "backlog": self.backlog}


FLOOR_ENDPOINTS = ("ping", "checkout", "ticket")


class FloorStack(Stack):
    """A database and a redis-server for the floor, which makes its own tables: no
    migrations."""

    def start(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.name}"')
        self.redis.start()

    def start_floor(self, *, workers: int, threads: int) -> str:
        """The floor on a spare port, served as `make serve` serves the project; returns its
        base URL once it answers."""
        port = free_port()
        env = {"APP_PORT": str(port), "WEB_WORKERS": str(workers), "WEB_THREADS": str(threads)}
        self.spawn(f"floor-{port}", [self.python, "-m", "loadtests.floor"], env=env)
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: urllib.request.urlopen(f"{url}/ping", timeout=1), f"floor on {port}")
        return url


@dataclass
class FloorSide(Side):
    """The floor: ping, checkout and ticket only, on items numbered from 1."""

    def prepare(self, config: Config) -> None:
        assert isinstance(self.stack, FloorStack)
        self.urls = [
            self.stack.start_floor(workers=config.web_workers, threads=config.web_threads)
            for _ in range(config.instances)
        ]
        say(f"{self.label}: {self.server} on {', '.join(self.urls)}")
        self.item_ids = list(range(1, config.sale_items + 1))

    def takes(self, endpoint: str, conns: int) -> bool:
        return endpoint in FLOOR_ENDPOINTS and conns > 0

    def furthest_item(self, db: psycopg.Connection) -> int:
        return count(db, "SELECT max(item_id) FROM attempt")
