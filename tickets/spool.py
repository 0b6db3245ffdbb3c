"""The local spool: where acknowledged tickets wait while PostgreSQL is unreachable.

Layout, in `settings.TICKET_SPOOL_DIR`:
- `<pid>-<token>.seg`: the segment one process appends to. A record is written and fsynced under
  an exclusive `flock` before the ticket is acknowledged.
- `*.sealed`: a segment a drainer took over. Sealing renames the segment under its lock; a writer
  that opened the old name notices (its file is no longer at that path) and starts a new one, so
  nothing is ever appended to a file being drained.
- `drain.lock`: held by the one drainer at work; another drainer returns at once.

A record is `MAGIC, meta length, body length, CRC32` then the JSON meta and the raw body. Each
record carries the ticket id handed to the sender, and the store callback inserts with "on
conflict do nothing", so a record stored twice (a drainer that died between the commit and the
unlink) is still one ticket. A record cut short (a process killed mid-write, never acknowledged)
ends the readable part of its file; the file is kept as `*.damaged` for an operator.
"""

import fcntl
import json
import logging
import os
import struct
import uuid
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.conf import settings

from core.process import PerProcess

logger = logging.getLogger(__name__)

MAGIC = b"TKS1"
_HEAD = struct.Struct(">4sIQI")


@dataclass(frozen=True)
class SpooledTicket:
    id: uuid.UUID
    received_at: datetime
    idempotency_key: str | None
    body: bytes


class SpoolError(Exception):
    """The spool could not take the ticket (disk full, read-only, missing directory...)."""


def _directory() -> Path:
    return Path(settings.TICKET_SPOOL_DIR)


# This process's segment: a forked child makes its own.
_segment = PerProcess(lambda: f"{os.getpid()}-{uuid.uuid4().hex[:12]}.seg")


def _encode(ticket: SpooledTicket) -> bytes:
    meta = json.dumps(
        {
            "id": str(ticket.id),
            "received_at": ticket.received_at.isoformat(),
            "idempotency_key": ticket.idempotency_key,
        }
    ).encode()
    payload = meta + ticket.body
    return _HEAD.pack(MAGIC, len(meta), len(ticket.body), zlib.crc32(payload)) + payload


def append(ticket: SpooledTicket) -> None:
    """Durably append one ticket: when this returns, the record is on disk."""
    record = _encode(ticket)
    try:
        _directory().mkdir(parents=True, exist_ok=True)
        while True:
            path = _directory() / _segment.get()
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                if not _still_at(fd, path):
                    continue  # sealed by a drainer between our open and our lock
                _write(fd, record)
                return
            finally:
                os.close(fd)
    except OSError as exc:
        raise SpoolError(str(exc)) from exc


def _still_at(fd: int, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _write(fd: int, record: bytes) -> None:
    start = os.fstat(fd).st_size
    try:
        view = memoryview(record)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except OSError:
        # Leave no partial record behind for the next append to follow.
        os.ftruncate(fd, start)
        raise
    if start == 0:
        _fsync_directory()


def _fsync_directory() -> None:
    fd = os.open(_directory(), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read(path: Path) -> Iterator[SpooledTicket]:
    """The records of a file, in order; raises `_Damaged` where a record can't be read."""
    with path.open("rb") as file:
        while True:
            offset = file.tell()
            head = file.read(_HEAD.size)
            if not head:
                return
            if len(head) < _HEAD.size:
                raise _Damaged(offset)
            magic, meta_length, body_length, crc = _HEAD.unpack(head)
            if magic != MAGIC:
                raise _Damaged(offset)
            payload = file.read(meta_length + body_length)
            if len(payload) != meta_length + body_length or zlib.crc32(payload) != crc:
                raise _Damaged(offset)
            meta = json.loads(payload[:meta_length])
            yield SpooledTicket(
                id=uuid.UUID(meta["id"]),
                received_at=datetime.fromisoformat(meta["received_at"]),
                idempotency_key=meta["idempotency_key"],
                body=payload[meta_length:],
            )


class _Damaged(Exception):
    def __init__(self, offset: int) -> None:
        super().__init__(f"unreadable record at byte {offset}")


def pending() -> bool:
    try:
        return any(entry.name.endswith((".seg", ".sealed")) for entry in os.scandir(_directory()))
    except FileNotFoundError:
        return False


def find(idempotency_key: str) -> SpooledTicket | None:
    """The waiting ticket sent with this key, if this host's spool holds one."""
    for path in _waiting():
        try:
            for ticket in _read(path):
                if ticket.idempotency_key == idempotency_key:
                    return ticket
        except (_Damaged, FileNotFoundError):
            continue
    return None


def depth() -> int:
    """Records waiting in the spool (a damaged file counts its readable records)."""
    count = 0
    for path in _waiting():
        try:
            count += sum(1 for _ in _read(path))
        except (_Damaged, FileNotFoundError):
            continue
    return count


def _waiting() -> list[Path]:
    if not _directory().is_dir():
        return []
    return sorted([*_directory().glob("*.seg"), *_directory().glob("*.sealed")])


@contextmanager
def _drain_lock() -> Iterator[bool]:
    _directory().mkdir(parents=True, exist_ok=True)
    fd = os.open(_directory() / "drain.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def _seal(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # waits for an append in flight
        if _still_at(fd, path):
            os.rename(path, path.with_name(f"{path.stem}-{uuid.uuid4().hex[:8]}.sealed"))
    finally:
        os.close(fd)


def drain(store: Callable[[list[SpooledTicket]], None], *, chunk: int = 500) -> int | None:
    """Hand every spooled ticket to `store`, in chunks, then forget it.

    `store` must be idempotent per ticket id: a file is removed only after all its chunks are
    stored, so a drainer that dies in between hands the same tickets over again next time.
    Returns how many records were handed over, or None when another drainer is at work.
    """
    with _drain_lock() as acquired:
        if not acquired:
            return None
        for path in sorted(_directory().glob("*.seg")):
            _seal(path)
        handed = 0
        for path in sorted(_directory().glob("*.sealed")):
            batch: list[SpooledTicket] = []
            try:
                for ticket in _read(path):
                    batch.append(ticket)
                    if len(batch) == chunk:
                        store(batch)
                        handed, batch = handed + len(batch), []
            except _Damaged as exc:
                logger.error("spool file %s is damaged: %s; kept as .damaged", path.name, exc)
                if batch:
                    store(batch)
                    handed += len(batch)
                path.rename(path.with_suffix(".damaged"))
                continue
            if batch:
                store(batch)
                handed += len(batch)
            path.unlink()
        return handed
