"""Progress of the long steps (downloads, compositing, inference, training).

The core library reports progress here and knows nothing about how it is shown:
the command line installs a sink that draws rich progress bars; without a sink
(Prefect workers, tests, notebooks) reporting costs nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class ProgressUpdate(Protocol):
    """``update(completed, total=None)``: moves a bar; ``total`` None keeps the last one."""

    def __call__(self, completed: int, total: int | None = None) -> None:
        """Report ``completed`` units done."""


class ProgressSink(Protocol):
    """Shows progress bars: one per :func:`progress_bar`, possibly several at once."""

    def start(self, description: str, total: int | None) -> int:
        """Open a bar; returns its id."""

    def update(self, bar_id: int, completed: int, total: int | None) -> None:
        """Move a bar."""

    def finish(self, bar_id: int) -> None:
        """Close a bar (whatever its count)."""


_sink: ProgressSink | None = None
_lock = threading.Lock()


def set_progress_sink(sink: ProgressSink | None) -> ProgressSink | None:
    """Install ``sink`` for the whole process (None removes it); returns the previous one."""
    global _sink
    with _lock:
        previous, _sink = _sink, sink
    return previous


@contextmanager
def progress_bar(description: str, total: int | None = None) -> Iterator[ProgressUpdate]:
    """A progress bar for one step, shown by the installed sink if there is one.

    Example:
        >>> with progress_bar("download 3 scenes", total=3) as update:
        ...     for done in range(1, 4):
        ...         update(done)
    """
    sink = _sink
    if sink is None:

        def ignore(completed: int, total: int | None = None) -> None:
            """No sink: nothing to show."""

        yield ignore
        return
    bar_id = sink.start(description, total)

    def update(completed: int, total: int | None = None) -> None:
        sink.update(bar_id, completed, total)

    try:
        yield update
    finally:
        sink.finish(bar_id)
