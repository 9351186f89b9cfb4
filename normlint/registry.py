"""The rule catalog: metadata only. Detection lives in the engines.

Every code in RULES.md is registered here so that selection, documentation and
reporters know a rule before any engine implements it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .findings import Severity

STATIC = "static"
RUNTIME = "runtime"


@dataclass(frozen=True)
class Option:
    name: str
    type: type
    default: Any
    help: str


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    severity: Severity
    engines: tuple[str, ...]
    summary: str
    fix_hint: str
    default_on: bool = True
    options: tuple[Option, ...] = field(default=())
    fixable: bool = False

    def option(self, name: str) -> Option:
        for opt in self.options:
            if opt.name == name:
                return opt
        raise KeyError(f"{self.code} has no option {name!r}")


E, W, I = Severity.ERROR, Severity.WARNING, Severity.INFO
S, R, SR = (STATIC,), (RUNTIME,), (STATIC, RUNTIME)

RULES: tuple[Rule, ...] = (
    Rule("NL101", "batchnorm-in-sequence-model", W, SR,
         "BatchNorm in a model that processes token or time sequences",
         "use nn.LayerNorm or RMSNorm over the feature axis",
         options=(
             Option("sequence-markers", list, [],
                    "extra forward() parameter names that mark a sequence model"),
             Option("allow-batchnorm-in", list, [],
                    "class names whose BatchNorm is a deliberate choice"),
         )),
    Rule("NL102", "normalization-statistics-include-padding", W, R,
         "Norm statistics change when only the amount of padding changes",
         "normalize over the feature axis only, or mask padding out of the statistics"),
    Rule("NL103", "batch-dependent-normalization", W, R,
         "A sample's normalized output depends on the other samples in its batch",
         "use a per-sample norm (LayerNorm/RMSNorm) or eval-mode running statistics"),
    Rule("NL201", "batchnorm-over-sequence-axis", E, SR,
         "BatchNorm1d applied to an (N, L, C) activation normalizes over L, not C",
         "transpose to (N, C, L) first: bn(x.transpose(1, 2)).transpose(1, 2)"),
    Rule("NL202", "norm-over-sequence-axis", W, SR,
         "A norm reduces over the sequence/time axis",
         "normalize the feature axis only: nn.LayerNorm(d_model)"),
    Rule("NL203", "norm-over-batch-axis", E, SR,
         "A hand-written norm reduces over the batch axis",
         "reduce over the feature axis (dim=-1), not dim 0"),
    Rule("NL204", "layernorm-on-channels-first", W, SR,
         "nn.LayerNorm(C) applied to a channels-first conv output normalizes the last spatial axis",
         "permute to channels-last around the LayerNorm, or use a channels-first LayerNorm2d"),
    Rule("NL301", "post-norm-deep-stack", W, SR,
         "A deep stack of post-norm residual blocks without a stabilizer",
         "switch to pre-norm (norm_first=True) with a final norm, or use DeepNorm residual scaling",
         options=(Option("post-norm-max-depth", int, 12,
                         "deepest post-norm stack allowed without a stabilizer"),)),
    Rule("NL302", "pre-norm-stack-missing-final-norm", W, SR,
         "A pre-norm stack reaches its output without a final norm",
         "apply a final norm after the last block (nn.TransformerEncoder(..., norm=nn.LayerNorm(d)))",
         fixable=True),
    Rule("NL303", "residual-rebound-to-normalized", E, SR,
         "A pre-norm block rebinds the residual variable to the norm output before the residual add",
         "keep the residual: x = x + f(self.norm(x))",
         fixable=True),
    Rule("NL304", "norm-instance-reused", W, SR,
         "One norm module is called at several sites of the same forward",
         "give each sublayer its own norm (norm1, norm2)",
         fixable=True),
    Rule("NL305", "module-instance-aliased", E, SR,
         "One module instance is repeated in a container ([m] * n)",
         "build a fresh module per layer: nn.ModuleList([Block() for _ in range(n)])",
         fixable=True),
    Rule("NL306", "unused-norm", W, SR,
         "A registered norm is never called",
         "call the norm in forward() or remove it"),
    Rule("NL307", "consecutive-norms", W, SR,
         "A norm is applied directly to another norm's output",
         "drop the redundant norm"),
    Rule("NL308", "mixed-norm-placement", W, SR,
         "One block mixes pre-norm and post-norm sublayers",
         "use one placement for every sublayer of the block"),
    Rule("NL309", "residual-sublayer-without-norm", W, SR,
         "A residual sublayer reads the raw stream while the block's other sublayers are pre-norm",
         "normalize the sublayer's input like the others: x = x + f(norm(x))"),
    Rule("NL401", "eps-vanishes-in-half-precision", W, SR,
         "A norm eps that rounds to zero in float16",
         "use eps >= 1e-6 (1e-5 is the PyTorch default) or compute the statistics in float32",
         fixable=True),
    Rule("NL402", "norm-statistics-in-low-precision", W, SR,
         "Norm statistics computed in the input dtype without a float32 upcast",
         "upcast before the reduction: x.float().pow(2).mean(-1, keepdim=True)",
         fixable=True),
    Rule("NL403", "nonstandard-layernorm-formula", W, SR,
         "A hand-written LayerNorm deviates from the standard formula",
         "use (x - mean) / sqrt(var(unbiased=False) + eps), or F.layer_norm",
         fixable=True),
    Rule("NL404", "norm-without-eps", W, S,
         "A hand-written norm divides by a standard deviation or norm with no eps",
         "add eps inside the square root or clamp the denominator",
         fixable=True),
    Rule("NL405", "non-finite-normalization-output", E, R,
         "A norm produced NaN/Inf from finite inputs",
         "raise eps or compute the statistics in float32"),
    Rule("NL406", "eps-dominates-variance", W, R,
         "For most rows the variance is below eps: the layer does not normalize",
         "lower eps or find why the activations collapsed"),
    Rule("NL407", "norm-gain-convention", W, R,
         "A norm's output RMS is about 0 or 2 where 1 is expected: its gain convention is swapped",
         "apply a (1 + w) gain as 1 + weight and a plain gain as weight, as they were initialised"),
    Rule("NL501", "weight-decay-on-norm-parameters", W, SR,
         "Weight decay is applied to normalization gains and biases",
         "put norm parameters (and biases) in a param group with weight_decay=0.0"),
    Rule("NL502", "norm-affine-disabled", I, S,
         "A norm without learnable scale and shift",
         "keep elementwise_affine=True/affine=True unless the model wants a non-parametric norm",
         default_on=False),
    Rule("NL503", "batchnorm-momentum-convention", W, SR,
         "BatchNorm momentum written in the TensorFlow/Keras convention (momentum >= 0.5)",
         "PyTorch's momentum weighs the new batch: use 1 - m (Keras' 0.99 is momentum=0.01)",
         fixable=True),
    Rule("NL504", "bias-before-batchnorm", I, SR,
         "A Linear/Conv bias feeding straight into BatchNorm is cancelled by the batch mean",
         "build the layer before the BatchNorm with bias=False",
         default_on=False),
    Rule("NL900", "syntax-error", E, S,
         "The file could not be read or parsed",
         "fix the syntax error or exclude the file"),
    Rule("NL901", "unused-suppression", W, S,
         "A noqa comment suppresses nothing",
         "remove the unused code from the noqa comment",
         fixable=True),
)

_BY_CODE = {rule.code: rule for rule in RULES}
_BY_NAME = {rule.name: rule for rule in RULES}


def get_rule(code_or_name: str) -> Rule:
    key = code_or_name.strip()
    rule = _BY_CODE.get(key.upper()) or _BY_NAME.get(key.lower())
    if rule is None:
        raise KeyError(code_or_name)
    return rule


def all_codes() -> tuple[str, ...]:
    return tuple(rule.code for rule in RULES)
