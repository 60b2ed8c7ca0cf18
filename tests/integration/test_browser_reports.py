"""The HTML reports of the demo run, opened from disk in headless Chromium.

Each report must render offline: no console error, no request for anything but the file itself,
every figure drawn with a non-zero size, and on report pages with maps every Leaflet map drawn
with its cell polygons. Chromium resolves no outside host (``tests/browser.py``), so a report
that links a CDN fails here both as a request and as a console error. A screenshot of each
whole page, up to 12,000 px high, goes to the browser artifacts folder.
"""

from __future__ import annotations

import pytest

from tests.browser import console_errors, save_screenshot

pytestmark = pytest.mark.e2e

PAGE_TIMEOUT_SECONDS = 30
# Every report of the main job, with the minimum number of figures (inline SVG or <img>) and of
# Leaflet maps that the small demo's report must show. The score metrics page is a table only.
REPORTS = {
    "data_input_audit": (10, 0),
    "model_metrics": (10, 0),
    "score_metrics": (0, 0),
    "bias_audit": (2, 10),
    "police_deployment": (0, 2),
}

# Sizes of the page's figures and maps as the browser laid them out. Figures are <img> elements
# and outermost <svg> elements outside the maps (Leaflet draws its polygons into an <svg> too).
MEASURE_PAGE = """
const figures = [];
for (const image of document.images) {
  const box = image.getBoundingClientRect();
  figures.push({kind: 'img', label: image.alt || image.src.slice(0, 80), natural: image.naturalWidth,
                width: box.width, height: box.height});
}
for (const svg of document.querySelectorAll('svg')) {
  if (svg.parentElement.closest('svg') || svg.closest('.leaflet-container')) continue;
  const box = svg.getBoundingClientRect();
  figures.push({kind: 'svg', label: svg.getAttribute('aria-label') || svg.id || 'svg', natural: null,
                width: box.width, height: box.height});
}
const maps = [...document.querySelectorAll('.leaflet-container')].map(map => ({
  id: map.id, polygons: map.querySelectorAll('path.leaflet-interactive').length,
  width: map.getBoundingClientRect().width, height: map.getBoundingClientRect().height}));
const requests = performance.getEntriesByType('resource').map(entry => entry.name);
return {figures: figures, maps: maps, requests: requests, folium: document.querySelectorAll('.folium-map').length};
"""


@pytest.fixture(scope="module")
def reports_folder(small_demo_run):
    return small_demo_run.home / "smalldemo" / "reports"


def test_report_set_is_complete(reports_folder) -> None:
    # A new report is added to REPORTS, so that it is opened in the browser as well.
    assert sorted(path.stem for path in reports_folder.glob("*.html")) == sorted(REPORTS)


def load_report(driver, path) -> dict:
    """Open ``path`` and return its measurements once the page and its maps have rendered."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    console_errors(driver)  # Drop the messages of the previous page.
    driver.get(path.as_uri())

    def rendered(current) -> dict | bool:
        if current.execute_script("return document.readyState") != "complete":
            return False
        page = current.execute_script(MEASURE_PAGE)
        # folium writes one .folium-map <div> per map, and Leaflet turns each into a .leaflet-container.
        if len(page["maps"]) < page["folium"] or any(item["polygons"] == 0 for item in page["maps"]):
            return False
        return page

    try:
        return WebDriverWait(driver, PAGE_TIMEOUT_SECONDS).until(rendered)
    except TimeoutException:
        page = driver.execute_script(MEASURE_PAGE)
        raise AssertionError(f"{path.name}: the maps did not render in {PAGE_TIMEOUT_SECONDS} s "
                             f"({page['folium']} folium maps, Leaflet maps {page['maps']}); "
                             f"console: {console_errors(driver)}") from None


@pytest.mark.parametrize("name", list(REPORTS))
def test_report_renders_offline(browser, reports_folder, name: str) -> None:
    min_figures, min_maps = REPORTS[name]
    path = reports_folder / f"{name}.html"
    assert path.is_file(), f"the demo run wrote no {path}"

    page = load_report(browser, path)
    errors = console_errors(browser)
    save_screenshot(browser, f"report_{name}", full_page=True)

    assert errors == []
    outside = [url for url in page["requests"] if not url.startswith(("file:", "data:", "blob:"))]
    assert outside == [], f"{name} requested resources from outside the file: {outside}"
    assert len(page["figures"]) >= min_figures, page["figures"]
    for figure in page["figures"]:
        assert figure["width"] > 0, f"{name}: figure drawn with no width: {figure}"
        assert figure["height"] > 0, f"{name}: figure drawn with no height: {figure}"
        if figure["kind"] == "img":
            assert figure["natural"] > 0, f"{name}: image did not load: {figure}"
    assert len(page["maps"]) >= min_maps, page["maps"]
    for item in page["maps"]:
        assert item["polygons"] > 0, f"{name}: map {item['id']} drew no cell polygons"
        assert item["width"] > 0, f"{name}: map {item['id']} has no width: {item}"
        assert item["height"] > 0, f"{name}: map {item['id']} has no height: {item}"
