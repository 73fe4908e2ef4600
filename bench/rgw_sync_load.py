"""The write stream on zone a, and the watchers that see each object arrive on b and c.

The writer is open-loop: object i is due at start + i/rate whatever happened to the
others, and a few worker threads send the PUTs, so one slow PUT does not slow the
stream. Each watcher lists the bucket on its zone every `interval` s with
ListObjectsV2, starting after the last key of the run of keys already seen in order,
and notes when each key first appeared with each ETag. Blocking threads.
"""

import hashlib
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from rgw_sync_s3 import Zone, list_after

KEY_DIGITS = 6


def object_key(number: int) -> str:
    """Keys sort in write order, so a listing can start after the ones already seen."""
    return f"stream/{number:0{KEY_DIGITS}d}.bin"


@dataclass
class Put:
    """One object of the stream; times are time.monotonic()."""

    key: str
    due: float
    sha256: str
    sent: float = 0.0
    acked: float | None = None  # PUT acknowledged by zone a
    etag: str = ""
    error: str = ""


@dataclass
class WriteRun:
    puts: list[Put]
    started: float
    dispatch_lag_max: float = 0.0  # how late the dispatcher handed a PUT to a worker

    @property
    def acked(self) -> list[Put]:
        return [p for p in self.puts if p.acked is not None]


def write_stream(zone: Zone, bucket: str, *, rate: float, seconds: float, size: int,
                 workers: int, published: dict[str, Put]) -> WriteRun:
    """PUT rate x seconds objects of `size` random bytes to `zone`, paced by the clock.

    Each put goes into `published` once acknowledged, for the watchers to match ETags.
    """
    count = round(rate * seconds)
    started = time.monotonic() + 0.5  # the first body is ready before the first due time
    run = WriteRun(puts=[], started=started)
    pending: list[Future[None]] = []
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="put") as pool:
        for number in range(count):
            body = os.urandom(size)
            put = Put(object_key(number), started + number / rate,
                      hashlib.sha256(body).hexdigest())
            run.puts.append(put)
            time.sleep(max(0.0, put.due - time.monotonic()))
            run.dispatch_lag_max = max(run.dispatch_lag_max, time.monotonic() - put.due)
            pending.append(pool.submit(_put, zone.client, bucket, put, body, published))
        for future in pending:
            future.result()
    return run


def _put(client: Any, bucket: str, put: Put, body: bytes, published: dict[str, Put]) -> None:
    put.sent = time.monotonic()
    try:
        answer = client.put_object(Bucket=bucket, Key=put.key, Body=body)
    except (ClientError, BotoCoreError) as error:
        put.error = str(error)
        return
    put.acked, put.etag = time.monotonic(), str(answer["ETag"])
    published[put.key] = put


@dataclass(frozen=True)
class Sighting:
    """When a watcher first listed a key with this ETag."""

    etag: str
    seen: float  # the listing that showed it had returned by then
    absent: float  # the listing before it, which did not show it, was sent then


@dataclass
class Watcher:
    """Lists one zone's bucket every `interval` s until every written object is there."""

    zone: Zone
    bucket: str
    keys: list[str]  # every key the stream will write, in order
    published: dict[str, Put]
    interval: float
    seen: dict[str, Sighting] = field(default_factory=dict)
    rounds: list[float] = field(default_factory=list)  # each listing's duration
    errors: dict[str, int] = field(default_factory=dict)
    writes_done: threading.Event = field(default_factory=threading.Event)
    deadline: float = float("inf")  # set with writes_done
    finished: float | None = None  # all written objects seen, at
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"watch-{self.zone.name}",
                                        daemon=True)
        self._thread.start()

    def finish(self, deadline: float) -> None:
        """The writes are over: stop once every acknowledged object is seen, or at deadline."""
        self.deadline = deadline
        self.writes_done.set()
        if self._thread is not None:
            self._thread.join()

    def arrived(self, put: Put) -> Sighting | None:
        sighting = self.seen.get(put.key)
        return sighting if sighting is not None and sighting.etag == put.etag else None

    def _run(self) -> None:
        in_order = 0  # keys[:in_order] are all seen (or were never acknowledged)
        absent_since = time.monotonic()
        while True:
            sent = time.monotonic()
            start_after = self.keys[in_order - 1] if in_order else ""
            try:
                listing = list_after(self.zone.client, self.bucket, start_after)
            except (ClientError, BotoCoreError) as error:
                kind = type(error).__name__
                self.errors[kind] = self.errors.get(kind, 0) + 1
                listing = {}
            returned = time.monotonic()
            self.rounds.append(returned - sent)
            for key, etag in listing.items():
                known = self.seen.get(key)
                if known is None or known.etag != etag:
                    self.seen[key] = Sighting(etag, returned, absent_since)
            absent_since = sent
            writes_done = self.writes_done.is_set()
            while in_order < len(self.keys) and self._settled(self.keys[in_order], writes_done):
                in_order += 1
            if writes_done and in_order == len(self.keys):
                self.finished = returned
                return
            if writes_done and returned > self.deadline:
                return
            time.sleep(max(0.0, self.interval - (time.monotonic() - sent)))

    def _settled(self, key: str, writes_done: bool) -> bool:
        put = self.published.get(key)
        if put is None:
            return writes_done  # never acknowledged: nothing to wait for
        return self.arrived(put) is not None
