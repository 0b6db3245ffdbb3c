"""A Celery worker that answers its remote control but no longer reads its queues, as kombu's
Redis transport can leave one after a broker outage, stops by itself (core/watchdog.py); one
that consumes stays up. A real worker and a real Redis broker; the stall is made by telling the
worker to stop reading the queue its probes come through."""

import subprocess
import time

from celery.utils.nodenames import host_format, worker_direct

from testkit.stack import Stack

STALL_SECONDS = 3


def test_a_worker_that_no_longer_consumes_stops_and_one_that_consumes_does_not():
    with Stack("watchdog", extra_env={"WORKER_STALL_SECONDS": str(STALL_SECONDS)}) as stack:
        stack.start_worker()
        worker = stack.processes["worker"]
        time.sleep(4 * STALL_SECONDS)
        assert worker.poll() is None, "a worker that consumes its probes stays up"
        assert "core.watchdog.probe" in stack.log("worker")

        node = host_format("worker@%h")
        subprocess.run(
            [
                str(stack.bin / "celery"), "-A", "config", "control", "cancel_consumer",
                worker_direct(node).name, "-d", node,
            ],
            cwd=stack.root, env=stack.env, check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        worker.wait(timeout=120)  # a bound against a hang, not a speed requirement
        assert "no longer consumes" in stack.log("worker")
