"""What a newcomer reads in the terminal: the address served, a line per request on the embedded
default, and a one-line warning, not a traceback, for a request naming a host not allowed."""

import os
import subprocess
import sys
import time
import urllib.request

from django.conf import settings

from testkit.stack import free_port, wait_for


def test_a_disallowed_host_is_a_one_line_warning(api, caplog):
    caplog.set_level("INFO")
    assert api.get("/ping", headers={"host": "172.18.0.5:8000"}).status_code == 400
    (record,) = [r for r in caplog.records if r.name == "django.security.DisallowedHost"]
    assert (record.levelname, record.exc_info) == ("WARNING", None)
    assert "172.18.0.5" in record.getMessage()
    assert "Traceback" not in caplog.text


def test_the_server_says_where_it_listens_and_logs_each_request(tmp_path):
    """`make serve` on the embedded default: the URL first, no warning about the thread count
    the project chose, then one line per request."""
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "DJANGO_ENV_FILE": "/dev/null",
        "SQLITE_PATH": str(tmp_path / "db.sqlite3"),
        "APP_PORT": str(port),
        "WEB_WORKERS": "1",
        "WEB_THREADS": "32",
    }
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "config.serve"],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1), "granian"
        )
        urllib.request.urlopen(f"http://127.0.0.1:{port}/ping?secret=1", timeout=5).read()
        deadline = time.monotonic() + 10
        while "GET /ping 200" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        server.terminate()
        server.wait(timeout=40)
    text = log.read_text()
    assert f"http://127.0.0.1:{port}/" in text.splitlines()[0], text
    assert "quite high" not in text
    assert "WARNING" not in text, text
    assert "ERROR" not in text, text
    assert "GET /ping 200" in text
    assert "secret" not in text
