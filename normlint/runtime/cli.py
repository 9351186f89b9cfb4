"""``normlint audit``: a click command the main CLI registers (``cli.add_command(audit_command)``).

Importing this module must stay cheap (the main CLI imports it for every command): torch
and the engine are imported inside the callback.
"""

from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass, field
from typing import Any

import click

from ..cli_options import _codes, output_options, selection_options, write_output
from ..errors import AuditError, NormlintError
from ..report import exit_code, render

_DTYPES = ("float32", "float16", "bfloat16")
_META_FAILURE = (" (on the meta device tensors have shapes but no values: a forward that reads "
                 "values, e.g. .item() or `if mask.any()`, or needs a kernel that meta lacks "
                 "cannot run there; audit on the cpu, with --init random for a directory)")
_TEXT_FORMATS = ("concise", "full")


@dataclass
class AuditRequest:
    """What the command line asked for (everything but selection and output)."""

    target: str
    input_specs: tuple[str, ...] = ()
    texts: tuple[str, ...] = ()
    tokenizer: str | None = None
    init: str = "weights"
    weights: str | None = None
    trust_pickle: bool = False
    args: tuple[str, ...] = ()
    dtype: str | None = None
    device: str | None = None
    train: bool = False
    verbose: bool = False
    profile: bool = False                # measure the depth profile (the HTML report)


@dataclass
class AuditRun:
    report: Any                          # AuditReport
    summary: Any                         # report.html.AuditSummary
    inputs_origin: str
    profile: Any = None                  # runtime.profile.DepthProfile
    notes: list[str] = field(default_factory=list)   # from loading (weights, tokenizer)


@click.command("audit")
@click.argument("target")
@click.option("--input", "input_specs", multiple=True, metavar="SPEC",
              help="An example input: input_ids=int64[2,16]:0..1000 or float32[2,3,224,224]. "
                   "Repeat for several. Overrides the target's own or derived inputs.")
@click.option("--text", "texts", multiple=True, metavar="TEXT",
              help="A sentence to tokenize (repeat for a batch): padded with its attention mask "
                   "by the directory's tokenizer (or --tokenizer DIR).")
@click.option("--tokenizer", type=click.Path(file_okay=False), default=None,
              help="A local directory with the tokenizer for --text.")
@click.option("--init", type=click.Choice(("weights", "random")), default="weights", show_default=True,
              help="For a Hugging Face directory: its weights, or random ones from config.json.")
@click.option("--weights", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Load a state dict (.safetensors, or a torch file read with weights_only=True) "
                   "into the model the target built; missing and unexpected keys are reported.")
@click.option("--trust-pickle", is_flag=True,
              help="Allow a .pt/.pth target holding a whole pickled module (unpickling runs code).")
@click.option("--arg", "args", multiple=True, metavar="KEY=VALUE",
              help="A keyword argument for the factory (a Python literal or a string). Repeatable.")
@click.option("--dtype", type=click.Choice(_DTYPES), default=None,
              help="Cast the model and floating-point inputs before the audit.")
@click.option("--device", default=None, metavar="DEVICE",
              help="Any device torch accepts: cpu, cuda, cuda:1, mps, meta (structural checks "
                   "only; directories and factories are built there, allocating nothing).")
@click.option("--train", is_flag=True, help="Audit in train mode (default: eval mode).")
@selection_options
@output_options(extra_formats=("html",))
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="Use this config file instead of discovering one.")
@click.option("-v", "--verbose", is_flag=True,
              help="Show the full error and traceback of a failing target, and library warnings.")
@click.pass_context
def audit_command(ctx, target, input_specs, texts, tokenizer, init, weights, trust_pickle, args,
                  dtype, device, train, select, extend_select, ignore, output_format, output_file,
                  exit_zero, config_file, verbose) -> None:
    """Run a model on example inputs and check what its norms actually did.

    TARGET is a local Hugging Face model directory, a .pt/.pth file holding a pickled module
    (with --trust-pickle), or path/to/file.py:callable / package.module:callable, whose
    callable returns a module or (module, example_inputs). Nothing is ever downloaded.
    """
    from pathlib import Path

    from ..config import load_config
    from ..selection import resolve_selection

    if output_file and output_file.lower().endswith((".html", ".htm")) \
            and ctx.get_parameter_source("output_format") == click.core.ParameterSource.DEFAULT:
        output_format = "html"
    # As for `check`: the config file's selection and rule options, CLI flags on top.
    config = load_config(Path(config_file) if config_file else None)
    cli_extend, cli_ignore = _codes(extend_select), _codes(ignore)
    enabled = resolve_selection(_codes(select) or config.select,
                                (*config.extend_select, *(cli_extend or ())),
                                (*config.ignore, *(cli_ignore or ())))
    request = AuditRequest(target, input_specs, texts, tokenizer, init, weights, trust_pickle, args,
                           dtype, device, train, verbose, profile=output_format == "html")
    from .progress import Progress

    with Progress() as progress:
        run = _one_line_errors(lambda: run_audit(request, enabled, config.rule_options, progress, config),
                               verbose)
        progress.stage("writing the report")
        text = format_run(run, output_format)
    write_output(text, output_file)
    sys.exit(0 if exit_zero else exit_code(run.report.findings))


def _one_line_errors(fn, verbose: bool):
    """A failing target is one line on stderr; ``--verbose`` adds the full message and the
    traceback of the user's code."""
    from .user_code import one_line

    try:
        return fn()
    except NormlintError as exc:
        first, more = one_line(str(exc))
        details = getattr(exc, "details", "")
        if not details and exc.__cause__ is not None:
            details = "".join(traceback.format_exception(exc.__cause__))
        if verbose:
            if more:
                click.echo(str(exc), err=True)
            if details:
                click.echo(details.rstrip(), err=True)
            raise NormlintError(first) from None
        raise NormlintError(first + (" (--verbose shows the rest)" if more or details else "")) from None


def format_run(run: AuditRun, output_format: str) -> str:
    report = run.report
    if output_format == "html":
        from ..report.html import render_html

        return render_html(report, run.summary, run.profile, run.notes)
    text = render(report.findings, output_format)
    if output_format not in _TEXT_FORMATS:
        # Machine formats stay parseable: every note (loading, lazy modules, the meta
        # device's structural-only audit) goes to stderr.
        for note in [*run.notes, *report.notes]:
            click.echo(f"normlint: note: {note}", err=True)
        return text
    summary = run.summary
    header = (f"audit: {report.model} in {report.mode} mode on {summary.device}, "
              f"from {summary.source}\ninputs: {summary.inputs} ({run.inputs_origin})\n")
    notes = "".join(f"note: {n}\n" for n in [*run.notes, *report.notes])
    return f"{header}\n{report.format_table()}\n\n{notes}{text}"


def _choose_inputs(request: AuditRequest, loaded, meta: bool):
    """(inputs, where they came from): --input, --text, the target's own, or derived."""
    from .hf import derive_inputs, derived_input_notes, is_transformers_model, tokenize
    from .input_specs import build_inputs, parse_input_spec

    if request.input_specs and request.texts:
        raise NormlintError("give --input or --text, not both")
    if request.input_specs:
        specs = [parse_input_spec(s) for s in request.input_specs]
        return build_inputs(specs, allocate=not meta), "--input", []
    if request.texts:
        directory = request.tokenizer or loaded.directory
        if directory is None:
            raise NormlintError("--text needs a tokenizer: a Hugging Face directory target that "
                                "has one, or --tokenizer DIR")
        batch, notes = tokenize(list(request.texts), directory, loaded.model, meta=meta,
                                verbose=request.verbose)
        return batch, f"--text, tokenized by {directory}'s tokenizer, padded", notes
    if loaded.inputs is not None:
        return loaded.inputs, "from the factory", []
    if is_transformers_model(loaded.model):
        name = getattr(loaded.model, "main_input_name", "input_ids")
        inputs = derive_inputs(loaded.model, meta=meta)
        return inputs, f"derived from the config: {name}", derived_input_notes(loaded.model, inputs)
    raise NormlintError(f"{request.target} gives a model without example inputs; "
                        "give --input SPEC (e.g. --input float32[2,16,64])")


def run_audit(request: AuditRequest, enabled, options, progress=None, config=None) -> AuditRun:
    """Load the target, build its inputs and audit it; every failure is a NormlintError.
    ``config``: the project ``Config`` whose ``per-file-ignores`` and ``# noqa`` apply."""
    import torch

    from ..report.html import AuditSummary
    from .api import audit_with
    from .input_specs import describe_inputs
    from .locate import target_function
    from .progress import Progress
    from .state import seeded_rngs
    from .targets import TargetOptions, load_target, parse_arg, parse_device, to_device_dtype
    from .user_code import UserCodeError, user_session

    device = parse_device(request.device) if request.device else None
    dtype = getattr(torch, request.dtype) if request.dtype else None
    target_options = TargetOptions(init=request.init, trust_pickle=request.trust_pickle,
                                   weights=request.weights, args=dict(map(parse_arg, request.args)),
                                   device=device, dtype=dtype, verbose=request.verbose)
    progress = progress or Progress(enabled=False)
    # Seeded: random weights (--init random, a factory's init) and drawn inputs are the
    # same on every run, so a CI job sees the same numbers each time.
    with seeded_rngs(0), user_session() as session:
        try:
            progress.stage("loading the model")
            loaded = load_target(request.target, target_options, session)
            progress.stage("building inputs")
            inputs, origin, input_notes = _choose_inputs(request, loaded, target_options.meta)
            model, inputs = to_device_dtype(loaded.model, inputs, dtype, device)
            report = audit_with(model, inputs, enabled=enabled, options=options,
                                mode="train" if request.train else "eval", progress=progress.stage,
                                config=config, origin=target_function(request.target))
            profile = None
            if request.profile:
                from .profile import measure_profile

                progress.stage("measuring the depth profile")
                profile = measure_profile(model, inputs, report)
        except AuditError as exc:
            first, newline, rest = str(exc).partition("\n")
            if target_options.meta:  # the reason goes on the line that is shown
                first += _META_FAILURE
            raise NormlintError(first + newline + rest) from exc
        except SystemExit as exc:
            raise UserCodeError(f"{request.target} exited (SystemExit({exc.code!r})) while the "
                                "audit ran it; a model must not exit",
                                traceback.format_exc()) from None
    parameter = next(iter(model.parameters()), None)
    summary = AuditSummary(
        target=request.target, source=loaded.source, inputs=describe_inputs(inputs),
        device=str(device or (parameter.device if parameter is not None else "cpu")),
        dtype=str(parameter.dtype).replace("torch.", "") if parameter is not None else "-",
        torch_version=torch.__version__)
    return AuditRun(report, summary, origin, profile, [*loaded.notes, *input_notes])
