"""CPU per request, as `make bench` reports it: the time a web server's processes used, read
from `/proc`, counted to the web part and to no other."""

import subprocess
import sys
from pathlib import Path

import pytest

from testkit import cpu

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")

BURN = "import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end: pass"


SERVER = (
    "import subprocess, sys, time\n"
    "sys.stdin.readline()\n"
    f"subprocess.run([sys.executable, '-c', {BURN!r}])\n"
    "print('reaped', flush=True)\n"
    "time.sleep(60)"
)


def test_a_web_servers_children_count_as_web_once_reaped_too():
    # The server's child burns CPU and exits; the server reaps it, as granian reaps a worker.
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert server.stdin is not None
    assert server.stdout is not None
    try:
        before = cpu.used([server.pid], None)
        server.stdin.write("go\n")
        server.stdin.flush()
        assert server.stdout.readline() == "reaped\n"
        after = cpu.used([server.pid], None)
    finally:
        server.kill()
        server.wait()
    spent = cpu.per_request(before, after, requests=1000)
    assert spent["web"] >= 450  # 0.5 s over 1,000 requests, all of it after `before`
    assert spent["redis"] == 0
