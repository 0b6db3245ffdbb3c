"""Nobody guesses the admin password: after a few failed logins, the username and the address
are locked out for a cool-off, through the real login form, across server processes; the
lockout is a page with 429, counted, visible and liftable in the admin; the embedded default's
demo login keeps working for a newcomer."""

import http.client
import json
import os
import re
import subprocess
import sys
import urllib.parse
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.core.management import call_command
from django.db.models import F
from django.test import Client

from testkit.stack import Stack
from tests.metrics import sample

LIMIT = 5  # the default of ADMIN_LOCKOUT_FAILURES
LOGIN = "/admin/login/"
# Client addresses (TEST-NET-1, RFC 5737), only ever written into requests, never reached.
ATTACKER, OPERATOR, ELSEWHERE = "192.0.2.10", "192.0.2.20", "192.0.2.30"


def csrf_token(page: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


class Browser:
    """One person at the login form, from one address: a client that checks CSRF as a
    browser's requests are checked, posting the token the form carries."""

    def __init__(self, address: str = "127.0.0.1") -> None:
        self.client = Client(enforce_csrf_checks=True, REMOTE_ADDR=address)

    def log_in(self, username: str, password: str):
        form = self.client.get(LOGIN)
        assert form.status_code == 200
        token = csrf_token(form.content.decode())
        return self.client.post(
            LOGIN, {"username": username, "password": password, "csrfmiddlewaretoken": token}
        )


@pytest.fixture(autouse=True)
def _quick_hashes(settings):
    """Each login hashes its password: the fast hasher keeps these tests short (the real
    servers below use the real one)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def users(django_user_model):
    django_user_model.objects.create_superuser("boss", password="right-password")
    django_user_model.objects.create_superuser("other", password="other-password")


@pytest.mark.django_db
@pytest.mark.smoke
def test_the_login_form_locks_out_after_a_few_failures(users):
    browser = Browser()
    failures, lockouts = sample("admin_login_failures_total"), sample("admin_lockouts_total")
    statuses = [browser.log_in("boss", f"guess-{n}").status_code for n in range(LIMIT)]
    assert statuses == [200] * (LIMIT - 1) + [429]

    refused = browser.log_in("boss", "right-password")  # the right password no longer opens
    assert refused.status_code == 429
    assert refused["Content-Type"].startswith("text/html")
    assert refused["Retry-After"] == "900"
    page = refused.content.decode()
    assert "Too many failed logins" in page
    assert "locked for 15 minutes" in page
    assert "axes_reset_username boss" in page
    assert "_auth_user_id" not in browser.client.session
    assert sample("admin_login_failures_total") - failures == LIMIT + 1
    assert sample("admin_lockouts_total") - lockouts == 2


@pytest.mark.django_db
@pytest.mark.smoke
def test_a_username_and_an_address_are_locked_out_each_on_its_own(users):
    for n in range(LIMIT):
        Browser(ATTACKER).log_in("boss", f"guess-{n}")
    # the username, from any address
    assert Browser(OPERATOR).log_in("boss", "right-password").status_code == 429
    # the address, for any username
    assert Browser(ATTACKER).log_in("other", "other-password").status_code == 429
    # anyone else, from anywhere else
    assert Browser(ELSEWHERE).log_in("other", "other-password").status_code == 302


@pytest.mark.django_db
@pytest.mark.smoke
def test_failures_spread_over_addresses_lock_the_username(users):
    addresses = [f"192.0.2.{100 + n}" for n in range(LIMIT)]
    statuses = [Browser(a).log_in("boss", "guess").status_code for a in addresses]
    assert statuses[-1] == 429
    assert Browser(OPERATOR).log_in("boss", "right-password").status_code == 429


@pytest.mark.django_db
@pytest.mark.smoke
def test_the_lockout_lifts_after_the_cool_off_without_a_try(users):
    def time_passes(**delta: int) -> None:
        AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(**delta))

    browser = Browser()
    for n in range(LIMIT):
        browser.log_in("boss", f"guess-{n}")
    time_passes(minutes=10)
    assert browser.log_in("boss", "right-password").status_code == 429  # the wait starts again
    time_passes(minutes=10)
    assert browser.log_in("boss", "right-password").status_code == 429
    time_passes(minutes=15, seconds=1)  # 15 minutes without a try
    assert browser.log_in("boss", "right-password").status_code == 302


@pytest.mark.django_db
@pytest.mark.smoke
def test_the_admin_shows_who_is_locked_out_and_unlocks_them(users, django_user_model):
    for n in range(LIMIT):
        Browser(ATTACKER).log_in("boss", f"guess-{n}")
    Browser(ELSEWHERE).log_in("other", "wrong")
    operator = Client()
    operator.force_login(django_user_model.objects.create_superuser("chief", password="pw"))

    index = operator.get("/admin/").content.decode()
    assert "/admin/axes/accessattempt/" in index  # on the operators' site

    page = operator.get("/admin/axes/accessattempt/").content.decode()
    rows = re.findall(r"<tr>.*?</tr>", page, re.S)
    boss = next(row for row in rows if ">boss<" in row)
    other = next(row for row in rows if ">other<" in row)
    assert "username and address</span> until" in boss
    assert '<td class="field-lockout">no</td>' in other
    locked_only = operator.get("/admin/axes/accessattempt/?locked=yes").content.decode()
    assert ">boss<" in locked_only
    assert ">other<" not in locked_only

    locked = AccessAttempt.objects.get(username="boss")
    response = operator.post(
        "/admin/axes/accessattempt/",
        {"action": "unlock", "_selected_action": [locked.pk]},
    )
    assert response.status_code == 302
    assert list(AccessAttempt.objects.values_list("username", flat=True)) == ["other"]
    assert Browser(ATTACKER).log_in("boss", "right-password").status_code == 302


@pytest.mark.django_db
@pytest.mark.smoke
def test_the_demo_login_works_and_make_run_lifts_a_lockout(capsys, settings):
    settings.EMBEDDED = True  # as `make run` has it (this suite may run on PostgreSQL)
    call_command("demo_admin")
    assert Browser().log_in("admin", "admin").status_code == 302
    for n in range(LIMIT):
        Browser().log_in("admin", f"typo-{n}")
    assert Browser().log_in("admin", "admin").status_code == 429
    call_command("demo_admin")  # what `make run` runs before serving
    assert "Lifted the login lockout" in capsys.readouterr().out
    assert Browser().log_in("admin", "admin").status_code == 302


def settings_in_a_fresh_process(**variables: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("ADMIN_", "DATABASE_URL"))}
    environ.update(variables, DJANGO_SETTINGS_MODULE="config.settings", DJANGO_ENV_FILE="/dev/null")
    code = (
        "import django, json; django.setup(); from django.conf import settings as s;"
        "from django.urls import reverse; print(json.dumps({'limit': s.AXES_FAILURE_LIMIT,"
        "'seconds': s.AXES_COOLOFF_TIME.total_seconds(), 'login': reverse('admin:login')}))"
    )
    return subprocess.run(
        [sys.executable, "-c", code], env=environ, capture_output=True, text=True, check=False
    )


@pytest.mark.smoke
def test_the_lockout_knobs_and_the_admin_path_come_from_the_environment():
    default = settings_in_a_fresh_process()
    assert json.loads(default.stdout) == {"limit": 5, "seconds": 900.0, "login": LOGIN}
    tuned = settings_in_a_fresh_process(
        ADMIN_LOCKOUT_FAILURES="3", ADMIN_LOCKOUT_SECONDS="3600", ADMIN_PATH="/ops-7f3a/admin/"
    )
    assert json.loads(tuned.stdout) == {
        "limit": 3,
        "seconds": 3600.0,
        "login": "/ops-7f3a/admin/login/",
    }
    for name, value in [
        ("ADMIN_LOCKOUT_FAILURES", "0"),
        ("ADMIN_LOCKOUT_SECONDS", "soon"),
        ("ADMIN_PATH", "/"),
        ("ADMIN_PATH", "a dmin"),
    ]:
        refused = settings_in_a_fresh_process(**{name: value})
        assert refused.returncode != 0
        assert "ImproperlyConfigured" in refused.stderr
        assert name in refused.stderr


# -- across server processes ---------------------------------------------------------------


class Form:
    """The admin login form over HTTP, from one client address (forwarded by a trusted proxy)."""

    def __init__(self, url: str, address: str) -> None:
        self.netloc, self.address = urllib.parse.urlsplit(url).netloc, address

    def request(self, method: str, body: str = "", cookie: str = "") -> http.client.HTTPResponse:
        connection = http.client.HTTPConnection(self.netloc, timeout=30)
        headers = {"X-Forwarded-For": self.address}
        if cookie:
            headers["Cookie"] = cookie
        if body:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection.request(method, LOGIN, body=body, headers=headers)
        response = connection.getresponse()
        response.read_body = response.read()  # type: ignore[attr-defined]
        connection.close()
        return response

    def log_in(self, username: str, password: str) -> tuple[int, str]:
        form = self.request("GET")
        assert form.status == 200
        # The cookie is Secure in production mode: sent here by hand over plain HTTP.
        cookie = form.headers["Set-Cookie"].split(";", 1)[0]
        token = csrf_token(form.read_body.decode())  # type: ignore[attr-defined]
        body = urllib.parse.urlencode(
            {"username": username, "password": password, "csrfmiddlewaretoken": token}
        )
        answer = self.request("POST", body, cookie)
        return answer.status, answer.read_body.decode()  # type: ignore[attr-defined]


def lockouts_counted(url: str) -> float:
    connection = http.client.HTTPConnection(urllib.parse.urlsplit(url).netloc, timeout=30)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    match = re.search(r"^admin_lockouts_total (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def test_a_lockout_on_one_server_holds_on_another():
    with Stack("lockout", extra_env={"TRUSTED_PROXY_COUNT": "1"}) as stack:
        stack.manage(
            "shell",
            "-c",
            "from django.contrib.auth.models import User;"
            "User.objects.create_superuser('boss', password='right-password');"
            "User.objects.create_superuser('other', password='other-password')",
        )
        one, two = stack.start_web(workers=1), stack.start_web(workers=1)

        statuses = [Form(one, ATTACKER).log_in("boss", f"guess-{n}")[0] for n in range(LIMIT)]
        assert statuses == [200] * (LIMIT - 1) + [429]

        # The other server, another process with its own memory, refuses the same username
        # from another address and the same address for another username.
        status, page = Form(two, OPERATOR).log_in("boss", "right-password")
        assert (status, "Too many failed logins" in page) == (429, True)
        assert Form(two, ATTACKER).log_in("other", "other-password")[0] == 429
        assert Form(two, ELSEWHERE).log_in("other", "other-password")[0] == 302
        assert (lockouts_counted(one), lockouts_counted(two)) == (1, 2)

        stack.manage("axes_reset_username", "boss")
        assert Form(two, OPERATOR).log_in("boss", "right-password")[0] == 302
