"""``normlint audit``: a click command the main CLI registers (``cli.add_command(audit_command)``).

Importing this module must stay cheap (the main CLI imports it for every command): torch
and the engine are imported inside the callback.
"""

from __future__ import annotations

import sys

import click

from ..cli_options import _codes, output_options, selection_options, write_output
from ..errors import AuditError, NormlintError
from ..report import exit_code, render

_DTYPES = ("float32", "float16", "bfloat16")


@click.command("audit")
@click.argument("target")
@click.option("--input", "input_specs", multiple=True, metavar="SPEC",
              help="An input for a model returned alone: input_ids=int64[2,16]:0..1000 or "
                   "float32[2,3,224,224]. Repeat for several.")
@click.option("--dtype", type=click.Choice(_DTYPES), default=None,
              help="Cast the model and floating-point inputs before the audit.")
@click.option("--device", type=click.Choice(("cpu", "cuda", "meta")), default=None,
              help="Run on this device (meta: structural checks only, no memory).")
@click.option("--train", is_flag=True, help="Audit in train mode (default: eval).")
@selection_options
@output_options
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="Use this config file instead of discovering one.")
def audit_command(target, input_specs, dtype, device, train, select, extend_select, ignore,
                  output_format, output_file, exit_zero, config_file) -> None:
    """Run a model on example inputs and check what its norms actually did.

    TARGET is path/to/file.py:callable or package.module:callable; the callable returns a
    module, or (module, example_inputs).
    """
    from pathlib import Path

    from ..config import load_config
    from ..selection import resolve_selection

    # As for `check`: the config file's selection and rule options, CLI flags on top.
    config = load_config(Path(config_file) if config_file else None)
    cli_extend, cli_ignore = _codes(extend_select), _codes(ignore)
    enabled = resolve_selection(_codes(select) or config.select,
                                (*config.extend_select, *(cli_extend or ())),
                                (*config.ignore, *(cli_ignore or ())))
    report = run_audit(target, input_specs, dtype, device, train, enabled, config.rule_options, config)
    text = render(report.findings, output_format)
    if output_format in ("concise", "full"):
        notes = "".join(f"note: {n}\n" for n in report.notes)
        text = f"{report.format_table()}\n\n{notes}{text}"
    write_output(text, output_file)
    sys.exit(0 if exit_zero else exit_code(report.findings))


def run_audit(target, input_specs, dtype, device, train, enabled, options, config=None):
    import torch

    from .api import audit_with
    from .locate import target_function
    from .targets import build_inputs, load_target, parse_input_spec, to_device_dtype

    specs = [parse_input_spec(s) for s in input_specs]
    model, inputs = load_target(target)
    if specs:
        inputs = build_inputs(specs)
    if inputs is None:
        raise NormlintError(f"{target} returned a model without example inputs; give --input SPEC")
    model, inputs = to_device_dtype(model, inputs, getattr(torch, dtype) if dtype else None, device)
    model.train(train)
    try:
        return audit_with(model, inputs, enabled=enabled, options=options, config=config,
                          origin=target_function(target))
    except AuditError as exc:
        raise NormlintError(str(exc)) from exc
