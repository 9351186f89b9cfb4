"""``normlint audit --output-format html``: the page's content, and that it loads nothing."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from click.testing import CliRunner

from normlint.cli import cli

from .runtime_fixtures import FIXTURES

pytest.importorskip("matplotlib")
pytest.importorskip("markdown_it")
pytestmark = pytest.mark.filterwarnings("ignore")

NL303 = f"{FIXTURES}/nl303_residual_rebound_to_normalized.py:bad"
# Elements that make a browser fetch something (or run code) when the page opens (svg <use>
# may stay: its href must point inside the page, which assert_self_contained checks).
LOADING = {"script", "link", "img", "iframe", "object", "embed", "base", "audio", "video",
           "source", "track", "image", "frame", "applet", "input", "form"}


class Page(HTMLParser):
    """The tags (with attributes, and the svg/section they are in) and texts of a page."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict, str | None, bool]] = []
        self.text: list[str] = []
        self.styles: list[str] = []
        self._stack: list[str] = []
        self._section: list[str | None] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self._section.append(attrs.get("id"))
        section = self._section[-1] if self._section else None
        self.tags.append((tag, attrs, section, "svg" in self._stack))
        if tag not in ("meta", "br", "hr", "path", "use", "rect", "circle", "line"):
            self._stack.append(tag)

    def handle_endtag(self, tag):
        if tag in self._stack:
            while self._stack and self._stack.pop() != tag:
                pass
        if tag == "section" and self._section:
            self._section.pop()

    def handle_data(self, data):
        if self._stack and self._stack[-1] == "style":
            self.styles.append(data)
        self.text.append(data)

    def all(self, tag):
        return [attrs for t, attrs, _, _ in self.tags if t == tag]

    @property
    def ids(self):
        return {attrs["id"] for _, attrs, _, _ in self.tags if "id" in attrs}


def render(*args, tmp_path):
    out = tmp_path / "report.html"
    result = CliRunner().invoke(cli, ["audit", *args, "-o", str(out)], catch_exceptions=False)
    return result, out.read_text(encoding="utf-8")


def assert_self_contained(page: Page, text: str):
    assert {t for t, *_ in page.tags} & LOADING == set()
    assert not any("src" in attrs or "srcset" in attrs or "data" in attrs for _, attrs, _, _ in page.tags)
    for tag, attrs, section, in_svg in page.tags:
        for name in ("href", "xlink:href"):
            href = attrs.get(name)
            if href is None:
                continue
            if href.startswith("#"):
                assert href[1:] in page.ids, href
            else:  # a hyperlink to a paper in a rule page's references: navigation, not a fetch
                assert tag == "a" and not in_svg and section and section.startswith("rule-"), href
                assert re.match(r"https?://", href) and attrs.get("rel") == "noreferrer"
    css = "".join(page.styles)
    assert "url(" not in css and "@import" not in css
    csp = [m for m in page.all("meta") if m.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0]["content"]
    assert "<!DOCTYPE svg" not in text and "<?xml" not in text


def test_html_report_content(tmp_path):
    result, text = render(NL303, tmp_path=tmp_path)  # -o report.html picks the format
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    page = Page(text)
    assert_self_contained(page, text)
    words = " ".join(page.text)
    assert "normlint audit: Stack" in words and "1 error" in words
    # the header
    for value in ("eval", "int64[2,12]", "cpu", "float32"):
        assert value in words
    # the norms table: one row per norm, with the measured RMS columns
    rows = [r.replace("<wbr>", "") for r in text.split("<tr") if "<td>" in r]
    for module in ("blocks.0.norm1", "blocks.0.norm2", "blocks.1.norm1", "blocks.1.norm2", "final_norm"):
        assert any(f">{module}</td>" in r for r in rows), module
    assert "input RMS" in words and "median var / eps" in words
    # findings link to their rule page's text, included in the page
    links = {a["href"] for a in page.all("a") if a.get("href", "").startswith("#rule-")}
    assert links == {"#rule-NL303"}   # one finding per root cause: no NL308 beside it
    assert "NL303: residual-rebound-to-normalized" in words and "Why is this bad?" in words
    # two plots, inline SVG with text drawn as paths (no font needed)
    assert text.count("<svg") == 2
    assert "Depth profile" in words and "Variance vs eps" in words
    svgs = re.findall(r"<svg.*?</svg>", text, re.S)
    assert all("<text" not in svg and "font-family" not in svg for svg in svgs)


def test_html_report_of_a_directory(tmp_path):
    pytest.importorskip("transformers")
    from . import hf_dirs

    directory = hf_dirs.save_gpt2(tmp_path / "gpt2", tiny_embeddings=True)
    result, text = render(str(directory), "--output-format", "html", tmp_path=tmp_path)
    assert result.exit_code == 0, result.output   # tiny activations are NL406 info
    page = Page(text)
    assert_self_contained(page, text)
    words = " ".join(page.text)
    assert "GPT2LMHeadModel" in words and "config.json + model.safetensors" in words
    assert "#rule-NL406" in {a.get("href") for a in page.all("a")}
    assert "transformer.h" in words  # the main stack the depth profile follows
    assert "(2 blocks;" in words


def test_html_report_on_meta_has_no_plots(tmp_path):
    result, text = render(NL303, "--device", "meta", tmp_path=tmp_path)
    assert result.exit_code == 1
    assert "<svg" not in text and "nothing to plot" in text
    assert_self_contained(Page(text), text)


def test_profile_measures_the_stream_and_the_norms():
    import torch

    import normlint
    from normlint.runtime.profile import measure_profile
    from normlint.runtime.targets import load_target, TargetOptions
    from normlint.runtime.user_code import user_session

    with user_session() as session:
        loaded = load_target(NL303, TargetOptions(), session)
    model, inputs = loaded.model.eval(), loaded.inputs
    report = normlint.audit(model, inputs)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    profile = measure_profile(model, inputs, report)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert profile.stack == "blocks" and profile.layers == 2
    assert [x for x, _ in profile.stream] == [0.0, 1.0, 2.0]
    assert all(rms > 0 for _, rms in profile.stream)
    xs = {n.module: n.x for n in profile.norms}
    assert 0 < xs["blocks.0.norm1"] < xs["blocks.0.norm2"] < 1 < xs["blocks.1.norm1"] < 2 < xs["final_norm"]
    for norm in profile.norms:
        assert norm.statistic == "variance" and norm.eps == 1e-5
        assert list(norm.quantiles) == sorted(norm.quantiles) and norm.quantiles[0] > 0


def test_a_model_without_a_stack_is_profiled_norm_by_norm(tmp_path):
    result, text = render(f"{FIXTURES}/nl201_batchnorm_over_sequence_axis.py:bad", tmp_path=tmp_path)
    assert result.exit_code == 1
    assert "No stack of blocks holds these norms" in text and text.count("<svg") == 2
    assert_self_contained(Page(text), text)


PIPELINE = '''\
import torch, torch.nn as nn

def make():
    layers, channels = [], 3
    for width in (8, 16):
        layers += [nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                   nn.MaxPool2d(2)]
        channels = width
    model = nn.Sequential(nn.Sequential(*layers), nn.Flatten(), nn.Linear(16 * 4 * 4, 10))
    return model.eval(), torch.randn(4, 3, 16, 16)
'''


def test_a_pipeline_of_layers_is_not_a_stack_of_blocks(tmp_path):
    """A Sequential of bare layers (VGG: conv, BatchNorm, ReLU, pool) has no blocks and no
    residual stream; the page must not plot its layer outputs as one."""
    factory = tmp_path / "vgg.py"
    factory.write_text(PIPELINE)
    result, text = render(f"{factory}:make", tmp_path=tmp_path)
    assert result.exit_code == 0, result.output
    assert "No stack of blocks holds these norms" in text
    assert "residual stream&#x27;s RMS after each block" not in text
    assert "residual stream's RMS after each block" not in text


def test_wide_tables_scroll_inside_the_page_and_long_names_wrap(tmp_path):
    """A 24-layer model's module names and site-packages paths are wider than a screen:
    each table scrolls on its own and its cells may wrap, so no column leaves the page."""
    result, text = render(NL303, tmp_path=tmp_path)
    assert text.count("<table") == text.count('<div class="wide"><table') == 2
    css = "".join(Page(text).styles).replace(" ", "")
    assert ".wide{overflow-x:auto" in css
    assert ">blocks.<wbr>1.<wbr>norm1</td>" in text                # breaks after the dots
    assert "nl303_residual_rebound_to_normalized.<wbr>py:" in text


def test_rows_below_eps_are_a_percentage(tmp_path):
    result, text = render(f"{FIXTURES}/nl406_eps_dominates_variance.py:bad", tmp_path=tmp_path)
    assert result.exit_code == 1, result.output
    assert "rows with var &lt; eps/10" in text
    assert re.search(r'<td class="num">100%</td>', text), text
