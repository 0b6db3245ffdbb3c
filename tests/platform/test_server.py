"""The production server as it runs: gunicorn with its configuration, on a spare port."""

import urllib.request

from testkit.stack import Stack, free_port


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def test_metrics_of_every_worker_are_served_on_their_own_port():
    port = free_port()
    with Stack("platform_metrics", extra_env={"APP_METRICS_PORT": str(port)}) as stack:
        url = stack.start_web(workers=2)
        for _ in range(20):
            get(f"{url}/ping")
        text = get(f"http://127.0.0.1:{port}/metrics")
    counted = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("django_http_requests_total_by_method_total{") and 'method="GET"' in line
    ]
    assert sum(counted) >= 20  # added up over both workers' files
