"""SIGTERM (``scancel``, a job's time limit) stops a study as Ctrl-C does, from its first moment.

Two regimes: while torch or Ray are being imported, an exception raised by a signal handler can
leave them half-initialised (it crashed the interpreter), so the signal is only noted
(:func:`defer_sigterm`) and taken at safe points (:func:`stop_if_requested`); once they are loaded
it is forwarded as SIGINT at once (:func:`sigterm_as_ctrl_c`), so Tune ends the running trials
and their checkpoints stay for a resume.

The driver stops itself the same way when it cannot go on (:func:`request_stop`: its lease was
taken, its disk is full), and says why once the trials have stopped (:func:`stop_reason`).

A SIGTERM sent to the whole process group (``timeout``, systemd, a shell's job control; SLURM's
``scancel`` signals every process of the job) stops Ray's own processes too, and the driver's Ray
client then waits 60 s for a GCS that is gone before Ray ends the process (exit 1, nothing said).
So a SIGTERM also arms a deadline: a driver still running when its own Ray's GCS or raylet has
exited (:func:`watch_ray`), or after :data:`STUCK_SECONDS` whatever happened, runs the callbacks
registered with :func:`when_stuck` (release the lease, say how to resume; newest first) and exits
with 130. Everything stored stays; the running trials' checkpoints are on disk.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Callable

__all__ = ["STUCK_SECONDS", "clear_stop_reason", "defer_sigterm", "disarm", "request_stop", "sigterm_as_ctrl_c",
           "stop_if_requested", "stop_reason", "watch_ray", "when_stuck"]

# a clean stop (Tune ends its trials, Ray shuts down) takes 3 to 12 s on 2 busy cores: well inside this
STUCK_SECONDS = 30.0
_deadline: list[threading.Event] = []  # set: the deadline is off
_when_stuck: list[Callable[[], None]] = []
_ray_gone: list[Callable[[], bool]] = []  # whether the private Ray this driver started lost its GCS or raylet

_stop = threading.Event()  # a SIGTERM arrived while a stop could not be taken at once
_reason: list[Exception] = []  # why the driver stopped itself, first reason only
_reason_lock = threading.Lock()


def request_stop(reason: Exception) -> None:
    """Stop the study as Ctrl-C does, from any thread (the lease's heartbeat, a Tune callback); the
    first ``reason`` is kept for :func:`stop_reason`."""
    with _reason_lock:
        if _reason:
            return
        _reason.append(reason)
    os.kill(os.getpid(), signal.SIGINT)


def stop_reason() -> Exception | None:
    return _reason[0] if _reason else None


def clear_stop_reason() -> None:
    _reason.clear()


def defer_sigterm():
    """Note a SIGTERM for :func:`stop_if_requested` instead of acting on it; returns the handler it
    replaced, or None off the main thread (where signals cannot be set)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    _stop.clear()
    return signal.signal(signal.SIGTERM, lambda *_: _stop.set())


def stop_if_requested() -> None:
    """Stop as Ctrl-C does (KeyboardInterrupt) if a SIGTERM was noted."""
    if _stop.is_set():
        raise KeyboardInterrupt


def sigterm_as_ctrl_c():
    """Make SIGTERM stop the study as Ctrl-C does, at once, and arm the deadline (module docstring);
    returns the handler it replaced, or None off the main thread. For once nothing is being imported."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(*_):
        _arm()
        os.kill(os.getpid(), signal.SIGINT)

    return signal.signal(signal.SIGTERM, stop)


def when_stuck(callback: Callable[[], None]) -> Callable[[], None]:
    """Run ``callback`` if a SIGTERM's deadline passes before the driver has stopped; returns the
    function that unregisters it."""
    _when_stuck.append(callback)
    return lambda: _when_stuck.remove(callback) if callback in _when_stuck else None


def watch_ray(gone: Callable[[], bool] | None) -> None:
    """``gone()`` says whether the Ray this driver started lost its GCS or raylet (None: no such Ray,
    or it is being shut down on purpose)."""
    _ray_gone[:] = [gone] if gone is not None else []


def disarm() -> None:
    """The driver stopped in time (or never got a SIGTERM): no deadline."""
    while _deadline:
        _deadline.pop().set()


def _arm() -> None:
    if not _deadline:
        off = threading.Event()
        _deadline.append(off)
        threading.Thread(target=_watch, args=(off,), name="sigterm-deadline", daemon=True).start()


def _watch(off: threading.Event) -> None:
    end = time.monotonic() + STUCK_SECONDS
    while not off.wait(0.25):
        gone = _ray_gone[0] if _ray_gone else None
        if time.monotonic() > end or (gone is not None and gone()):
            _stuck()
            return


def _stuck() -> None:
    for callback in reversed(list(_when_stuck)):
        try:
            callback()
        except Exception as e:  # the others still run, and the driver still exits
            print(f"dst-study: warning: while stopping: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(130)
