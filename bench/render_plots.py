"""Render the `plots:` of dvc.yaml offline in headless Chromium, one PNG per plot, and check them.

    python bench/render_plots.py [REV ...] [--out bench/out/plots] [--check-only]

With no revision it renders `dvc plots show --json` (the workspace); with revisions, `dvc plots
diff --json REV ...` (commits, tags or experiment names: the runs side by side). The Vega,
Vega-Lite and vega-embed bundles come from npm, pinned below and installed once under
bench/out/vega-js; no CDN, and the browser resolves no host name, so nothing is fetched.

The check fails on a plot DVC could not load, a drawn plot with no points or a single point (two
rows at the same x and y count once), a Vega or Vega-Lite warning, and a blank PNG. A definition
whose files hold a header and no rows is not drawn by DVC at all (the gate's deltas before a
baseline exists): it is listed as not drawn, which is not a failure. Without Chromium only the
data is checked, and the script says so.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "plots"
JS_DIR = ROOT / "bench" / "out" / "vega-js"
PACKAGES = {"vega": "5.33.1", "vega-lite": "5.23.0", "vega-embed": "6.29.0"}
BUNDLES = ["vega/build/vega.min.js", "vega-lite/build/vega-lite.min.js",
           "vega-embed/build/vega-embed.min.js"]  # fmt: skip
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--host-resolver-rules=MAP * ~NOTFOUND",  # no host resolves: offline for sure
                 "--virtual-time-budget=30000", "--dump-dom"]  # fmt: skip
SCALE = 2  # device pixels per CSS pixel in the PNG
MIN_INK = 0.005  # share of pixels off the background below which a PNG counts as blank
RESULT = re.compile(r'<pre id="result">(.*?)</pre>', re.S)

PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8">{scripts}</head><body><div id="plot"></div>
<script id="spec" type="application/json">{spec}</script>
<script>
const messages = [];
const keep = (level) => (...args) => {{ messages.push(level + ": " + args.join(" ")); }};
console.warn = keep("warning");  // where Vega-Lite's compiler and the Vega view log
console.error = keep("error");
function report(result) {{
  const pre = document.createElement("pre");
  pre.id = "result";
  pre.textContent = JSON.stringify({{...result, messages}});
  document.body.appendChild(pre);
}}
function base64(bytes) {{
  let text = "";
  for (let i = 0; i < bytes.length; i += 32768) {{
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + 32768));
  }}
  return btoa(text);
}}
const spec = JSON.parse(document.getElementById("spec").textContent);
vegaEmbed("#plot", spec, {{renderer: "canvas", actions: false}})
  .then((embedded) => embedded.view.toCanvas({scale}))
  .then((canvas) => {{
    const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
    report({{width: canvas.width, height: canvas.height, rgba: base64(pixels.data)}});
  }})
  .catch((error) => report({{error: String(error)}}));
</script></body></html>
"""


@dataclass
class Plot:
    """One drawn plot of the `dvc plots` output: its Vega-Lite spec and the check's findings."""

    name: str
    spec: dict
    points: int
    problems: list[str] = field(default_factory=list)


def dvc_plots(repo: Path, revisions: list[str]) -> dict:
    """`dvc plots show --json`, or `dvc plots diff --json REV ...` when revisions are given."""
    command = ["plots", "diff", *revisions] if revisions else ["plots", "show"]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        ["dvc", *command, "--json"], cwd=repo, env=env, capture_output=True, text=True
    )
    if result.returncode:
        raise SystemExit(f"dvc {' '.join(command)} --json failed:\n{result.stderr}")
    return json.loads(result.stdout)


def axis_fields(dvc_yaml: Path) -> dict[str, tuple[list[str], list[str]]]:
    """Each top-level plot's x and y field names, by title, from the `plots:` of `dvc_yaml`."""
    fields = {}
    for entry in yaml.safe_load(dvc_yaml.read_text()).get("plots", []):
        for title, definition in entry.items():
            definition = definition or {}
            fields[title] = (_names(definition.get("x")), _names(definition.get("y")))
    return fields


def _names(axis: str | dict | None) -> list[str]:
    """Field names of an x or y definition: `field`, `{file: field}` or `{file: [fields]}`."""
    if axis is None:
        return []
    if isinstance(axis, str):
        return [axis]
    names = []
    for value in axis.values():
        names.extend([value] if isinstance(value, str) else value)
    return names


def position(row: dict, names: list[str], inferred: str) -> object:
    """A row's value on one axis: its first named field, else DVC's inferred (merged) field;
    None when the cell is missing or empty (an empty CSV cell)."""
    for name in [*names, inferred]:
        if name in row:
            return None if row[name] in (None, "") else row[name]
    return None


def distinct_points(spec: dict, x: list[str], y: list[str]) -> int:
    """How many distinct (x, y) positions the rows a spec carries take."""
    rows = spec.get("data", {}).get("values", [])
    positions = {
        (position(row, x, "dvc_inferred_x_value"), position(row, y, "dvc_inferred_y_value"))
        for row in rows
    }
    return len({p for p in positions if None not in p})


def check_data(output: dict, fields: dict[str, tuple[list[str], list[str]]]) -> list[Plot]:
    """The drawn plots of a `dvc plots --json` output, each with its data problems."""
    errors: dict[str, list[str]] = {}
    for error in output.get("errors", []):
        errors.setdefault(error.get("name", ""), []).append(
            f"DVC could not load it at {error.get('rev')}: {error.get('msg')}"
        )
    plots = []
    for name, renderers in output.get("data", {}).items():
        x, y = fields.get(name, ([], []))
        for renderer in renderers:
            if renderer.get("type") != "vega":
                continue
            spec = renderer.get("content") or {}
            plot = Plot(name, spec, distinct_points(spec, x, y), list(errors.pop(name, [])))
            if plot.points == 0:
                plot.problems.append("empty: no rows with both an x and a y value")
            elif plot.points == 1:
                plot.problems.append("a single point: nothing to compare or read a trend from")
            plots.append(plot)
    plots.extend(Plot(name, {}, 0, problems) for name, problems in errors.items())
    return plots


def not_drawn(output: dict) -> list[str]:
    """Definitions DVC drew nothing for without an error: their files hold no rows."""
    failed = {error.get("name") for error in output.get("errors", [])}
    return [name for name, r in output.get("data", {}).items() if not r and name not in failed]


def browser() -> str | None:
    """The headless-capable browser on PATH, if any."""
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def vega_bundles(js_dir: Path) -> list[Path]:
    """The pinned Vega, Vega-Lite and vega-embed bundles, installed from npm when missing."""
    bundles = [js_dir / "node_modules" / name for name in BUNDLES]
    if all(path.is_file() for path in bundles):
        return bundles
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit(f"npm is needed once to install {PACKAGES} into {js_dir}")
    js_dir.mkdir(parents=True, exist_ok=True)
    pinned = [f"{name}@{version}" for name, version in PACKAGES.items()]
    subprocess.run(
        [npm, "install", "--prefix", str(js_dir), "--no-audit", "--no-fund", "--ignore-scripts",
         *pinned],
        check=True,
    )  # fmt: skip
    return bundles


def page(spec: dict, bundles: list[Path]) -> str:
    """A self-contained HTML page that draws `spec` and reports its pixels in the DOM."""
    scripts = "".join(f"<script>{path.read_text()}</script>" for path in bundles)
    payload = json.dumps(spec).replace("</", "<\\/")
    return PAGE.format(scripts=scripts, spec=payload, scale=SCALE)


def render(spec: dict, bundles: list[Path], executable: str) -> dict:
    """Draw one spec in a fresh headless browser: width, height, rgba bytes and its messages."""
    with tempfile.TemporaryDirectory(prefix="avgate-plot-") as scratch:
        html_path = Path(scratch) / "plot.html"
        html_path.write_text(page(spec, bundles))
        profile = f"--user-data-dir={Path(scratch) / 'profile'}"
        result = subprocess.run(
            [executable, *BROWSER_FLAGS, profile, html_path.as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
        )
    found = RESULT.search(result.stdout)
    if not found:
        return {"error": f"no result from the browser: {result.stderr.strip()[-500:]}"}
    drawn = json.loads(html.unescape(found.group(1)))
    if "rgba" in drawn:
        drawn["rgba"] = base64.b64decode(drawn["rgba"])
    return drawn


def ink(rgba: bytes) -> float:
    """Share of pixels whose colour differs from the most common one (the background)."""
    pixels = np.frombuffer(rgba, dtype=np.uint32)
    if not len(pixels):
        return 0.0
    return 1 - np.unique(pixels, return_counts=True)[1].max() / len(pixels)


def chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data and CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width: int, height: int, rgba: bytes) -> bytes:
    """An 8-bit RGBA PNG of the pixels (filter type 0 on every row)."""
    stride = width * 4
    rows = b"".join(b"\0" + rgba[r * stride : (r + 1) * stride] for r in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"".join(
        [b"\x89PNG\r\n\x1a\n", chunk(b"IHDR", header), chunk(b"IDAT", zlib.compress(rows, 6)),
         chunk(b"IEND", b"")]
    )  # fmt: skip


def file_name(name: str, taken: set[str]) -> str:
    """A short file name for a plot title, unique among `taken`."""
    stem = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60] or "plot"
    candidate, n = stem, 1
    while candidate in taken:
        n += 1
        candidate = f"{stem}-{n}"
    taken.add(candidate)
    return f"{candidate}.png"


def draw(plot: Plot, bundles: list[Path], executable: str, out: Path, taken: set[str]) -> str:
    """Render one plot to a PNG under `out`, adding render problems; the PNG's line."""
    drawn = render(plot.spec, bundles, executable)
    plot.problems.extend(drawn.get("messages", []))
    if "error" in drawn:
        plot.problems.append(f"not rendered: {drawn['error']}")
        return "no PNG"
    share = ink(drawn["rgba"])
    if share < MIN_INK:
        plot.problems.append(f"blank PNG: {share:.2%} of pixels off the background")
    path = out / file_name(plot.name, taken)
    path.write_bytes(png(drawn["width"], drawn["height"], drawn["rgba"]))
    return f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} ({share:.0%} ink)"


def report(plots: list[Plot], output: dict, draw_one: Callable[[Plot], str] | None) -> int:
    """Print each plot's verdict (drawing it with `draw_one` when given); the failures."""
    for plot in plots:
        line = draw_one(plot) if plot.spec and draw_one else ""
        print(f"{'FAIL' if plot.problems else 'ok':<5}{plot.name} [{plot.points} points] {line}")
        for problem in plot.problems:
            print(f"     - {problem}")
    for name in not_drawn(output):
        print(f"skip {name}: its files hold no rows, so DVC draws nothing")
    failed = sum(bool(plot.problems) for plot in plots)
    print(f"{len(plots)} plots, {failed} failed")
    return failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revisions", nargs="*", help="revisions for `dvc plots diff`")
    parser.add_argument("--repo", type=Path, default=ROOT, help="the DVC project (this one)")
    parser.add_argument("--out", type=Path, default=OUT, help="folder for the PNGs")
    parser.add_argument("--js-dir", type=Path, default=JS_DIR, help="npm prefix of the bundles")
    parser.add_argument("--check-only", action="store_true", help="check the data, draw nothing")
    args = parser.parse_args()
    output = dvc_plots(args.repo, args.revisions)
    plots = check_data(output, axis_fields(args.repo / "dvc.yaml"))
    executable = None if args.check_only else browser()
    draw_one = None
    if executable:
        args.out.mkdir(parents=True, exist_ok=True)
        bundles = vega_bundles(args.js_dir)
        draw_one = partial(draw, bundles=bundles, executable=executable, out=args.out, taken=set())
    elif not args.check_only:
        print(f"no {' / '.join(BROWSERS)} on PATH: data checked, nothing rendered "
              "(Debian: apt-get install chromium)")  # fmt: skip
    return 1 if report(plots, output, draw_one) else 0


if __name__ == "__main__":
    sys.exit(main())
