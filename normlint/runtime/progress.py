"""Stage progress for long audits: on stderr, only when it is a terminal, only after ~2 s.

A short audit prints nothing; a long one shows ``normlint: <stage> (12.3 s)`` on one line
that is rewritten in place and erased at the end, so nothing of it is left in the
terminal's scrollback and nothing ever reaches a pipe or a file.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


class Progress:
    """``stage(name)`` as the audit moves on; ``close()`` (or ``with``) erases the line."""

    def __init__(self, stream: TextIO | None = None, *, delay: float = 2.0, interval: float = 0.5,
                 enabled: bool | None = None):
        self._stream = stream if stream is not None else sys.stderr
        if enabled is None:
            isatty = getattr(self._stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self._enabled = enabled
        self._delay, self._interval = delay, interval
        self._start = time.monotonic()
        self._stage = "starting"
        self._shown = False
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        if enabled:
            self._thread = threading.Thread(target=self._run, name="normlint-progress", daemon=True)
            self._thread.start()

    def stage(self, name: str) -> None:
        with self._lock:
            self._stage = name
            if self._shown:
                self._draw()

    def _draw(self) -> None:
        elapsed = time.monotonic() - self._start
        self._stream.write(f"\r\x1b[Knormlint: {self._stage} ({elapsed:.1f} s)")
        self._stream.flush()
        self._shown = True

    def _run(self) -> None:
        if self._done.wait(self._delay):
            return
        while True:
            with self._lock:
                if self._done.is_set():
                    return
                self._draw()
            if self._done.wait(self._interval):
                return

    def close(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            if self._shown:
                self._stream.write("\r\x1b[K")
                self._stream.flush()
                self._shown = False

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
