"""The language server: diagnostics on open, change and save, quick fixes, and nothing that
one bad message or one failing check can bring down.

Each check reads the configuration of the document's own path (found as ``normlint
check`` finds it, so a config edit applies to the next check) and resolves the project
files it imports (cross-file analysis), with the editor's unsaved text in place of the file.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol

from .. import __version__
from ..errors import NormlintError
from ..findings import Finding
from ..settings import Settings
from ..static.discovery import PYTHON_SUFFIXES
from ..static.engine import RunOptions, check_paths
from .convert import code_actions, diagnostic

logger = logging.getLogger("normlint.lsp")
CHANGE_DELAY_S = 0.15


def check_document(path: Path | None, text: str) -> list[Finding]:
    """The findings of an editor buffer: ``path``'s configuration and project, ``text`` as
    its content; None for an unsaved, untitled buffer (the current directory's settings).
    Raises NormlintError for a bad configuration."""
    name = str(path) if path is not None else "-"
    report = check_paths([], Settings(), RunOptions(jobs=1, documents={name: text.encode("utf-8", "surrogatepass")}))
    return report.findings


@dataclass
class _State:
    # uri -> (the document version that was checked, its findings): fixes are edits of
    # that version's text, never offered for another
    findings: dict[str, tuple[int | None, list[Finding]]] = field(default_factory=dict)


class _Protocol(LanguageServerProtocol):
    def structure_message(self, data):
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            # pygls drops a request whose params do not fit the method; answer it, so a
            # client waiting for the reply is not left hanging.
            if isinstance(data.get("id"), (int, str)) and isinstance(data.get("method"), str):
                self._send_response(data["id"], error=exc.to_response_error())
            raise


class NormlintServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("normlint", __version__, text_document_sync_kind=lsp.TextDocumentSyncKind.Full,
                         protocol_cls=_Protocol)
        self.state = _State()

    def report_server_error(self, error: Exception, source) -> None:
        # A message pygls could not handle (not JSON, wrong shape) was already logged in one
        # line; the server carries on with the next message.
        logger.debug("ignored a bad message: %s: %s", type(error).__name__, _one_line(error))

    def check(self, uri: str) -> None:
        version = getattr(self.workspace.text_documents.get(uri), "version", None)
        try:
            doc = self.workspace.get_text_document(uri)
            path = Path(doc.path) if uri.startswith("file:") else None
            if path is not None and not path.name.endswith(PYTHON_SUFFIXES):
                return
            findings = check_document(path, doc.source)
            diagnostics = [diagnostic(f, doc) for f in findings]
        except NormlintError as exc:
            self._tell(lsp.MessageType.Error, f"normlint: {exc}")
            findings, diagnostics = [], []
        except Exception as exc:   # a checker bug must not take the editor's linter down
            self._tell(lsp.MessageType.Error, f"normlint: internal error on {uri}: "
                                              f"{type(exc).__name__}: {_one_line(exc)}")
            findings, diagnostics = [], []
        self.state.findings[uri] = (version, findings)
        self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics,
                                                                            version=version))

    def _tell(self, kind: lsp.MessageType, message: str) -> None:
        logger.error("%s", message)
        self.window_show_message(lsp.ShowMessageParams(type=kind, message=message))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def build_server() -> NormlintServer:
    server = NormlintServer()

    @server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: NormlintServer, params: lsp.DidOpenTextDocumentParams) -> None:
        ls.check(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    async def did_change(ls: NormlintServer, params: lsp.DidChangeTextDocumentParams) -> None:
        # An editor sends a change per keystroke: check once typing pauses, on the latest text.
        uri, version = params.text_document.uri, params.text_document.version
        await asyncio.sleep(CHANGE_DELAY_S)
        try:
            latest = ls.workspace.get_text_document(uri).version
        except Exception:   # closed meanwhile
            return
        if latest == version:
            ls.check(uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: NormlintServer, params: lsp.DidSaveTextDocumentParams) -> None:
        ls.check(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: NormlintServer, params: lsp.DidCloseTextDocumentParams) -> None:
        ls.state.findings.pop(params.text_document.uri, None)
        ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=params.text_document.uri,
                                                                          diagnostics=[]))

    @server.feature(lsp.TEXT_DOCUMENT_CODE_ACTION,
                    lsp.CodeActionOptions(code_action_kinds=[lsp.CodeActionKind.QuickFix]))
    def code_action(ls: NormlintServer, params: lsp.CodeActionParams) -> list[lsp.CodeAction]:
        uri = params.text_document.uri
        checked, findings = ls.state.findings.get(uri, (None, []))
        try:
            doc = ls.workspace.get_text_document(uri)
            if not findings or doc.version != checked:   # edited since: its check is pending
                return []
            return code_actions(findings, doc, params.range)
        except Exception as exc:
            logger.error("normlint: no code actions for %s: %s", uri, _one_line(exc))
            return []

    return server


class _OneLine(logging.Formatter):
    """Log records without tracebacks: an editor's log pane gets one line per event."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage().split("\n", 1)[0]   # pygls puts tracebacks in the text too
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            message = f"{message}: {type(exc).__name__}: {_one_line(exc)}"
        record = logging.makeLogRecord({**record.__dict__, "msg": message, "args": (),
                                        "exc_info": None, "exc_text": None})
        return super().format(record)


def main() -> None:
    """Serve over stdin/stdout until the client says exit."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine("%(name)s: %(levelname)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    build_server().start_io()
