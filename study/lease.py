"""One driver per study: a lease file in the study folder, kept alive by a heartbeat.

A driver (``dst-study run`` or ``resume``) takes the lease before it runs anything and gives it
back when it ends. Another driver finding a live lease stops with one line naming the holder (host,
pid, since when). A lease is dead when its heartbeat is older than ``expiry`` seconds (a killed
driver, a lost node), or at once when its holder ran on this host and its pid is gone; a dead lease
is taken over with a message. Only whole-file writes and renames are used, no ``flock``, so it
works on shared filesystems (NFS) and object stores alike; two drivers racing for a dead lease both
write and read it back, and the one that does not find its own token there backs off.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Callable

from .store import ParquetStore, StoreError

__all__ = ["LEASE_FILE", "StudyBusy", "StudyLease"]

LEASE_FILE = "driver.lease"


class StudyBusy(StoreError):
    """Another live driver holds the study."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


class StudyLease:
    def __init__(self, store: ParquetStore, heartbeat: float = 10.0, expiry: float = 60.0,
                 log: Callable[[str], None] = print):
        self.store, self.heartbeat, self.expiry, self.log = store, heartbeat, expiry, log
        self.path = f"{store.path}/{LEASE_FILE}"
        self.token = uuid.uuid4().hex
        self.me = {"host": socket.gethostname(), "pid": os.getpid(), "token": self.token,
                   "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _read(self) -> dict | None:
        try:
            with self.store.fs.open_input_stream(self.path) as f:
                return json.loads(f.read().decode())
        except (OSError, ValueError):
            return None

    def _write(self) -> None:
        tmp = f"{self.path}.{self.token}.tmp"
        with self.store.fs.open_output_stream(tmp) as out:
            out.write(json.dumps({**self.me, "heartbeat": time.time()}).encode())
        self.store.fs.move(tmp, self.path)

    def _dead(self, lease: dict) -> str | None:
        """Why ``lease`` no longer holds, or None while its driver lives."""
        if lease.get("host") == socket.gethostname() and not _pid_alive(int(lease.get("pid", -1))):
            return f"its process {lease.get('pid')} on this host is gone"
        age = time.time() - float(lease.get("heartbeat", 0))
        if age > self.expiry:
            return f"its heartbeat stopped {age:.0f}s ago"
        return None

    SETTLE = 1.0  # seconds after our write by which a rival that raced us has written too

    def acquire(self) -> None:
        self.claim()
        self.confirm()

    def claim(self) -> None:
        """Write the lease unless a live driver holds it (StudyBusy). :meth:`confirm` must follow
        before anything runs; work that needs no lease (starting Ray) may go in between."""
        self.store.fs.create_dir(self.store.path, recursive=True)
        held = self._read()
        if held and held.get("token") != self.token:
            why = self._dead(held)
            if why is None and time.time() - float(held.get("heartbeat", 0)) > 2 * self.heartbeat:
                # beats were missed (a driver killed on another host, just before a resubmission):
                # wait for the lease to beat again or expire rather than refuse
                self.log(f"waiting up to {self.expiry:.0f}s for the lease of {self.store.root} held by host "
                         f"{held.get('host')}, pid {held.get('pid')}, whose heartbeat stopped")
                while why is None:
                    time.sleep(min(self.heartbeat, 5))
                    now = self._read()
                    if now is None or now.get("token") != held.get("token"):
                        why = "it was released"
                    elif now.get("heartbeat") != held.get("heartbeat"):  # alive after all
                        held = now
                        break
                    else:
                        why = self._dead(held)
            if why is None:
                raise StudyBusy(f"{self.store.root}: another driver runs this study (host {held.get('host')}, pid "
                                f"{held.get('pid')}, since {held.get('since')}); wait for it to end or stop it")
            self.log(f"taking over {self.store.root} from a driver that is gone (host {held.get('host')}, pid "
                     f"{held.get('pid')}: {why})")
        self._write()
        self._claimed = time.monotonic()

    def confirm(self) -> None:
        """Read the lease back once a racing rival would have written too; ours, it starts beating."""
        time.sleep(max(0.0, min(self.SETTLE, self.heartbeat / 10) - (time.monotonic() - self._claimed)))
        if (self._read() or {}).get("token") != self.token:
            held = self._read() or {}
            raise StudyBusy(f"{self.store.root}: another driver took this study at the same moment (host "
                            f"{held.get('host')}, pid {held.get('pid')}); wait for it to end or stop it")
        self._thread = threading.Thread(target=self._beat, name="study-lease", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat):
            if (self._read() or {}).get("token") != self.token:
                self.log(f"dst-study: warning: lost the lease of {self.store.root} to another driver")
                return
            self._write()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if (self._read() or {}).get("token") == self.token:
            self.store.fs.delete_file(self.path)

    def __enter__(self) -> "StudyLease":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
