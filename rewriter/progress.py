"""Live progress on stderr for the steps that can take long: the runtime download (bytes, rate),
building TF 2.3.4's Python environment, every parity run, every model of a repository.

Drawn with `rich` (already a dependency of Keras, so usually installed; a declared dependency
because this module needs it): one rich.progress.Progress serves every kind of step, since rich
allows one live display at a time. Live drawing is on only when the CLI asked for it
(`configure`), stderr is a terminal and --quiet was not given; otherwise every function here
degrades to the plain `tfdowngrade: ...` lines (or to nothing), so logs and pipes stay clean.
The library API never draws unless `configure` was called.
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from typing import Any, Callable, Iterator

_lock = threading.Lock()
_enabled = False
_quiet = False
_live: Any = None  # the rich Progress while something is drawn
_step: Any = None  # the task id of the current step spinner
_step_started = 0.0
_step_text = ""


def configure(quiet: bool, stream: Any = None) -> bool:
    """Turn live progress on if stderr is a terminal and not quiet; returns whether it is on."""
    global _enabled, _quiet
    stream = stream if stream is not None else sys.stderr
    _quiet = quiet
    _enabled = (not quiet and bool(getattr(stream, "isatty", lambda: False)())
                and os.environ.get("TERM") != "dumb")
    return _enabled


def enabled() -> bool:
    return _enabled


def _progress() -> Any:
    """The shared rich Progress, started on first use."""
    global _live
    if _live is None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        _live = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=30),
                         _detail_column_class()(), TimeElapsedColumn(), console=Console(stderr=True), transient=True,
                         # stdout (the summary, maybe redirected to a file) is never routed to stderr
                         redirect_stdout=False)
        _live.start()
    return _live


def _detail_column_class() -> Any:
    from rich.progress import ProgressColumn
    from rich.text import Text

    class DetailColumn(ProgressColumn):
        """Bytes and rate for a transfer, n/total for a count, nothing for a step."""

        def render(self, task: Any) -> Any:
            kind = task.fields.get("kind")
            if kind == "bytes":
                speed = task.finished_speed or task.speed or 0.0
                total = f"/{task.total / 1e6:.0f}" if task.total else ""
                return Text(f"{task.completed / 1e6:.1f}{total} MB {speed / 1e6:.1f} MB/s")
            if kind == "count":
                return Text(f"{int(task.completed)}/{int(task.total or 0)}")
            return Text("")

    return DetailColumn


def finish() -> None:
    """End live drawing (the CLI calls it however a command ends)."""
    global _live, _step
    with _lock:
        _end_step()
        if _live is not None:
            _live.stop()
            _live = None


def _end_step() -> None:
    global _step
    if _step is not None and _live is not None:
        _live.remove_task(_step)
        _live.console.print(f"tfdowngrade: {_step_text} ({time.monotonic() - _step_started:.1f} s)",
                            highlight=False, markup=False)
    _step = None


def step_reporter(quiet: bool) -> Callable[[str], None]:
    """The CLI's progress callback: each message starts a step; live, it spins with its elapsed
    time until the next message, then stays as a line with its duration. Without a terminal it
    is the plain line; with --quiet, nothing."""
    if quiet:
        return lambda _: None

    def say(message: str) -> None:
        global _step, _step_started, _step_text
        if not _enabled:
            print(f"tfdowngrade: {message}", file=sys.stderr, flush=True)
            return
        with _lock:
            _end_step()
            _step_text, _step_started = message, time.monotonic()
            _step = _progress().add_task(message, total=None, kind="step")

    return say


@contextlib.contextmanager
def transfer(description: str, total_bytes: int | None) -> Iterator[Callable[[int], None]]:
    """A byte-count bar (size, rate); yields update(bytes_done). A no-op unless live."""
    if not _enabled:
        yield lambda _done: None
        return
    with _lock:
        task = _progress().add_task(description, total=total_bytes, kind="bytes")

    def update(done: int) -> None:
        if _live is not None:
            _live.update(task, completed=min(done, total_bytes) if total_bytes else done)

    try:
        yield update
    finally:
        with _lock:
            if _live is not None:
                _live.remove_task(task)


@contextlib.contextmanager
def tracker(total: int, description: str, quiet: bool = False) -> Iterator[Callable[[str], None]]:
    """A count bar over `total` items; yields advance(message) for each item done. Without a
    terminal each item is one plain line; with --quiet, nothing."""
    if not _enabled:
        def plain(message: str) -> None:
            if not quiet and not _quiet:
                print(f"tfdowngrade: {message}", file=sys.stderr, flush=True)
        yield plain
        return
    with _lock:
        task = _progress().add_task(description, total=total, kind="count")

    def advance(message: str) -> None:
        with _lock:
            if _live is not None:
                _live.console.print(f"tfdowngrade: {message}", highlight=False, markup=False)
                _live.advance(task)

    try:
        yield advance
    finally:
        with _lock:
            if _live is not None:
                _live.remove_task(task)


@contextlib.contextmanager
def activity(description: str) -> Iterator[None]:
    """A spinner with elapsed time while a long step runs (no-op unless live)."""
    if not _enabled:
        yield
        return
    with _lock:
        task = _progress().add_task(description, total=None, kind="step")
    try:
        yield
    finally:
        with _lock:
            if _live is not None:
                _live.remove_task(task)
