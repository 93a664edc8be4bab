"""Turning SIGINT, SIGTERM and SIGHUP into a clean stop, taken only at safe points.

SIGTERM is what Slurm sends at walltime and on ``scancel``, and what ``timeout`` sends; SIGHUP what a
closed terminal or SSH session sends. By default both end Python at once, with no cleanup: running
fragments, their private directories and worker blocks are left behind. During a run, in the main
thread, all three signals become :class:`~qcmb_parsl.errors.RunInterrupted`. SIGTERM and SIGHUP are
taken over only while nobody else handles them, so an application's own handler stays in charge.

The same holds from the moment a command or a call that computes begins (:func:`stop_before_run`):
importing, reading files and planning come before the run loop, and planning 10^5 fragments takes half
a minute. A stop there is a RunInterrupted that says nothing was computed yet. The first run loop
takes the signals over, and after it they are what they were before, so a stop never claims less
than was done.

A signal that arrives while a finished fragment is being stored is held until the store is done, so
a stop never leaves half a record behind.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from ..errors import RunInterrupted

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _State:
    deferring = 0
    pending: int | None = None
    #: While a stop_before_run block waits for its first run loop: the handlers it replaced (None when
    #: no such block is open, empty once a run loop has taken them over).
    before_run: dict[int, Any] | None = None


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    if _State.deferring:
        _State.pending = _State.pending or signum
        return
    raise RunInterrupted(signum)


def _ours_to_take(signum: int) -> bool:
    current = signal.getsignal(signum)
    if signum == signal.SIGINT:
        return current is signal.default_int_handler
    return current in (signal.SIG_DFL, None)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within this block (main thread only), SIGINT and an unhandled SIGTERM or SIGHUP raise
    RunInterrupted."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if _State.before_run:  # the first run loop after stop_before_run: the stop is its from now on
        previous, _State.before_run = _State.before_run, {}
    else:
        previous = _take_signals()
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def stop_before_run() -> Iterator[None]:
    """From here until a run loop begins (main thread only), SIGINT and an unhandled SIGTERM or SIGHUP
    raise a RunInterrupted that says nothing was computed yet.

    The first :func:`stop_on_signals` inside the block takes the signals over and gives them back as
    they were before this block when its loop ends. A block inside another is the outer one's.
    """
    if threading.current_thread() is not threading.main_thread() or _State.before_run is not None:
        yield
        return
    _State.before_run = _take_signals()
    try:
        yield
    finally:
        left, _State.before_run = _State.before_run, None
        for signum, handler in left.items():
            signal.signal(signum, handler)


def _take_signals() -> dict[int, Any]:
    """Make every stop signal nobody else handles ours; the handlers replaced."""
    previous: dict[int, Any] = {
        signum: signal.getsignal(signum) for signum in _STOP_SIGNALS if _ours_to_take(signum)
    }
    for signum in previous:
        signal.signal(signum, _on_signal)
    return previous


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold a stop signal until the block is done, then act on it."""
    _State.deferring += 1
    try:
        yield
    finally:
        _State.deferring -= 1
        if not _State.deferring and _State.pending is not None:
            signum, _State.pending = _State.pending, None
            raise RunInterrupted(signum)


@contextmanager
def signals_ignored() -> Iterator[None]:
    """While stopping, a second Ctrl-C must not cut the cleanup short: note it and carry on."""
    _State.deferring += 1
    try:
        yield
    finally:
        _State.deferring -= 1
        _State.pending = None
