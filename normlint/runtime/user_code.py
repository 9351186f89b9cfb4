"""Running the user's code from ``normlint audit``: imports, factories, forwards.

While it runs, what it prints goes to stderr, also what it writes to file descriptor 1
below Python (so ``--output-format json`` on stdout stays valid); an exit (``sys.exit``,
``SystemExit``) is an error rather than the audit's own exit status; and the folders put
on ``sys.path`` and the modules imported from them are taken away afterwards (an audit
run in-process leaves the interpreter as it found it).
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from typing import Callable, Iterator, TypeVar

from ..errors import NormlintError

T = TypeVar("T")


class UserCodeError(NormlintError):
    """The user's code raised; the message is one line, ``details`` holds the traceback."""

    def __init__(self, message: str, details: str = ""):
        super().__init__(message)
        self.details = details


def one_line(text: str) -> tuple[str, bool]:
    """The first non-empty line of ``text`` and whether anything else was cut."""
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return (lines[0] if lines else ""), len(lines) > 1


def describe_exception(exc: BaseException) -> str:
    """``TypeError: first line of the message`` (the rest is in the ``--verbose`` details)."""
    first, _ = one_line(str(exc))
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def call_user(what: str, fn: Callable[[], T], *, failure: str | None = None) -> T:
    """Run ``fn`` (the user's code); its exceptions and exits become one-line errors.

    ``what`` names the step for the message: ``"importing model.py"``, ``"model.py:make"``;
    ``failure`` replaces "<what> raised" (``"cannot import model.py"``).
    """
    try:
        return fn()
    except NormlintError:
        raise
    except SystemExit as exc:
        raise UserCodeError(f"{what} exited (SystemExit({exc.code!r})) instead of returning; "
                            "a target must not exit", traceback.format_exc()) from None
    except Exception as exc:  # noqa: BLE001 - the user's code failed: say so on one line
        raise UserCodeError(f"{failure or what + ' raised'} {describe_exception(exc)}",
                            traceback.format_exc()) from exc


class UserSession:
    """Folders put on ``sys.path`` for the user's imports during one audit."""

    def __init__(self) -> None:
        self.forget: list[str] = []

    def add_path(self, folder: str) -> None:
        """Put ``folder`` first on ``sys.path``; the modules imported from it are dropped
        from ``sys.modules`` when the session ends (normlint's own modules excepted)."""
        folder = os.path.abspath(folder)
        if folder in sys.path:
            sys.path.remove(folder)
        sys.path.insert(0, folder)
        self.forget.append(os.path.join(folder, ""))


def _flush_c_stdio() -> None:
    """Flush C's stdio buffers (a C extension's ``printf`` to a pipe sits in one until the
    process exits, which would put it on the real stdout after all)."""
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError, TypeError):   # no C library to ask (Windows, odd builds)
        pass


@contextlib.contextmanager
def _stdout_descriptor_to_stderr() -> Iterator[None]:
    """File descriptor 1 points at descriptor 2 meanwhile: what the user's code writes
    below Python (``os.write(1, ...)``, a child process, a C extension's ``printf``) goes
    to stderr too. Nothing changes where the descriptors cannot be duplicated."""
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError, AttributeError):
        yield
        return
    try:
        os.dup2(2, 1)
    except OSError:
        os.close(saved)
        yield
        return
    try:
        yield
    finally:
        _flush_c_stdio()
        os.dup2(saved, 1)
        os.close(saved)


@contextlib.contextmanager
def user_session() -> Iterator[UserSession]:
    """The whole audit's stay in the user's code: stdout goes to stderr (Python's and file
    descriptor 1's), and ``sys.path`` and the modules imported from the session's folders
    are restored afterwards."""
    saved_path = list(sys.path)
    saved_modules = set(sys.modules)
    session = UserSession()
    own = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "")
    try:
        with contextlib.redirect_stdout(sys.stderr), _stdout_descriptor_to_stderr():
            yield session
    finally:
        sys.path[:] = saved_path
        roots = tuple(session.forget)
        for name in set(sys.modules) - saved_modules:
            path = os.path.abspath(getattr(sys.modules.get(name), "__file__", None) or os.sep)
            if roots and path.startswith(roots) and not path.startswith(own) \
                    and not _installed(path):
                del sys.modules[name]


def _installed(path: str) -> bool:
    """A library module (site-packages, the interpreter's own): the user's session folders
    may hold one (a project's ``.venv``), but importing it again is not idempotent (torch
    registers its operators once), so it stays imported."""
    import sysconfig

    if set(path.split(os.sep)) & {"site-packages", "dist-packages"}:
        return True
    libraries = {os.path.join(os.path.abspath(p), "") for key, p in sysconfig.get_paths().items()
                 if key in ("stdlib", "platstdlib", "purelib", "platlib")}
    return path.startswith(tuple(libraries))
