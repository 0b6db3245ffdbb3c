"""A sweep of malformed requests (testkit/sweep.py) on a throw-away stack, with everything up,
then with Redis killed, then with PostgreSQL stopped; a report of every answer.

    python -m loadtests.sweep [--server granian|gunicorn] [--report sweep.json]
"""

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from testkit.stack import Stack
from testkit.sweep import DOWN_PROBES, PROBES, summary, sweep, violations


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", choices=["granian", "gunicorn"], default="granian")
    parser.add_argument("--report", type=Path, help="write every answer here as JSON")
    args = parser.parse_args()
    report, failed = {}, 0
    with Stack("flashsale_sweep", own_postgres=True) as stack:
        url = stack.start_web(workers=2, threads=8, server=args.server)
        stack.manage("start_sale", "--hourly")
        assert stack.postgres is not None
        phases = [
            ("up", lambda: None, PROBES),
            ("redis down", stack.redis.kill, PROBES),
            ("postgresql down", stack.postgres.stop, DOWN_PROBES),
        ]
        for phase, fault, probes in phases:
            fault()
            answers = sweep(url, probes, concurrency=16)
            bad = violations(answers, backend_down=phase != "up")
            failed += len(bad)
            report[phase] = {
                "summary": summary(answers),
                "violations": [asdict(a) for a in bad],
                "answers": [asdict(a) for a in answers],
            }
            print(f"== {phase}: {len(answers)} requests, {len(bad)} violations", flush=True)
            for probe, counts in summary(answers).items():
                print(f"  {probe:40} {counts}", flush=True)
            for a in bad[:20]:
                print(f"  VIOLATION {a}", flush=True)
    if args.report:
        args.report.write_text(json.dumps(report, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
