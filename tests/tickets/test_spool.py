import contextlib
import hashlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from core.process import reset_all
from testkit.http import run_threads
from testkit.tickets import SAMPLE, ticket_bytes
from tickets import services, spool
from tickets.exceptions import IdempotencyKeyReused
from tickets.models import Ticket
from tickets.services import ingest

ROOT = Path(__file__).resolve().parents[2]


def record(body: bytes = SAMPLE, key: str | None = None) -> spool.SpooledTicket:
    return spool.SpooledTicket(uuid.uuid4(), datetime.now(UTC), key, body)


@pytest.mark.smoke
@pytest.mark.django_db
def test_drain_stores_each_spooled_ticket_once_and_empties_the_spool():
    records = [record(ticket_bytes(str(n), [("a", "A", "1")])) for n in range(7)]
    for item in records:
        spool.append(item)
    assert spool.pending()
    assert spool.depth() == 7
    assert services.spool_drain() == 7
    assert not spool.pending()
    stored = {t.id: t for t in Ticket.objects.all()}
    assert set(stored) == {item.id for item in records}
    for item in records:
        assert bytes(stored[item.id].raw) == item.body
        assert stored[item.id].received_at == item.received_at
    assert services.spool_drain() == 0


@pytest.mark.smoke
@pytest.mark.django_db
def test_a_key_whose_ticket_waits_in_the_spool_is_answered_from_it():
    """The sender retries once the database is back, before the spool is drained: the same
    body gets the spooled ticket's receipt, another body 422; the drain stores one ticket."""
    spooled = record(SAMPLE, key="till-1-0001")
    spool.append(spooled)
    retried = services.ticket_ingest(body=SAMPLE, idempotency_key="till-1-0001")
    assert (retried.id, retried.received_at) == (spooled.id, spooled.received_at)
    with pytest.raises(IdempotencyKeyReused):
        services.ticket_ingest(body=SAMPLE + b"x,Y,1\n", idempotency_key="till-1-0001")
    assert not Ticket.objects.exists()
    assert services.spool_drain() == 1
    assert Ticket.objects.get().idempotency_key == "till-1-0001"


@pytest.mark.smoke
@pytest.mark.django_db
def test_a_spooled_ticket_whose_key_another_host_stored_is_kept_without_the_key():
    """Another host's spool cannot be asked: the ticket it stored with the key keeps it, and
    this host's spooled ticket, acknowledged too, is stored without it."""
    spooled = record(ticket_bytes("1", [("a", "A", "1")]), key="till-1-0001")
    spool.append(spooled)
    other = Ticket.objects.create(
        raw=SAMPLE, sha256="", received_at=spooled.received_at, idempotency_key="till-1-0001"
    )
    assert services.spool_drain() == 1
    assert Ticket.objects.get(idempotency_key="till-1-0001").id == other.id
    kept = Ticket.objects.get(id=spooled.id)
    assert (bytes(kept.raw), kept.idempotency_key) == (spooled.body, None)


@pytest.mark.smoke
@pytest.mark.django_db
def test_a_drainer_that_dies_before_forgetting_the_file_stores_nothing_twice(spool_dir):
    records = [record(key=f"k{n}") for n in range(3)]
    for item in records:
        spool.append(item)

    def store_then_die(batch):
        ingest._store_spooled(batch)
        raise ConnectionError("killed after the commit")

    with pytest.raises(ConnectionError):
        spool.drain(store_then_die)
    (sealed,) = spool_dir.glob("*.sealed")
    shutil.copy(sealed, sealed.with_name("copy.sealed"))
    assert services.spool_drain() == 6
    assert Ticket.objects.count() == 3
    assert not spool.pending()


@pytest.mark.smoke
@pytest.mark.django_db
def test_a_record_cut_short_keeps_the_file_for_an_operator(spool_dir):
    good = [record(), record()]
    for item in good:
        spool.append(item)
    (segment,) = spool_dir.glob("*.seg")
    with segment.open("ab") as file:
        file.write(spool._encode(record())[:-5])
    assert services.spool_drain() == 2
    assert set(Ticket.objects.values_list("id", flat=True)) == {item.id for item in good}
    assert len(list(spool_dir.glob("*.damaged"))) == 1
    assert not spool.pending()


@pytest.mark.smoke
def test_appends_racing_a_drainer_are_all_handed_over_exactly_once():
    """Sealing never loses a record a writer appends at the same moment."""
    handed: list[uuid.UUID] = []
    appended: list[uuid.UUID] = []
    writing = threading.Event()

    def writer(_: int) -> None:
        for _ in range(150):
            item = record()
            spool.append(item)
            appended.append(item.id)

    def drainer():
        while writing.is_set():
            spool.drain(lambda batch: handed.extend(t.id for t in batch))

    writing.set()
    drain_thread = threading.Thread(target=drainer, daemon=True)
    drain_thread.start()
    try:
        run_threads(4, writer, timeout=60)
    finally:
        writing.clear()
        drain_thread.join(timeout=60)
    assert not drain_thread.is_alive(), "the drainer is stuck"
    spool.drain(lambda batch: handed.extend(t.id for t in batch))
    assert len(handed) == len(set(handed)) == 600
    assert set(handed) == set(appended)


@pytest.mark.smoke
def test_a_second_drainer_steps_aside_while_one_is_at_work():
    spool.append(record())
    inner: list[int | None] = []
    spool.drain(lambda batch: inner.append(spool.drain(lambda _: None)))
    assert inner == [None]


def waiting(item: spool.SpooledTicket) -> spool.Waiting:
    return spool.Waiting(item.id, item.received_at, hashlib.sha256(item.body).hexdigest())


def full_scan(spool_dir: Path) -> tuple[int, dict[str, spool.Waiting]]:
    """What the index must answer, the slow way: every record of every waiting file."""
    count, keys = 0, dict[str, spool.Waiting]()
    for path in sorted([*spool_dir.glob("*.seg"), *spool_dir.glob("*.sealed")]):
        with contextlib.suppress(spool._Damaged):
            for _, item in spool._read(path):
                count += 1
                if item.idempotency_key is not None:
                    keys.setdefault(item.idempotency_key, waiting(item))
    return count, keys


def assert_index_reads_as_a_full_scan(spool_dir: Path, keys: list[str]) -> None:
    count, waiting = full_scan(spool_dir)
    assert spool.depth() == count
    assert {key: spool.find(key) for key in keys} == {key: waiting.get(key) for key in keys}


@pytest.mark.smoke
def test_a_key_spooled_before_a_restart_or_by_another_process_is_found():
    first, second = record(key="till-1-0001"), record(key="till-1-0002")
    spool.append(first)
    assert spool.find("till-1-0001") == waiting(first)
    reset_all()  # a new process, which never saw the append
    assert spool.find("till-1-0001") == waiting(first)
    spool.append(second)  # to a segment of this process's own, beside the first one's
    reset_all()
    assert spool.depth() == 2
    assert [spool.find("till-1-0001"), spool.find("till-1-0002")] == [
        waiting(first),
        waiting(second),
    ]


@pytest.mark.smoke
def test_after_a_drain_the_index_forgets_what_was_stored():
    spool.append(record(key="till-1-0001"))
    assert spool.depth() == 1
    spool.drain(lambda batch: None)
    assert (spool.depth(), spool.find("till-1-0001")) == (0, None)
    again = record(key="till-1-0001")
    spool.append(again)
    assert (spool.depth(), spool.find("till-1-0001")) == (1, waiting(again))


@pytest.mark.smoke
def test_the_index_answers_as_a_full_scan_whatever_the_processes_do(spool_dir):
    """A seeded random sequence of what happens to a spool: this process appends; another
    process appends to its own segment, leaving a record half-written for a while; drains that
    seal and then fail, drains that succeed; restarts. After each step, the index counts and
    finds what reading every record finds."""
    rng = random.Random(16)
    keys = [f"till-{n}" for n in range(40)]
    other, half = spool_dir / "99999-other.seg", b""

    def fail(batch: list[spool.SpooledTicket]) -> None:
        raise ConnectionError("the database is still down")

    for step in range(400):
        action = rng.choice(["append", "append", "other", "other", "seal", "drain", "restart"])
        if action == "append":
            spool.append(record(key=rng.choice([*keys, None])))
        elif action == "other":
            if not other.exists():  # sealed: the other process starts a segment of its own
                other, half = spool_dir / f"99999-other{step}.seg", b""
            data = half or spool._encode(record(key=rng.choice(keys)))
            cut = rng.choice([len(data), rng.randrange(len(data))])
            spool_dir.mkdir(exist_ok=True)
            with other.open("ab") as file:
                file.write(data[:cut])
            half = data[cut:]
        elif half:
            continue  # a seal waits for the other process's append to end (its lock)
        elif action == "seal":
            with contextlib.suppress(ConnectionError):
                spool.drain(fail)
        elif action == "drain":
            spool.drain(lambda batch: None)
        else:
            reset_all()
        assert_index_reads_as_a_full_scan(spool_dir, keys)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


OFFLINE_WEBHOOK = """
import django, json, sys
django.setup()
from django.conf import settings
from django.test import Client
client, out = Client(), []
for body in json.loads(sys.stdin.read()):
    r = client.generic("POST", "/ticket", body.encode("latin-1"), content_type="text/plain")
    out.append([r.status_code, r.json()])
settings.TICKET_SPOOL_DIR = next(settings.TICKET_SPOOL_DIR.glob("*.seg")) / "under-a-file"
r = client.generic("POST", "/ticket", b"one more", content_type="text/plain")
out.append([r.status_code, r.json()])
print(json.dumps(out))
"""


def run_offline_webhook(bodies: list[bytes], spool_dir: Path) -> list:
    environ = dict(
        os.environ,
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{closed_port()}/gone",
        TICKET_SPOOL_DIR=str(spool_dir),
        DJANGO_SETTINGS_MODULE="config.settings",
        LOG_LEVEL="CRITICAL",
    )
    result = subprocess.run(
        [sys.executable, "-c", OFFLINE_WEBHOOK],
        input=json.dumps([body.decode("latin-1") for body in bodies]),
        env=environ,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def drain_command(spool_dir: Path) -> subprocess.Popen:
    db = connection.settings_dict
    environ = dict(
        os.environ,
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        TICKET_SPOOL_DIR=str(spool_dir),
        LOG_LEVEL="CRITICAL",
    )
    return subprocess.Popen(
        [sys.executable, "manage.py", "drain_spool"],
        env=environ,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.skipif(settings.EMBEDDED, reason="needs PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_with_the_database_unreachable_tickets_are_spooled_then_drained_once(spool_dir):
    bodies = [ticket_bytes(str(n), [("Café", f"P{n % 3}", "2")]) for n in range(30)]
    bodies.append(SAMPLE.replace("é".encode(), b"\xe9"))
    answers = run_offline_webhook(bodies, spool_dir)

    *spooled, refused = answers
    assert [status for status, _ in spooled] == [202] * len(bodies)
    assert refused[0] == 503
    assert refused[1]["error"]["code"] == "service_unavailable"
    assert spool.depth() == len(bodies)
    assert not Ticket.objects.exists()

    drainers = [drain_command(spool_dir) for _ in range(2)]
    outputs = [drainer.communicate(timeout=60) for drainer in drainers]
    assert [drainer.returncode for drainer in drainers] == [0, 0], outputs

    stored = {str(t.id): bytes(t.raw) for t in Ticket.objects.all()}
    assert stored == {answer["id"]: body for (_, answer), body in zip(spooled, bodies, strict=True)}
    assert not spool.pending()
    services.tickets_parse_backlog()
    assert Ticket.objects.filter(status="parsed").count() == 30
    assert Ticket.objects.filter(status="rejected").count() == 1
