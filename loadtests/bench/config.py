"""What a run measures, read from the environment (the package's docstring lists the knobs)."""

import os
from dataclasses import dataclass, replace

SERVERS = ("granian", "gunicorn")


@dataclass(frozen=True)
class Config:
    duration: int = 10
    connections: tuple[int, ...] = (64, 256)
    web_workers: int = 2
    web_threads: int = 16
    instances: int = 1
    server: str = "granian"
    baseline: str = ""
    baseline_server: str = ""
    floor: bool = False
    worker_concurrency: int = 1
    backlog: int = 20_000
    sale_items: int = 40_000
    sale_open_runs: int = 5
    timeout: int = 1200

    @classmethod
    def from_env(cls) -> "Config":
        env = os.environ.get
        server = env("BENCH_SERVER", "granian")
        config = cls(
            duration=int(env("BENCH_DURATION", "10").removesuffix("s")),
            web_workers=int(env("BENCH_WEB_WORKERS", "2")),
            web_threads=int(env("BENCH_WEB_THREADS", "16")),
            instances=int(env("BENCH_INSTANCES", "1")),
            server=server,
            baseline=env("BENCH_BASELINE", ""),
            baseline_server=env("BENCH_BASELINE_SERVER", server),
            floor=env("BENCH_FLOOR", "") not in ("", "0", "false", "no"),
            worker_concurrency=int(env("BENCH_WORKER_CONCURRENCY", "1")),
            backlog=int(env("BENCH_BACKLOG", "20000")),
            sale_items=int(env("BENCH_SALE_ITEMS", "40000")),
            sale_open_runs=int(env("BENCH_SALE_OPEN_RUNS", "5")),
            timeout=int(env("BENCH_TIMEOUT", "1200")),
        )
        for name in ("BENCH_SERVER", "BENCH_BASELINE_SERVER"):
            if env(name, server) not in SERVERS:
                raise SystemExit(f"{name}={env(name)!r}: one of {', '.join(SERVERS)}")
        if config.floor and server != "granian":
            raise SystemExit("BENCH_FLOOR: the floor is served by granian, so the project must be")
        # A run with a second side measures most cells twice: at 64 connections only, where the
        # targets are, it still ends within 10 minutes on a busy machine.
        paired = config.ab or config.floor
        connections = env("BENCH_CONNECTIONS", "64" if paired else "64,256")
        return replace(config, connections=tuple(int(c) for c in connections.split(",")))

    @property
    def ab(self) -> bool:
        return bool(self.baseline) or self.baseline_server != self.server
