"""SIGTERM (``scancel``, a job's time limit) stops a study as Ctrl-C does, from its first moment.

Two regimes: while torch or Ray are being imported, an exception raised by a signal handler can
leave them half-initialised (it crashed the interpreter), so the signal is only noted
(:func:`defer_sigterm`) and taken at safe points (:func:`stop_if_requested`); once they are loaded
it is forwarded as SIGINT at once (:func:`sigterm_as_ctrl_c`), so Tune ends the running trials
and their checkpoints stay for a resume.

The driver stops itself the same way when it cannot go on (:func:`request_stop`: its lease was
taken, its disk is full), and says why once the trials have stopped (:func:`stop_reason`).
"""

from __future__ import annotations

import os
import signal
import threading

__all__ = ["clear_stop_reason", "defer_sigterm", "request_stop", "sigterm_as_ctrl_c", "stop_if_requested",
           "stop_reason"]

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
    """Make SIGTERM stop the study as Ctrl-C does, at once; returns the handler it replaced, or None
    off the main thread. For once nothing is being imported."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, lambda *_: os.kill(os.getpid(), signal.SIGINT))
