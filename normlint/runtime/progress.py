"""Stage progress for long audits: on stderr, only when it is a terminal, only after ~2 s.

A short audit prints nothing; a long one shows ``normlint: <stage> (12.3 s)`` on one line
that is rewritten in place and erased at the end, so nothing of it is left in the
terminal's scrollback and nothing ever reaches a pipe or a file. While it runs, writes to
``sys.stderr`` (the user's prints are redirected there during an audit, and warnings go
there) first erase the line, which is drawn again once their line is complete.
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
        self._at_line_start = True
        self.writer = _ClearingWriter(self)
        self._replaced = None
        if enabled:
            if self._stream is sys.stderr:   # what anyone writes to stderr meanwhile
                self._replaced, sys.stderr = sys.stderr, self.writer
            self._thread = threading.Thread(target=self._run, name="normlint-progress", daemon=True)
            self._thread.start()

    def _write_through(self, text: str) -> int:
        with self._lock:
            if self._shown:
                self._stream.write("\r\x1b[K")
                self._shown = False
            if text:
                self._at_line_start = text.endswith("\n")
            return self._stream.write(text)

    def stage(self, name: str) -> None:
        with self._lock:
            self._stage = name
            if self._shown:
                self._draw()

    def _draw(self) -> None:
        if not self._at_line_start:  # never over a line someone else has not ended
            return
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
        if self._replaced is not None and sys.stderr is self.writer:
            sys.stderr = self._replaced
        with self._lock:
            if self._shown:
                self._stream.write("\r\x1b[K")
                self._stream.flush()
                self._shown = False

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _ClearingWriter:
    """A stand-in for the progress's stream: writes erase the progress line first."""

    def __init__(self, progress: Progress):
        self._progress = progress

    def write(self, text: str) -> int:
        return self._progress._write_through(text)

    def __getattr__(self, name: str):   # flush, isatty, fileno, encoding, ...
        return getattr(self._progress._stream, name)
