"""One driver per study: a lease file in the study folder, kept alive by a heartbeat.

A driver (``dst-study run`` or ``resume``) takes the lease before it runs anything and gives it
back when it ends. Another driver finding a live lease stops with one line naming the holder (host,
pid, since when). A lease is dead when its heartbeat is older than ``expiry`` seconds (a killed
driver, a lost node), or at once when its holder ran on this host and its pid is gone; a dead lease
is taken over with a message. Only whole-file writes and renames are used, no ``flock``, so it
works on shared filesystems (NFS) and object stores alike; two drivers racing for a dead lease both
write and read it back, and the one that does not find its own token there backs off.

A lease file that cannot be read (garbled) counts as held until the file is ``expiry`` seconds old.
The holder rewrites its lease when the file disappears or is garbled under it; when it finds another
driver's lease instead, it has lost the study and calls ``on_lost`` (the runner stops as on SIGTERM).
A heartbeat in the future (clocks of two hosts that disagree) is named as such, with how to clear it.
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

from .folder import LEASE, write_atomically
from .store import OutOfSpace, ParquetStore, StoreError, out_of_space

__all__ = ["LeaseLost", "StudyBusy", "StudyLease"]


class StudyBusy(StoreError):
    """Another live driver holds the study."""


class LeaseLost(StoreError):
    """Another driver took the study from this one while it ran."""


def _who(lease: dict, since: bool = False) -> str:
    """``host h, pid p`` (and ``since t``) of a lease's driver, from what the lease says; never a
    ``None`` where it says nothing (a lease that vanished, is unreadable or was written by hand)."""
    if not lease:
        return "a driver whose lease vanished as it was read"
    if lease.get("unreadable"):
        return "a driver whose lease is unreadable"
    keys = ("host", "pid", "since") if since else ("host", "pid")
    known = [f"{k} {lease[k]}" for k in keys if lease.get(k) is not None]
    return ", ".join(known) or "a driver whose lease names no host or pid"


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
                 log: Callable[[str], None] = print, on_lost: Callable[[StoreError], None] | None = None):
        """``on_lost`` is called, from the heartbeat's thread, with :class:`LeaseLost` when another
        driver took the lease, or :class:`~study.store.OutOfSpace` when it can no longer be written."""
        self.store, self.heartbeat, self.expiry, self.log = store, heartbeat, expiry, log
        self.on_lost = on_lost or (lambda e: log(f"dst-study: warning: {e}"))
        self.path = store.folder.join(LEASE)
        self.token = uuid.uuid4().hex
        self.me = {"host": socket.gethostname(), "pid": os.getpid(), "token": self.token,
                   "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _read(self) -> dict | None:
        """The lease, None when there is none; a file that is not a lease reads as ``{"unreadable":
        True, "age": seconds since it was written}``."""
        try:
            with self.store.fs.open_input_stream(self.path) as f:
                text = f.read()
        except FileNotFoundError:
            return None
        except OSError:
            text = b""
        try:
            lease = json.loads(text.decode())
            if isinstance(lease, dict) and isinstance(lease.get("token"), str):
                float(lease.get("heartbeat"))
                return lease
        except (ValueError, TypeError):
            pass
        try:
            written = self.store.fs.get_file_info(self.path).mtime
        except OSError:
            written = None
        if written is None:  # gone meanwhile, or no time known: as old as can be only if gone
            return {"unreadable": True, "age": 0.0}
        return {"unreadable": True, "age": time.time() - written.timestamp()}

    def _write(self) -> None:
        data = json.dumps({**self.me, "heartbeat": time.time()}).encode()
        write_atomically(self.store.fs, self.path, lambda out: out.write(data))

    def _dead(self, lease: dict) -> str | None:
        """Why ``lease`` no longer holds, or None while its driver lives."""
        if lease.get("unreadable"):
            return f"it is unreadable and {lease['age']:.0f}s old" if lease["age"] > self.expiry else None
        if lease.get("host") == socket.gethostname() and not _pid_alive(int(lease.get("pid", -1))):
            return f"its process {lease.get('pid')} on this host is gone"
        age = time.time() - float(lease.get("heartbeat", 0))
        if age > self.expiry:
            return f"its heartbeat stopped {age:.0f}s ago"
        return None

    def holder(self) -> dict | None:
        """The live driver that holds the lease (its host, pid and since), None when no driver runs the
        study: no lease, or a dead one (a killed driver leaves its file behind). Reads only."""
        held = self._read()
        return held if held is not None and self._dead(held) is None else None

    def _busy(self, held: dict) -> StudyBusy:
        """The refusal for a live (or not yet expired) lease held by another driver."""
        if held.get("unreadable"):
            return StudyBusy(f"{self.path}: unreadable lease, written {held['age']:.0f}s ago; it counts as held "
                             f"until it is {self.expiry:.0f}s old. If no driver runs this study, delete it")
        ahead = float(held.get("heartbeat", 0)) - time.time()
        if ahead > self.heartbeat:
            return StudyBusy(f"{self.store.root}: the lease of {_who(held)} has a "
                             f"heartbeat {ahead:.0f}s in the future: the clocks of that host and this one disagree, "
                             f"so it cannot expire. If no driver runs this study, delete {self.path}")
        return StudyBusy(f"{self.store.root}: another driver runs this study ({_who(held, since=True)}); "
                         "wait for it to end or stop it")

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
            if why is None and not held.get("unreadable") \
                    and time.time() - float(held.get("heartbeat", 0)) > 2 * self.heartbeat:
                # beats were missed (a driver killed on another host, just before a resubmission):
                # wait for the lease to beat again or expire rather than refuse
                self.log(f"waiting up to {self.expiry:.0f}s for the lease of {self.store.root} held by "
                         f"{_who(held)}, whose heartbeat stopped")
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
                raise self._busy(held)
            self.log(f"taking over {self.store.root} from a driver that is gone ({_who(held)}: {why})")
        self._write()
        self._claimed = time.monotonic()

    def confirm(self) -> None:
        """Read the lease back once a racing rival would have written too; ours, it starts beating."""
        time.sleep(max(0.0, min(self.SETTLE, self.heartbeat / 10) - (time.monotonic() - self._claimed)))
        if (self._read() or {}).get("token") != self.token:
            held = self._read() or {}
            raise StudyBusy(f"{self.store.root}: another driver took this study at the same moment ({_who(held)}); "
                            "wait for it to end or stop it")
        self._thread = threading.Thread(target=self._beat, name="study-lease", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat):
            held = self._read()
            if held is not None and not held.get("unreadable") and held.get("token") != self.token:
                self.on_lost(LeaseLost(f"another driver took over {self.store.root} ({_who(held, since=True)})"))
                return
            try:  # ours, or gone or garbled under us: still ours, written again
                self._write()
            except OSError as e:
                if out_of_space(e):
                    self.on_lost(OutOfSpace(self.store.root, self.store.path))
                    return
                self.log(f"dst-study: warning: could not refresh the lease of {self.store.root}: {e}")

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
