"""The HTML report at scale: a synthetic evaluation of 1,000 images, its report's file size and how fast it opens
in headless Chromium.

The images, masks and instance labels are the built-in synthetic nuclei (``unetseg.data.synthetic``, 256 x 256 by
default); each prediction is its truth's foreground dilated by 0-2 pixels (which merges touching nuclei), with one
nucleus dropped and one false blob added on a third of the images each, so that the error maps and the merged and
split counts have something to show. The script scores them with ``evaluate_folders`` (pixels and objects), writes
the report with ``write_html_report`` (no run directory: the evaluation alone), then opens it ``--loads`` times in
Debian's Chromium (``/usr/bin/chromium``, through playwright), each time in a new tab, and reads the page's own
clock (milliseconds from the start of the navigation): the load event, the first contentful paint, the per-image
table in the page (``table-rendered``) and after the next frame (``table-painted``); then the time of one click
on a column header (re-sorting the 1,000 rows) and of going to the last image's pictures (as its link in the table
does) until they are shown.

    python bench/report_scale.py                     # 1,000 images of 256 x 256, 5 loads
    python bench/report_scale.py --images 100 --loads 2 --workdir /tmp/report_scale_small
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from common import machine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from unetseg.data.io import read_image, write_png  # noqa: E402
from unetseg.data.synthetic import write_synthetic_dataset  # noqa: E402
from unetseg.engine.evaluate import evaluate_folders  # noqa: E402
from unetseg.engine.report import folder_images, write_html_report  # noqa: E402

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
TIMINGS = """() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const mark = name => (performance.getEntriesByName(name)[0] || {}).startTime ?? null;
  const fcp = performance.getEntriesByName("first-contentful-paint")[0];
  return {load: nav.loadEventEnd, dom: nav.domContentLoadedEventEnd, fcp: fcp ? fcp.startTime : null,
          rendered: mark("table-rendered"), painted: mark("table-painted"),
          rows: document.querySelectorAll("#per-image-table tbody tr").length};
}"""
LAST = """() => {  // go to the pictures of the last image of the gallery (the best one), as its link does
  const last = JSON.parse(document.getElementById("report-data").textContent).gallery.at(-1);
  location.hash = `#image-${last}`;
  return last;
}"""
SORT = """() => {
  const started = performance.now();
  document.querySelectorAll("#per-image-table thead button")[1].click();
  return performance.now() - started;
}"""


def predictions(data: Path, out: Path, seed: int = 0) -> None:
    """Imperfect predictions of the synthetic truth (see the module docstring) as 0/255 masks."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted((data / "labels").iterdir()):
        labels = read_image(path)
        foreground = labels > 0
        if rng.random() < 1 / 3 and labels.max() > 0:
            foreground &= labels != rng.integers(1, labels.max() + 1)  # a missed nucleus
        grow = int(rng.integers(0, 3))
        if grow:
            foreground = ndimage.binary_dilation(foreground, iterations=grow)
        if rng.random() < 1 / 3:
            y, x = rng.integers(10, labels.shape[0] - 10), rng.integers(10, labels.shape[1] - 10)
            yy, xx = np.ogrid[: labels.shape[0], : labels.shape[1]]
            foreground |= (yy - y) ** 2 + (xx - x) ** 2 <= 36  # a false blob
        write_png(out / path.name, np.where(foreground, 255, 0).astype(np.uint8))


def open_times(report: Path, loads: int) -> list[dict[str, float]]:
    """The page's timings of ``loads`` loads of ``report`` in new tabs of one headless Chromium."""
    from playwright.sync_api import sync_playwright

    results = []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        for _ in range(loads):
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(report.resolve().as_uri(), wait_until="load")
            page.wait_for_function("() => performance.getEntriesByName('table-painted').length > 0")
            timings = page.evaluate(TIMINGS)
            timings["sort"] = page.evaluate(SORT)
            started = time.perf_counter()
            last = page.evaluate(LAST)
            page.wait_for_function(f"() => [...document.querySelectorAll('#image-{last} img')]"
                                   ".every(i => i.complete && i.naturalWidth > 0)")
            timings["last_pictures"] = (time.perf_counter() - started) * 1000
            results.append(timings)
            page.close()
        browser.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--size", type=int, default=256, help="image side in pixels")
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/unetseg_report_scale"))
    args = parser.parse_args()
    data = args.workdir / "data"
    if not (data / "labels").is_dir() or len(list((data / "labels").iterdir())) != args.images:
        write_synthetic_dataset(data, args.images, args.size, args.size, seed=0, prefix="img")
        predictions(data, args.workdir / "pred")
    started = time.perf_counter()
    metrics = evaluate_folders(args.workdir / "pred", data, truth_instances=data / "labels")
    scored = time.perf_counter() - started
    started = time.perf_counter()
    report = write_html_report(args.workdir / "report.html", None, metrics,
                               folder_images(args.workdir / "pred", data, 2, truth_instances=data / "labels"))
    written = time.perf_counter() - started
    size = report.stat().st_size / 2**20
    loads = open_times(report, args.loads)
    print(f"machine: {machine()}; {args.images} images of {args.size}x{args.size}; scoring {scored:.1f} s; "
          f"writing the report {written:.1f} s; {size:.1f} MiB")
    print("\n| measure (ms from the start of the navigation) | median | min | max |\n|---|---|---|---|")
    for key, label in (("fcp", "first contentful paint"), ("rendered", "per-image table in the page"),
                       ("painted", "per-image table painted (next frame)"), ("dom", "DOMContentLoaded"),
                       ("load", "load event"), ("sort", "click on a column header: 1,000 rows re-sorted (ms)"),
                       ("last_pictures", "jump to the last image: its pictures shown (ms)")):
        values = [t[key] for t in loads if t[key] is not None]
        print(f"| {label} | {statistics.median(values):.0f} | {min(values):.0f} | {max(values):.0f} |")
    print(f"\nrows in the table: {loads[0]['rows']}")


if __name__ == "__main__":
    main()
