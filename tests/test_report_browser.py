"""The report in a real browser: Debian's headless Chromium (installed by `make test`) lays it
out at a desktop and at a phone's width; a probe script in a copy of the page measures what a
reader would see and hands it to the parent page, whose DOM Chromium prints."""

import json
import re
import shutil
import subprocess

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=10000", "--window-size=1400,1000", "--dump-dom"]
PROBE = """<script>window.addEventListener('load', () => {
  const images = [...document.images];
  const seen = b => b.width > 50 && b.height > 50;
  parent.postMessage(JSON.stringify({
    width: innerWidth, scrollWidth: document.documentElement.scrollWidth,
    images: images.length,
    decoded: images.filter(i => i.complete && i.naturalWidth > 0).length,
    visible: images.filter(i => seen(i.getBoundingClientRect())).length,
    viewport: !!document.querySelector('meta[name=viewport]'),
    chosen: [...document.querySelectorAll('tr.chosen')].map(
      row => [row.textContent, getComputedStyle(row.cells[0]).backgroundColor,
              getComputedStyle(row.cells[0]).fontWeight]),
  }), '*');
});</script>"""
FRAME = """<!DOCTYPE html><html><body style='margin:0'><pre id='metrics'></pre>
<script>addEventListener('message', e => {{
  document.getElementById('metrics').textContent = e.data; }});</script>
<iframe src='probed.html' style='width:{width}px;height:900px;border:0'></iframe>
</body></html>"""


def _layout(folder, width):
    """What the probe measured with the report `width` CSS pixels wide (an iframe of that
    width: headless Chromium will not make its window narrower than 500 px)."""
    (folder / "frame.html").write_text(FRAME.format(width=width))
    page = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={folder / 'profile'}",
                           (folder / "frame.html").as_uri()],
                          capture_output=True, text=True, timeout=120)
    found = re.search(r"<pre id=\"metrics\">([^<]+)</pre>", page.stdout)
    assert found, f"the probe reported nothing: {page.stderr[-2000:]}"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


@pytest.mark.parametrize("width", [1280, 390])
def test_the_report_reads_in_a_browser_at_desktop_and_phone_widths(digits_study, tmp_path,
                                                                   width):
    assert CHROMIUM, "the browser test needs Debian's chromium: `make test` installs it"
    out, _ = digits_study
    page = (out / "report.html").read_text()
    (tmp_path / "probed.html").write_text(page.replace("</body>", PROBE + "</body>"))
    seen = _layout(tmp_path, width)
    assert seen["width"] == width
    assert seen["viewport"]
    assert seen["scrollWidth"] <= width  # nothing sticks out sideways
    assert seen["images"] >= 4  # range test, comparisons, schedules, curves
    assert seen["decoded"] == seen["images"] == seen["visible"]
    assert seen["chosen"], "no chosen run highlighted"
    for text, background, weight in seen["chosen"]:
        assert "(chosen)" in text
        assert background not in ("rgba(0, 0, 0, 0)", "transparent")
        assert int(weight) >= 600
