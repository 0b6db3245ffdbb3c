"""The local spool: where acknowledged tickets wait while PostgreSQL is unreachable.

Layout, in `settings.TICKET_SPOOL_DIR`:
- `<pid>-<token>.seg`: the segment one process appends to. A record is written and fsynced under
  an exclusive `flock` before the ticket is acknowledged.
- `<pid>-<token>.sealed`: a segment a drainer took over. Sealing renames the segment under its
  lock; a writer that opened the old name notices (its file is no longer at that path) and
  creates a segment under a new name. So nothing is ever appended to a file being drained, and a
  name (less its suffix) stands for one file from its creation to its removal.
- `drain.lock`: held by the one drainer at work; another drainer returns at once.

A record is `MAGIC, meta length, body length, CRC32` then the JSON meta and the raw body. Each
record carries the ticket id handed to the sender, and the store callback inserts with "on
conflict do nothing", so a record stored twice (a drainer that died between the commit and the
unlink) is still one ticket. A record cut short (a process killed mid-write, never acknowledged)
ends the readable part of its file; the file is kept as `*.damaged` for an operator.

Looking up a key and counting the waiting records cost the same on the last ticket of an outage
as on the first: each process keeps an index of the waiting files, each known by its name less
its suffix (per file: its records' keys, their count, and how far it has been read), reads on
each look only what was appended since the last, and forgets the files a drain removed. A record
another process is still writing is read on a later look; a sealed file, which no longer
changes, is read to its end once.
"""

import fcntl
import hashlib
import json
import logging
import os
import struct
import threading
import uuid
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
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


def _new_segment() -> str:
    """A segment for this process: created here, and only here, so that a sealed name is never
    created again by a writer that still had it."""
    _directory().mkdir(parents=True, exist_ok=True)
    name = f"{os.getpid()}-{uuid.uuid4().hex[:12]}.seg"
    os.close(os.open(_directory() / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return name


# This process's segment: a forked child makes its own.
_segment = PerProcess(_new_segment)


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
        while True:
            path = _directory() / _segment.get()
            try:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            except FileNotFoundError:  # sealed by a drainer since this process last wrote
                _segment.reset()
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                if not _still_at(fd, path):  # sealed between our open and our lock
                    _segment.reset()
                    continue
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


def _read(path: str | Path, start: int = 0) -> Iterator[tuple[int, SpooledTicket]]:
    """The records of a file from byte `start`, in order, each with the offset where it ends;
    raises `_Damaged` where a record can't be read (or is still being written)."""
    with open(path, "rb") as file:
        file.seek(start)
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
            yield (
                file.tell(),
                SpooledTicket(
                    id=uuid.UUID(meta["id"]),
                    received_at=datetime.fromisoformat(meta["received_at"]),
                    idempotency_key=meta["idempotency_key"],
                    body=payload[meta_length:],
                ),
            )


class _Damaged(Exception):
    def __init__(self, offset: int) -> None:
        super().__init__(f"unreadable record at byte {offset}")


def pending() -> bool:
    try:
        return any(entry.name.endswith((".seg", ".sealed")) for entry in os.scandir(_directory()))
    except FileNotFoundError:
        return False


@dataclass(frozen=True)
class Waiting:
    """A keyed ticket waiting in the spool, as its index keeps it: enough to answer a retry."""

    id: uuid.UUID
    received_at: datetime
    sha256: str


@dataclass
class _Indexed:
    """One waiting file as far as this process has read it."""

    offset: int = 0
    records: int = 0
    keys: dict[str, Waiting] = field(default_factory=dict)
    final: bool = False  # sealed, and read to its end


class _Index:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[str, _Indexed] = {}

    def files(self) -> list[_Indexed]:
        """Every waiting file, read up to its last complete record, in name order."""
        with self._lock:
            try:
                entries = sorted(os.scandir(_directory()), key=lambda entry: entry.name)
            except FileNotFoundError:
                entries = []
            known, self._files = self._files, {}
            for entry in entries:
                name, _, suffix = entry.name.rpartition(".")
                if suffix in ("seg", "sealed"):
                    self._files[name] = indexed = known.get(name) or _Indexed()
                    if not indexed.final:
                        _follow(entry.path, indexed, sealed=suffix == "sealed")
            return list(self._files.values())


def _follow(path: str, indexed: _Indexed, *, sealed: bool) -> None:
    """Read what was appended to the file since `indexed` was last brought up to date."""
    try:
        if not sealed and os.stat(path).st_size == indexed.offset:
            return
        for end, ticket in _read(path, indexed.offset):
            indexed.offset, indexed.records = end, indexed.records + 1
            if ticket.idempotency_key is not None:
                indexed.keys.setdefault(
                    ticket.idempotency_key,
                    Waiting(ticket.id, ticket.received_at, hashlib.sha256(ticket.body).hexdigest()),
                )
    except (_Damaged, FileNotFoundError):
        pass  # a record being written (read it next time), or a file sealed or drained meanwhile
    indexed.final = sealed


# This process's index of the spool: losing it costs one read of every waiting file.
_index = PerProcess(_Index)


def find(idempotency_key: str) -> Waiting | None:
    """The waiting ticket sent with this key, if this host's spool holds one."""
    for indexed in _index.get().files():
        if idempotency_key in indexed.keys:
            return indexed.keys[idempotency_key]
    return None


def depth() -> int:
    """Records waiting in the spool (a damaged file counts its readable records)."""
    return sum(indexed.records for indexed in _index.get().files())


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
            os.rename(path, path.with_suffix(".sealed"))
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
        # What an earlier drain sealed goes first, and segments are sealed only once it is gone:
        # while the database is down, each attempt fails on its first store and seals nothing,
        # so an outage leaves one set of sealed files instead of a new set per attempt.
        handed = _hand_over_sealed(store, chunk)
        for path in sorted(_directory().glob("*.seg")):
            _seal(path)
        return handed + _hand_over_sealed(store, chunk)


def _hand_over_sealed(store: Callable[[list[SpooledTicket]], None], chunk: int) -> int:
    handed = 0
    for path in sorted(_directory().glob("*.sealed")):
        batch: list[SpooledTicket] = []
        try:
            for _, ticket in _read(path):
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
