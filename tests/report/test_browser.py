"""The HTML report in a real browser: headless Chromium (Debian's `chromium`) driven by Playwright.

Checks that the page renders without console errors, every image loads, every row of the grid table is
there and every link resolves; saves a screenshot (copied to $MER_FASTAI_ARTIFACTS when it is set).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import unquote

import pytest

from mer_fastai.report.html.page import write_report
from tests.inference.test_predict import tiny_run  # noqa: F401  (session fixture: one tiny training)
from tests.report.test_html import make_grid, run_copy  # noqa: F401  (module fixture: the tiny run with predictions)

BROWSERS = ("chromium", "chromium-browser")


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium page factory; skipped with the reason when Playwright or a browser is missing."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    executable = next((shutil.which(name) for name in BROWSERS if shutil.which(name)), None)
    if executable is None:
        pytest.skip("no Chromium found on PATH (apt-get install chromium); the report browser test needs one")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def open_report(browser, path: Path, *, javascript: bool = True):
    """The loaded page and the console errors and failed requests it produced."""
    context = browser.new_context(java_script_enabled=javascript, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("requestfailed", lambda request: errors.append(f"failed: {request.url}"))
    page.goto(path.resolve().as_uri())
    page.wait_for_load_state("load")
    return page, errors


def check_page(page, report: Path) -> None:
    """Every image decoded, every #anchor names an element, every relative link is a file on disk."""
    images = page.eval_on_selector_all("img", "els => els.map(e => [e.alt, e.complete && e.naturalWidth > 0])")
    assert images and all(ok for _, ok in images), [alt for alt, ok in images if not ok]
    links = page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
    for link in links:
        if link.startswith("#"):
            assert page.query_selector(f"[id='{link[1:]}']") is not None, link
        else:
            assert (report.parent / unquote(link)).resolve().is_file(), link


def save_screenshot(page, tmp_path: Path, name: str) -> Path:
    shot = page.screenshot(path=str(tmp_path / name), full_page=True)
    assert shot
    artifacts = os.environ.get("MER_FASTAI_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / name, Path(artifacts) / name)
    return tmp_path / name


def test_grid_report_in_chromium(browser, run_copy, tmp_path):  # noqa: F811
    grid = make_grid([run_copy, run_copy], tmp_path / "grid", extra_columns=True)
    report = write_report(grid)
    page, errors = open_report(browser, report)
    assert errors == []
    rows = page.eval_on_selector_all("#results-table tbody tr", "rows => rows.length")
    assert rows == 2
    assert page.query_selector_all("section.run") and len(page.query_selector_all("section.run")) == 2
    check_page(page, report)
    page.click("#results-table thead th:nth-child(1)")  # sorting: the progressive extra works
    assert page.get_attribute("#results-table thead th:nth-child(1)", "aria-sort") == "ascending"
    assert errors == []
    save_screenshot(page, tmp_path, "grid-report.png")


def test_run_report_in_chromium_without_javascript(browser, run_copy, tmp_path):  # noqa: F811
    report = write_report(run_copy, tmp_path / "run-report.html")
    page, errors = open_report(browser, report, javascript=False)
    assert errors == []
    check_page(page, report)
    assert page.query_selector("text=Worst mistakes") is not None
    save_screenshot(page, tmp_path, "run-report.png")
