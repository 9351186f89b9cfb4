"""`normlint server`, driven over stdio as an editor drives it: diagnostics on open, change
and save, the file's own configuration and imports, quick fixes, and a server that
survives whatever a client sends."""

from __future__ import annotations

import sys
import textwrap

import pytest

from .helpers import write
from .lsp_client import LspClient
from .test_cache_and_jobs import MODEL, PRE_NORM_BLOCK

pytest.importorskip("pygls")

pytestmark = pytest.mark.slow

# A document with one error: the residual stream rebound to the norm's output (NL303).
REBOUND = textwrap.dedent("""\
    import torch.nn as nn


    class Block(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.norm = nn.LayerNorm(d)
            self.mlp = nn.Linear(d, d)

        def forward(self, x):
            x = self.norm(x)
            x = x + self.mlp(x)
            return x
    """)
FIXED = REBOUND.replace("x = self.norm(x)\n        x = x + self.mlp(x)", "x = x + self.mlp(self.norm(x))")

# A server whose findings carry a fix, the way the autofix engine attaches them: the
# transport of Finding.fix to a code action is what is tested here.
WITH_FIXES = textwrap.dedent("""\
    import dataclasses, sys
    import normlint.lsp.server as server
    from normlint.findings import Edit, Fix

    real = server.check_document

    def with_fixes(path, text):
        out = []
        for f in real(path, text):
            if f.code == "NL303":
                f = dataclasses.replace(f, fix=Fix("keep the residual", (
                    Edit(f.line, 1, f.line + 1, 28, "        x = x + self.mlp(self.norm(x))"),), "unsafe"))
            out.append(f)
        return out

    server.check_document = with_fixes
    server.main()
    """)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """One server for the module, as an editor keeps one: every test uses its own files."""
    root = tmp_path_factory.mktemp("lsp")
    c = LspClient(root)
    c.initialize(root)
    yield c
    c.close()


def test_capabilities_shutdown_and_one_line_logs(tmp_path):
    c = LspClient(tmp_path)
    caps = c.initialize(tmp_path)["capabilities"]
    assert caps["textDocumentSync"]["change"] == 1 and caps["textDocumentSync"]["save"]
    assert caps["codeActionProvider"]["codeActionKinds"] == ["quickfix"]
    c.send_raw(b"not json")
    c.send_raw(b'{"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": 5}}')
    doc = tmp_path / "block.py"
    c.open(doc, REBOUND)
    assert [d["code"] for d in c.diagnostics(doc.as_uri())] == ["NL303"]
    assert c.close() == 0
    err = c.stderr.decode()
    assert "Traceback" not in err and "+-+" not in err
    lines = err.splitlines()
    assert len(lines) >= 2 and all(line.startswith(("pygls", "normlint")) for line in lines), err


def test_diagnostics_on_open_change_save_and_close(client, tmp_path):
    doc = write(tmp_path, "block.py", REBOUND)
    uri = doc.as_uri()
    client.open(doc, REBOUND)
    (diag,) = client.diagnostics(uri)
    assert diag["code"] == "NL303" and diag["source"] == "normlint" and diag["severity"] == 1
    assert diag["range"]["start"] == {"line": 10, "character": 12}
    assert diag["codeDescription"]["href"].endswith("/rules/NL303.md")
    # an unsaved edit is checked as typed
    client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2},
                                             "contentChanges": [{"text": FIXED}]})
    assert client.diagnostics(uri) == []
    client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 3},
                                             "contentChanges": [{"text": "def f(:\n"}]})
    assert [d["code"] for d in client.diagnostics(uri)] == ["NL900"]
    # saving re-checks (here the file on disk changed under the editor's buffer)
    client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 4},
                                             "contentChanges": [{"text": REBOUND}]})
    client.diagnostics(uri)
    client.notify("textDocument/didSave", {"textDocument": {"uri": uri}})
    assert [d["code"] for d in client.diagnostics(uri)] == ["NL303"]
    client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    assert client.diagnostics(uri) == []


def test_reads_the_files_configuration_and_its_imports(client, tmp_path):
    write(tmp_path, "quiet/pyproject.toml", "[tool.normlint]\nignore = ['NL303']\n")
    quiet = tmp_path / "quiet/block.py"
    client.open(quiet, REBOUND)
    assert client.diagnostics(quiet.as_uri()) == []
    # an unsaved model beside the block it imports: the cross-file finding appears
    write(tmp_path, "pkg/__init__.py", "")
    write(tmp_path, "pkg/blocks.py", PRE_NORM_BLOCK)
    model = tmp_path / "pkg/model.py"
    client.open(model, MODEL)
    assert [d["code"] for d in client.diagnostics(model.as_uri())] == ["NL302"]


def test_a_bad_configuration_is_a_message_not_a_crash(client, tmp_path):
    write(tmp_path, "bad/normlint.toml", "selct = ['NL1']\n")
    doc = tmp_path / "bad/block.py"
    client.open(doc, REBOUND)
    shown = client.wait(lambda m: m.get("method") == "window/showMessage")
    assert "unknown key 'selct'" in shown["params"]["message"] and shown["params"]["type"] == 1
    assert client.diagnostics(doc.as_uri()) == []
    good = tmp_path / "block.py"
    client.open(good, REBOUND)
    assert [d["code"] for d in client.diagnostics(good.as_uri())] == ["NL303"]


def test_non_ascii_columns_are_in_utf16_units(client, tmp_path):
    text = REBOUND.replace("x = self.norm(x)", "x = self.norm(x)  # 𝑥 ← norm(𝑥)").replace(
        "        x = self.norm(x)", "        é = 1; x = self.norm(x)")
    doc = tmp_path / "u.py"
    client.open(doc, text)
    (diag,) = client.diagnostics(doc.as_uri())
    line = text.splitlines()[10]
    assert diag["range"]["start"]["character"] == line.index("self.norm(x)")   # é is one UTF-16 unit


def test_quick_fix_from_a_findings_fix(tmp_path):
    c = LspClient(tmp_path, [sys.executable, "-c", WITH_FIXES])
    try:
        c.initialize(tmp_path)
        doc = tmp_path / "block.py"
        c.open(doc, REBOUND)
        (diag,) = c.diagnostics(doc.as_uri())
        reply = c.request("textDocument/codeAction", {
            "textDocument": {"uri": doc.as_uri()}, "range": diag["range"],
            "context": {"diagnostics": [diag]}})
        (action,) = reply["result"]
        assert action["kind"] == "quickfix" and action["title"].startswith("NL303: keep the residual")
        assert action["diagnostics"][0]["code"] == "NL303"
        (edit,) = action["edit"]["changes"][doc.as_uri()]
        assert edit == {"range": {"start": {"line": 10, "character": 0}, "end": {"line": 11, "character": 27}},
                        "newText": "        x = x + self.mlp(self.norm(x))"}
        # applying the edit gives the fixed document, which is clean
        lines = REBOUND.splitlines(keepends=True)
        fixed = "".join(lines[:10]) + edit["newText"] + lines[11][27:] + "".join(lines[12:])
        assert fixed == FIXED
        # a range with no finding gets no action
        none = c.request("textDocument/codeAction", {
            "textDocument": {"uri": doc.as_uri()},
            "range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 1}},
            "context": {"diagnostics": []}})
        assert none["result"] == []
    finally:
        assert c.close() == 0


GARBAGE = [
    b"this is not json",
    b"[1, 2, 3]",
    b"42",
    b'{"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": 5}}',
    b'{"jsonrpc": "2.0", "method": "textDocument/didChange", "params": {"textDocument": '
    b'{"uri": "file:///never/opened.py", "version": 1}, "contentChanges": [{"text": "x"}]}}',
    b'{"jsonrpc": "1.0", "id": 7, "method": "initialize"}',
    # a lone surrogate in the text: valid JSON, not encodable as UTF-8
    b'{"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {"uri": '
    b'"file:///tmp/x.py", "languageId": "python", "version": 1, "text": "\\u00e9\\udc80"}}}',
    b'{"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {"uri": '
    b'"untitled:Untitled-1", "languageId": "python", "version": 1, "text": "def f(:"}}}',
]


@pytest.mark.parametrize("garbage", GARBAGE)
def test_garbage_from_the_client_is_survived(client, tmp_path, garbage):
    client.send_raw(garbage)
    # the next, well-formed message is served as usual
    doc = tmp_path / "block.py"
    client.open(doc, REBOUND)
    assert [d["code"] for d in client.diagnostics(doc.as_uri())] == ["NL303"]


def test_a_request_with_bad_params_gets_an_error_reply(client):
    reply = client.request("textDocument/codeAction", {"textDocument": 42})
    assert reply["error"]["code"] == -32602
    assert client.request("no/such/method", {})["error"]["code"] == -32601


def test_garbage_headers_then_a_good_message(client, tmp_path):
    client.proc.stdin.write(b"Content-Type: nonsense\r\nX: y\r\n\r\n")
    client.proc.stdin.flush()
    doc = tmp_path / "block.py"
    client.open(doc, REBOUND)
    assert [d["code"] for d in client.diagnostics(doc.as_uri())] == ["NL303"]


def test_server_without_pygls_is_a_one_line_error(tmp_path):
    import subprocess

    # a sitecustomize that hides pygls, as on an install without the lsp extra
    write(tmp_path, "hide/sitecustomize.py",
          "import sys\nclass _Hide:\n    def find_spec(self, name, *a):\n"
          "        if name.split('.')[0] == 'pygls':\n            raise ImportError('hidden', name=name)\n"
          "sys.meta_path.insert(0, _Hide())\n")
    import os
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "hide")}
    proc = subprocess.run([sys.executable, "-m", "normlint", "server"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "normlint: error: the language server needs pygls: pip install 'normlint[lsp]'"


def test_a_notebook_opened_as_json_gets_diagnostics_on_its_source_lines(client, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook()
    nb.cells = [new_code_cell("import torch.nn as nn"), new_code_cell(REBOUND.split("\n", 1)[1])]
    text = nbformat.writes(nb)
    doc = tmp_path / "nb.ipynb"
    client.open(doc, text)
    (diag,) = client.diagnostics(doc.as_uri())
    line = text.splitlines()[diag["range"]["start"]["line"]]
    assert diag["code"] == "NL303"
    assert line[diag["range"]["start"]["character"]:].startswith("self.norm(x)")


def test_a_burst_of_changes_is_checked_once_on_the_latest_text(client, tmp_path):
    doc = tmp_path / "typing.py"
    uri = doc.as_uri()
    client.open(doc, FIXED)
    assert client.diagnostics(uri) == []
    for version, text in enumerate(["def f(:\n", "x = (\n", REBOUND], start=2):
        client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version},
                                                 "contentChanges": [{"text": text}]})
    msg = client.wait(lambda m: m.get("method") == "textDocument/publishDiagnostics" and m["params"]["uri"] == uri)
    assert msg["params"]["version"] == 4
    assert [d["code"] for d in msg["params"]["diagnostics"]] == ["NL303"]


# A real safe fix (NL402's upcast) on a line where characters of two UTF-16 units come first.
RMS = textwrap.dedent("""\
    import torch
    import torch.nn as nn


    class RMSNorm(nn.Module):
        def __init__(self, d, eps=1e-5):
            super().__init__()
            self.eps = eps

        def forward(self, x):
            𝑥𝑥 = x; var = 𝑥𝑥.pow(2).mean(-1, keepdim=True)
            return x * torch.rsqrt(var + self.eps)
    """)


def _apply(text: str, edits: list[dict]) -> str:
    """Apply LSP text edits (UTF-16 positions) the way an editor does."""
    lines = text.splitlines(keepends=True)

    def offset(pos: dict) -> int:
        line = lines[pos["line"]]
        units = line.encode("utf-16-le")[:2 * pos["character"]].decode("utf-16-le")
        return sum(len(l) for l in lines[:pos["line"]]) + len(units)

    for e in sorted(edits, key=lambda e: (e["range"]["start"]["line"], e["range"]["start"]["character"]),
                    reverse=True):
        text = text[:offset(e["range"]["start"])] + e["newText"] + text[offset(e["range"]["end"]):]
    return text


def test_a_real_quick_fix_after_astral_characters(client, tmp_path):
    doc = tmp_path / "rms.py"
    client.open(doc, RMS)
    (diag,) = client.diagnostics(doc.as_uri())
    line = RMS.splitlines()[10]
    start = len(line[:line.index("𝑥𝑥.pow")].encode("utf-16-le")) // 2
    assert diag["code"] == "NL402" and diag["range"]["start"] == {"line": 10, "character": start}
    reply = client.request("textDocument/codeAction", {
        "textDocument": {"uri": doc.as_uri()}, "range": diag["range"], "context": {"diagnostics": [diag]}})
    (action,) = reply["result"]
    fixed = _apply(RMS, action["edit"]["changes"][doc.as_uri()])
    assert "𝑥𝑥 = x; var = 𝑥𝑥.float().pow(2).mean(-1, keepdim=True).to(𝑥𝑥.dtype)\n" in fixed


def test_no_quick_fix_from_findings_of_an_older_text(client, tmp_path):
    """The edits were computed on the text that was checked: after a change that is not
    checked yet they would land in the wrong place, so none is offered until it is."""
    doc = tmp_path / "stale.py"
    uri = doc.as_uri()
    client.open(doc, RMS)
    (diag,) = client.diagnostics(uri)
    edited = "# a new first line\n" + RMS
    client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2},
                                             "contentChanges": [{"text": edited}]})
    reply = client.request("textDocument/codeAction", {
        "textDocument": {"uri": uri}, "range": diag["range"], "context": {"diagnostics": [diag]}})
    assert reply["result"] == []
    (diag,) = client.diagnostics(uri)       # the change is checked: fixes for the new text
    reply = client.request("textDocument/codeAction", {
        "textDocument": {"uri": uri}, "range": diag["range"], "context": {"diagnostics": [diag]}})
    (action,) = reply["result"]
    assert "var = 𝑥𝑥.float()" in _apply(edited, action["edit"]["changes"][uri])
