"""API fuzzing on a throw-away stack, with everything up, then Redis killed, then PostgreSQL
stopped. Schemathesis generates requests from the service's own OpenAPI schema and checks every
answer (no 5xx, status and body as documented) while PostgreSQL is up; the sweep of malformed
requests (loadtests/sweep.py: deep nesting, field floods, NUL and lone surrogates, huge query
strings, chunked bodies, every method on every path) runs in every phase.

    python -m loadtests.fuzz [--seed N | --seed random] [--max-examples 40] [schemathesis options]

The seed is fixed unless told otherwise, so that a run is reproducible; `--seed random` draws
one and prints it, to be passed back to replay a failure.
"""

import argparse
import random
import subprocess
import sys
from pathlib import Path

from testkit.stack import BIN, Stack
from testkit.sweep import DOWN_PROBES, PROBES, sweep, violations

FIXED_SEED = 20261130
CONFIG = Path(__file__).resolve().parent / "schemathesis.toml"


def schemathesis(url: str, seed: int, max_examples: int, extra: list[str]) -> int:
    return subprocess.run(
        [
            str(BIN / "schemathesis"), "--config-file", str(CONFIG), "run", f"{url}/api/schema/",
            "--max-examples", str(max_examples),
            "--seed", str(seed),
            # Examples found by an earlier run would make this one differ from its seed.
            "--generation-database", "none",
            # One worker: requests in the seed's order, and none of the tool's own thread races.
            "--workers", "1",
            "--request-timeout", "10",
            *extra,
        ],
        check=False,
    ).returncode  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-examples", type=int, default=40)
    parser.add_argument("--seed", default=str(FIXED_SEED), help="a number, or `random`")
    args, extra = parser.parse_known_args()
    seed = random.randrange(2**32) if args.seed == "random" else int(args.seed)
    print(f"fuzz seed: {seed} (replay with --seed {seed})", flush=True)
    failures = []
    with Stack("flashsale_fuzz", own_postgres=True) as stack:
        url = stack.start_web(workers=2, threads=8, server="granian")
        stack.manage("start_sale", "--hourly")
        assert stack.postgres is not None
        for phase, fault in [
            ("up", None),
            ("redis down", stack.redis.kill),
            ("postgresql down", stack.postgres.stop),
        ]:
            if fault:
                fault()
            # With Redis down each request pays for its timeouts, so fewer examples; with
            # PostgreSQL down nearly every documented answer becomes an undocumented 503, which
            # the sweep checks instead. The sweep sends every kind of malformed request in all.
            examples = args.max_examples if phase == "up" else max(1, args.max_examples // 4)
            if phase != "postgresql down" and schemathesis(url, seed, examples, extra):
                failures.append(f"schemathesis, {phase}")
            probes = DOWN_PROBES if phase == "postgresql down" else PROBES
            bad = violations(sweep(url, probes, concurrency=16), backend_down=phase != "up")
            print(f"sweep, {phase}: {len(bad)} violations", flush=True)
            for answer in bad[:20]:
                print(f"  {answer}", flush=True)
            if bad:
                failures.append(f"sweep, {phase}")
    print("fuzz: " + ("failed: " + "; ".join(failures) if failures else "passed"), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
