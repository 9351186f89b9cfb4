"""A minimal LSP client over stdio, the way an editor drives a server: Content-Length
framed JSON-RPC, a reader thread, and waits with timeouts (a hung server fails the test
instead of hanging it)."""

from __future__ import annotations

import itertools
import json
import queue
import subprocess
import sys
import threading
from pathlib import Path


class LspClient:
    def __init__(self, cwd: Path, args: list[str] | None = None):
        self.proc = subprocess.Popen(args or [sys.executable, "-m", "normlint", "server"], cwd=cwd,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.messages: queue.Queue = queue.Queue()
        self._ids = itertools.count(1)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.stderr = b""

    def _read(self) -> None:
        out = self.proc.stdout
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    self.messages.put(None)
                    return
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.decode("ascii").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            self.messages.put(json.loads(out.read(length)))

    def send_raw(self, body: bytes) -> None:
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def notify(self, method: str, params: dict) -> None:
        self.send_raw(json.dumps({"jsonrpc": "2.0", "method": method, "params": params}).encode())

    def request(self, method: str, params: dict, timeout: float = 30) -> dict:
        """The reply message: its ``result``, or its ``error``."""
        msg_id = next(self._ids)
        self.send_raw(json.dumps({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params}).encode())
        return self.wait(lambda m: m.get("id") == msg_id and "method" not in m, timeout)

    def wait(self, match, timeout: float = 30) -> dict:
        """The next message that ``match`` accepts; others are kept in ``seen``."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no matching message from the server")
            msg = self.messages.get(timeout=left)
            if msg is None:
                raise EOFError("the server closed its output: " + self.proc.stderr.read().decode(errors="replace"))
            if match(msg):
                return msg

    def diagnostics(self, uri: str, timeout: float = 30) -> list[dict]:
        msg = self.wait(lambda m: m.get("method") == "textDocument/publishDiagnostics"
                        and m["params"]["uri"] == uri, timeout)
        return msg["params"]["diagnostics"]

    def initialize(self, root: Path) -> dict:
        reply = self.request("initialize", {"processId": None, "rootUri": root.as_uri(), "capabilities": {}})
        self.notify("initialized", {})
        return reply["result"]

    def open(self, path: Path, text: str, version: int = 1) -> None:
        self.notify("textDocument/didOpen", {"textDocument": {
            "uri": path.as_uri(), "languageId": "python", "version": version, "text": text}})

    def close(self) -> int:
        """Shut the server down as an editor does; its exit status."""
        try:
            self.request("shutdown", {}, timeout=10)
            self.notify("exit", {})
            self.proc.stdin.close()
        except (BrokenPipeError, OSError, TimeoutError, EOFError):
            self.proc.kill()
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.stderr = self.proc.stderr.read()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return code
