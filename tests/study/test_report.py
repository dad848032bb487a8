"""The study report: one self-contained HTML page, rendered in a real headless Chromium."""

import re
import shutil
import subprocess

import pytest

from study.cli import main

QUICK = ["--epochs", "2", "--batch-size", "256", "--lr", "0.1", "--update-period", "5", "--device", "cpu",
         "--jaccard-every", "2"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("results") / "demo"
    runs = [[*QUICK, "--criterion", c, "--density", d, "--seed", s]
            for c in ("magnitude", "snip") for d in ("0.05", "0.2") for s in ("0", "1")]
    runs += [[*QUICK, "--static", "--density", d, "--seed", s] for d in ("0.05", "0.2") for s in ("0", "1")]
    runs += [[*QUICK, "--density", "1.0", "--seed", s] for s in ("0", "1")]
    for args in runs:
        assert main(["train", *args, "--results", str(root)]) == 0
    return root


@pytest.fixture(scope="module")
def report(demo, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    assert main(["report", str(demo), "--out", str(out)]) == 0
    return out


def test_plot_and_report_read_several_studies_as_one(demo, tmp_path):
    """A new criterion's study beside a committed one: its cells line up, a shared trial counts once."""
    mine = tmp_path / "mine"
    for d in ("0.05", "0.2"):
        for s in ("0", "1"):
            assert main(["train", *QUICK, "--criterion", "random", "--density", d, "--seed", s, "--results", str(mine)]) == 0
    assert main(["train", *QUICK, "--criterion", "magnitude", "--density", "0.05", "--seed", "0",  # also in demo
                 "--results", str(mine)]) == 0
    assert main(["plot", str(demo), str(mine), "--kind", "density", "--out", str(tmp_path / "d.png")]) == 0
    assert main(["report", str(demo), str(mine), "--out", str(tmp_path / "report")]) == 0
    page = (tmp_path / "report" / "index.html").read_text()
    assert "Studies demo + mine" in page and "Spec of" not in page  # studies of train --results have no spec
    assert "<td>dst</td><td>12</td>" in page  # 8 + 4 + the shared one once
    table = page[page.index("<table", page.index("Comparison")):page.index("</table>", page.index("Comparison"))]
    assert all(f"<td>{c}</td>" in table for c in ("magnitude", "random", "snip"))


def test_report_holds_counts_tables_and_every_figure_inline(report):
    page = (report / "index.html").read_text()
    assert sorted(p.name for p in report.glob("*.png")) == ["curves.png", "density.png", "jaccard.png"]
    assert page.count("<img") == 3 and page.count("src='data:image/png;base64,") == 3  # no file needed
    assert "http://" not in page and "https://" not in page  # nothing to fetch
    assert "<td>dst</td><td>8</td>" in page and "<td>static</td><td>4</td>" in page and "<td>dense</td><td>2</td>" in page
    assert "paired t-test on the seed-wise differences, two-sided, Holm-corrected" in page and "★" in page
    assert "power: its tests detect a difference of " in page
    assert page.count("<tr class=\"ref\"><td>static</td>") == 2  # a reference row in both metrics' tables


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("no Chromium here: install Debian's chromium package (as .ci/run does) to render the report")


# Injected by the test into a copy of the page: after load, count the images that really decoded.
_PROBE = """<script>window.addEventListener('load', () => {
  const images = [...document.images], loaded = images.filter(i => i.complete && i.naturalWidth > 0);
  const p = document.createElement('pre'); p.id = 'probe';
  p.textContent = `images ${images.length} loaded ${loaded.length} tables ${document.querySelectorAll('table').length}`;
  document.body.appendChild(p); });</script>"""


def test_report_renders_in_a_headless_browser(report, tmp_path):
    browser = _chromium()
    page = tmp_path / "probed.html"
    page.write_text((report / "index.html").read_text().replace("</body>", _PROBE + "</body>"))
    out = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                          "--virtual-time-budget=10000", page.as_uri()], capture_output=True, text=True,
                         timeout=120)
    found = re.search(r"images (\d+) loaded (\d+) tables (\d+)", out.stdout)
    assert found, out.stderr[-2000:]
    images, loaded, tables = map(int, found.groups())
    assert images == loaded == 3 and tables == 3  # the counts, and a comparison table per metric
    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1200,1600",
                    f"--screenshot={shot}", (report / "index.html").as_uri()], capture_output=True, timeout=120)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
