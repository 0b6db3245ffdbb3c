"""Property-based API fuzzing: schemathesis generates requests from the service's own OpenAPI
schema and checks every answer (no 5xx, status and body as documented), on a throw-away stack.

    python loadtests/fuzz.py [--max-examples 40]
"""

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from testkit.stack import BIN, Stack


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-examples", type=int, default=40)
    args, extra = parser.parse_known_args()
    with Stack("flashsale_fuzz") as stack:
        url = stack.start_web(workers=2)
        stack.manage("start_sale", "--hourly")
        return subprocess.run(
            [
                str(BIN / "schemathesis"), "run", f"{url}/api/schema/",
                "--checks", "all",
                "--max-examples", str(args.max_examples),
                "--workers", "2",
                "--request-timeout", "10",
                *extra,
            ],
            check=False,
        ).returncode  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
