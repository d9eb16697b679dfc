"""The HTML report of the demo run opened in headless Chromium (Debian's ``/usr/bin/chromium``, driven by
playwright): it shows something, its table has a row per image and re-sorts when a column header is clicked, its
filter keeps the rows it should, its pictures load when scrolled to, and no request leaves the file."""

from __future__ import annotations

import io
import os
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from PIL import Image

from unetseg.engine import demo

DEMO_CONFIG = demo.demo_config

CHROMIUM = Path(os.environ.get("UNETSEG_CHROMIUM", "/usr/bin/chromium"))
#: Chromium's flags for a headless run as root without network chatter (playwright adds --headless and a fresh
#: temporary profile)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
#: the schemes a request of the page may have: the file itself, inlined data, nothing else
LOCAL_SCHEMES = {"file", "data", "blob", "about"}

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
if not CHROMIUM.is_file():
    pytest.skip(f"no Chromium at {CHROMIUM} (make test installs Debian's chromium package where it can; set "
                "UNETSEG_CHROMIUM to another Chromium)", allow_module_level=True)


def small_demo_config(workdir: Path, epochs: int = 1):
    """The demo's configuration with a smaller network and epoch, so that the whole demo takes seconds."""
    config = DEMO_CONFIG(workdir, epochs)
    config.model.base_channels, config.model.depth = 4, 2
    tc = config.train
    tc.samples_per_epoch, tc.patch_size, tc.batch_size, tc.tune_prediction = 8, 48, 4, False
    return config


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory):
    """A short run of the demo (data, training, prediction, evaluation, report): its result."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(demo, "demo_config", small_demo_config)
        return demo.run_demo(tmp_path_factory.mktemp("demo") / "w", epochs=1, n_train=6, n_test=3, progress=False)


@pytest.fixture(scope="module")
def page(demo_run):
    """The demo's report open in Chromium, with every request the page made recorded in ``page.requests``."""
    with playwright.sync_playwright() as driver:
        try:
            browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        except playwright.Error as err:
            pytest.skip(f"Chromium at {CHROMIUM} does not start: {str(err).splitlines()[0]}")
        tab = browser.new_page(viewport={"width": 1280, "height": 900})
        tab.requests = []
        tab.on("request", lambda request: tab.requests.append(request.url))
        tab.on("websocket", lambda socket: tab.requests.append(socket.url))
        tab.goto(demo_run.report_file.resolve().as_uri())
        tab.wait_for_selector("#per-image-table tbody tr")
        yield tab
        browser.close()


def names(page) -> list[str]:
    return page.locator("#per-image-table tbody th").all_inner_texts()


def test_the_page_shows_something(page):
    shot = np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB"))
    assert shot.shape == (900, 1280, 3)
    colours = np.unique(shot.reshape(-1, 3), axis=0)
    assert len(colours) > 20 and shot.std() > 10  # text, tables and curves, not a blank page


def test_one_row_per_image_and_clicking_a_header_sorts(page, demo_run):
    dice = {name: m["foreground_dice"] for name, m in demo_run.report["per_image"].items()}
    assert sorted(names(page)) == sorted(dice)
    page.locator("#per-image-table thead button", has_text="Dice (fg)").click()
    assert names(page) == sorted(dice, key=lambda n: (dice[n], n))
    page.locator("#per-image-table thead button", has_text="Dice (fg)").click()
    assert names(page) == sorted(dice, key=lambda n: (-dice[n], n))
    page.locator("#per-image-table thead button", has_text="image").click()
    assert names(page) == sorted(dice)


def test_filter_keeps_the_matching_rows(page, demo_run):
    dice = {name: m["foreground_dice"] for name, m in demo_run.report["per_image"].items()}
    threshold = sorted(dice.values())[1]  # between the worst and the rest
    page.locator('input[aria-label="filter Dice (fg)"]').fill(f">={threshold}")
    assert sorted(names(page)) == sorted(n for n, v in dice.items() if v >= threshold)
    page.locator('input[aria-label="filter Dice (fg)"]').fill("")
    assert len(names(page)) == len(dice)


def test_pictures_load_and_nothing_leaves_the_file(page, demo_run):
    page.locator("#per-image-table tbody a").first.click()  # a name links to its pictures
    assert page.evaluate("() => location.hash").startswith("#image-")
    page.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#gallery img')].every(i => i.complete && i.naturalWidth)")
    assert page.locator("#gallery img").count() == 4 * len(demo_run.report["per_image"])
    schemes = {urlparse(url).scheme for url in page.requests}
    assert page.requests and schemes <= LOCAL_SCHEMES, page.requests
