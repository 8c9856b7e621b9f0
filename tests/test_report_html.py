"""The HTML report (--report-html) in a real browser: headless Chromium from Debian's packages renders
the report of a conversion with a multi-node rewrite; its DOM has every section, its screenshot shows
the rewrite pictures and the parity histograms, and the page asks for nothing over the network."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, run_cli

MULTI_NODE = ROOT / "golden" / "rules" / "top_k_int64" / "saved_model"  # TopKV2 -> Cast, TopKV2, Cast
REFUSED = ROOT / "golden" / "rules" / "conv_pool_refused" / "saved_model"


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium, installed on first use (the suite runs as root, like CI)."""
    found = shutil.which("chromium")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.fail("the HTML report test needs Debian's chromium: apt-get install -y chromium (as root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, capture_output=True, timeout=900)
    subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], check=True, env=env, capture_output=True,
                   timeout=1800)
    found = shutil.which("chromium")
    assert found, "apt-get installed chromium, but it is not on PATH"
    return found


def _browse(chromium: str, page: Path, tmp: Path, *action: str) -> subprocess.CompletedProcess[str]:
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
             "--hide-scrollbars",
             # Chromium's own services (updates, accounts) must not leave the machine either: no name
             # resolves and every request goes to a closed loopback port.
             "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9"]
    return subprocess.run([chromium, *flags, *action, page.as_uri()], capture_output=True, text=True, timeout=120)


def _no_requests_possible(text: str) -> None:
    """The page forbids every request (CSP) and names no resource outside itself."""
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)"', text)
    assert csp and "default-src 'none'" in csp.group(1)
    assert not re.search(r"https?://", text)
    assert not re.search(r"<(script|link|img|iframe|object|embed)\b", text)
    assert set(re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', text)) <= set()  # no src/href at all
    assert set(re.findall(r"url\(([^)]*)\)", text)) <= {"#arrow"}  # only the SVG's own marker


def test_html_report_in_chromium(chromium: str, tmp_path: Path) -> None:
    page, report_json = tmp_path / "report.html", tmp_path / "report.json"
    result = run_cli(MULTI_NODE, tmp_path / "out", "--to", "2.3", "--report-html", page, "--report", report_json)
    assert result.code == 0, result.stderr
    text = page.read_text("utf-8")
    _no_requests_possible(text)

    dom = _browse(chromium, page, tmp_path, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    for section in ("summary", "rewrites", "parity", "refusals", "notes"):
        assert f'<section id="{section}">' in dom.stdout, section
    rewrites = dom.stdout.split('<section id="rewrites">')[1].split("</section>")[0]
    # The rule's pictures: before (TopKV2 alone) and after (Cast -> TopKV2 -> Cast), both drawn.
    assert rewrites.count("<figcaption>before</figcaption>") == 2 and rewrites.count("<svg") >= 4
    assert "top-k-v2-int64" in rewrites and ">Cast<" in rewrites and ">TopKV2<" in rewrites
    parity = dom.stdout.split('<section id="parity">')[1].split("</section>")[0]
    outputs = json.loads(report_json.read_text())["parity"]["outputs"]
    assert parity.count("<tr>") == 1 + len(outputs) == 7
    assert parity.count('aria-label="errors against the bound"') == 3  # one histogram per float output

    shot = tmp_path / "report.png"
    taken = _browse(chromium, page, tmp_path, "--window-size=1300,2600", f"--screenshot={shot}")
    assert taken.returncode == 0 and shot.is_file(), taken.stderr[-2000:]
    from PIL import Image

    from rewriter.report.html import AFTER_FILL, BEFORE_FILL

    pixels = Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 20) or []
    count = {colour: n for n, colour in pixels}

    def rgb(hex_colour: str) -> tuple[int, int, int]:
        return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]

    # The rewrite pictures were painted (a filled node is ~148x36 pixels; the legend's swatch 10x10),
    assert count.get(rgb(BEFORE_FILL), 0) > 4000 and count.get(rgb(AFTER_FILL), 0) > 3 * 4000
    # and the parity histograms' bars (elements equal bit for bit: green).
    assert count.get(rgb("#137333"), 0) > 3 * 300


def test_html_report_of_a_refusal(chromium: str, tmp_path: Path) -> None:
    page = tmp_path / "refused.html"
    result = run_cli(REFUSED, tmp_path / "out", "--to", "2.3", "--report-html", page)
    assert result.code == 1
    assert not (tmp_path / "out").exists()
    dom = _browse(chromium, page, tmp_path, "--dump-dom")
    refusals = dom.stdout.split('<section id="refusals">')[1].split("</section>")[0]
    assert refusals.count("<li>") == 5  # every refusal, each with its rule's guidance
    assert "Re-export" in refusals or "re-export" in refusals
    assert "Parity was not run" in dom.stdout


def test_error_histogram_bins_errors_by_their_bound() -> None:
    import numpy as np

    from rewriter.report.error_distribution import RATIO_EDGES, error_histogram

    expected = np.array([1.0, 1.0, 1.0, 2.0, -3.0])
    # bound = 1e-6 + 1e-5 * |expected|: 1.1e-5 for 1.0
    actual = np.array([1.0, 1.0 + 5e-7, 1.0 + 1e-4, 2.0 + 1e-9, -3.0 - 1.0])
    hist = error_histogram(expected, actual, rtol=1e-5, atol=1e-6)
    assert hist["equal"] == 1 and hist["edges"] == RATIO_EDGES
    counts = dict(zip([*RATIO_EDGES, "inf"], hist["counts"]))
    assert counts[1e-4] == 1  # 1e-9 / 2.1e-5: far inside
    assert counts[1e-1] == 1  # 5e-7 / 1.1e-5 = 0.045
    assert counts[10.0] == 1  # 1e-4 / 1.1e-5 = 9.1: out of tolerance
    assert counts["inf"] == 1  # 1 / 3.1e-5
    assert sum(hist["counts"]) + hist["equal"] == expected.size
