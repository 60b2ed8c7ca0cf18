"""The Dagster UI of a finished demo run, loaded in headless Chromium.

After the small synthetic demo run of ``conftest.py``, a ``dagster-webserver`` on 127.0.0.1 serves
the run's persistent instance with the run's settings. The tests assert on what the browser
renders: every asset group and its assets in the catalog, a materialized partition of
``risk_scores``, and the latest results of the bias release gate and the input audit checks. The
expected statuses come from the instance, because other tests in the session may run jobs again.
Screenshots go to the browser artifacts folder (``tests/browser.py``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from tests.browser import REPOSITORY, save_screenshot

pytestmark = pytest.mark.e2e

WEBSERVER = Path(sys.executable).parent / "dagster-webserver"
READY_TIMEOUT_SECONDS = 120
# The UI loads its data with GraphQL after the page itself, and a code location may still be loading.
PAGE_TIMEOUT_SECONDS = 90
LOCATION_QUERY = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"

# Each group's catalog page: the asset selection typed into the catalog's search box, and assets
# that it must list. The warehouse group contains 36 dbt models and the catalog renders only the
# rows in view, so its selection keeps the staging models.
GROUP_PAGES = {
    "raw": ("group:raw", ("raw_crime_incidents", "raw_weather_observations")),
    "warehouse": ("group:warehouse and key:stg_*", ("stg_crimes__incidents",)),
    "audit": ("group:audit", ("data_input_audit_report",)),
    "features": ("group:features", ("cell_hour_features",)),
    "models": ("group:models", ("risk_ensemble", "release_candidate")),
    "scoring": ("group:scoring", ("risk_scores",)),
    "evaluation": ("group:evaluation", ("evaluation_metrics", "model_metrics_report")),
    "bias": ("group:bias", ("bias_audit_report", "police_deployment_report")),
}
# current_ensemble is left out: the demo's release gate blocks it, so its status is Failed.
PARTITIONED_ASSETS = {"cell_hour_features", "risk_ensemble", "risk_scores"}
# Asset names the lineage graph must draw in full in its first view.
MIN_DRAWN_NODES = 10
# Assets whose checks tab is opened, with the checks it must show.
CHECKED_ASSETS = {
    "release_candidate": ("bias_disparity_gate",),
    "stg_crimes__incidents": ("crime_incidents_input_audit", "crime_completeness"),
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def graphql(url: str, query: str) -> dict:
    request = urllib.request.Request(f"{url}/graphql", data=json.dumps({"query": query}).encode("utf-8"),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def wait_for_webserver(url: str, process: subprocess.Popen, log: Path) -> None:
    """Poll until the webserver responds and its code location is loaded, for at most 120 s."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    status = "no response from /server_info"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dagster-webserver exited with {process.returncode} before it was ready. Its output, "
                               f"also in {log}:\n"
                               f"{log.read_text(encoding='utf-8')[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=5):
                pass
            entries = graphql(url, LOCATION_QUERY)["data"]["workspaceOrError"]["locationEntries"]
            status = ", ".join(f"{entry['name']}: {entry['loadStatus']}" for entry in entries)
            if entries and all(entry["loadStatus"] == "LOADED" for entry in entries):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError, KeyError, TypeError):
            pass
        time.sleep(1)
    raise TimeoutError(f"dagster-webserver at {url} timed out: not ready after {READY_TIMEOUT_SECONDS} s "
                       f"(last status: {status}). Its output is in {log}")


@pytest.fixture(scope="module")
def webserver(browser, small_demo_run) -> Iterator[str]:
    """Serve the demo run's instance with ``dagster-webserver`` on a free port, and stop it afterwards.

    ``browser`` comes first, so a machine without Chromium skips before the demo run and the server.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    environment = {
        **os.environ,
        "RISKCAST_HOME": str(small_demo_run.home),
        "RISKCAST_CONFIG": str(small_demo_run.run_file),
        "DAGSTER_HOME": str(small_demo_run.dagster_home),
        # The code server imports orchestration from this checkout, not from another install.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")])),
    }
    log = small_demo_run.folder / "webserver.log"

    with log.open("w", encoding="utf-8") as output:
        # A new session makes the webserver and its code server one process group to stop together.
        process = subprocess.Popen([str(WEBSERVER), "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"],
                                   cwd=REPOSITORY, env=environment, stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            wait_for_webserver(url, process, log)
            print(f"dagster-webserver at {url}, log {log}")
            yield url
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)


def wait_for_text(driver, texts: list[str], timeout: float = PAGE_TIMEOUT_SECONDS) -> str:
    """Wait until the page's visible text contains every string of ``texts``, and return that text."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    def page_text(current) -> str | bool:
        text = current.find_element("tag name", "body").text
        return text if all(expected in text for expected in texts) else False

    try:
        return WebDriverWait(driver, timeout).until(page_text)
    except TimeoutException:
        body = driver.find_element("tag name", "body").text
        missing = [expected for expected in texts if expected not in body]
        raise AssertionError(f"{driver.current_url} shows no {missing!r} after {timeout} s. "
                             f"The page text starts with: {body[:1500]!r}") from None


def wait_for_lines(driver, condition, timeout: float = PAGE_TIMEOUT_SECONDS) -> set[str]:
    """Wait until ``condition`` is true for the set of lines of the page's visible text, and return the set."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    def page_lines(current) -> set[str] | bool:
        lines = set(current.find_element("tag name", "body").text.splitlines())
        return lines if condition(lines) else False

    try:
        return WebDriverWait(driver, timeout).until(page_lines)
    except TimeoutException:
        body = driver.find_element("tag name", "body").text
        raise AssertionError(f"{driver.current_url} did not render the expected lines after {timeout} s. "
                             f"Its text starts with: {body[:1500]!r}") from None


def wait_for_asset_row(driver, name: str, expected: list[str]) -> list[str]:
    """Wait until the catalog row of asset ``name`` has every line of ``expected``, and return its lines.

    The catalog fills in each row's status after the row appears, so the row first reads
    ``Loading...`` or dashes.
    """
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, PAGE_TIMEOUT_SECONDS)
    locator = ("xpath", f"//a[.//*[normalize-space(text())='{name}']]")
    link = wait.until(expected_conditions.visibility_of_element_located(locator))
    row = link.find_element("xpath", "ancestor::div[contains(@class, 'VirtualizedTable_row')]")

    def row_lines(_) -> list[str] | bool:
        lines = row.text.splitlines()
        return lines if all(line in lines for line in expected) else False

    try:
        return wait.until(row_lines)
    except TimeoutException:
        raise AssertionError(f"the catalog row of {name} shows no {expected!r} after {PAGE_TIMEOUT_SECONDS} s: "
                             f"{row.text!r}") from None


def drawn_nodes(names: set[str], lines: set[str]) -> set[str]:
    """Return the asset names that some line shows, whole or shortened with an ellipsis in the middle."""
    matched = set(names.intersection(lines))
    for line in lines:
        head, ellipsis, tail = line.partition("\u2026")
        if ellipsis and head:
            matched.update(name for name in names if name.startswith(head) and name.endswith(tail)
                         and len(name) > len(head) + len(tail))
    return matched


def test_asset_graph_shows_every_group(browser, webserver: str) -> None:
    nodes = graphql(webserver, "{ assetNodes { assetKey { path } groupName } }")["data"]["assetNodes"]
    names = {"/".join(node["assetKey"]["path"]) for node in nodes}
    assert {node["groupName"] for node in nodes} == set(GROUP_PAGES)
    expanded = ",".join(f"global@global:{group}" for group in GROUP_PAGES)
    browser.get(f"{webserver}/asset-groups?expanded={expanded}")

    # The sidebar lists the groups collapsed, so asset names on the page are nodes of the graph.
    # The graph draws only the nodes in view, and shortens long names with an ellipsis, so some
    # names, whole or shortened, are enough.
    text = wait_for_text(browser, ["Global asset lineage", *GROUP_PAGES])
    drawn = wait_for_lines(browser, lambda lines: len(drawn_nodes(names, lines)) >= MIN_DRAWN_NODES)
    save_screenshot(browser, "asset_graph")

    lines = set(text.splitlines())
    for group in GROUP_PAGES:
        assert group in lines, f"group {group} is not listed beside the asset graph"
    assert len(drawn_nodes(names, drawn)) >= MIN_DRAWN_NODES


@pytest.mark.parametrize("group", list(GROUP_PAGES))
def test_catalog_lists_group_assets(browser, webserver: str, small_demo_run, group: str) -> None:
    selection, assets = GROUP_PAGES[group]
    browser.get(f"{webserver}/assets?asset-selection={urllib.parse.quote(selection)}")

    rows = {}
    for name in assets:
        # A partitioned asset's row counts its materialized partitions, and another's shows Materialized.
        if name in PARTITIONED_ASSETS:
            materialized = small_demo_run.instance.get_materialized_partitions(dg.AssetKey(name))
            assert materialized, f"the demo run materialized no partition of {name}"
            status = f"{len(materialized):,}"
        else:
            status = "Materialized"
        rows[name] = wait_for_asset_row(browser, name, [group, status])
    save_screenshot(browser, f"catalog_{group}")

    for name in PARTITIONED_ASSETS.intersection(rows):
        assert rows[name][-1].endswith(" partitions"), rows[name]


def test_risk_scores_partition_is_materialized(browser, webserver: str, small_demo_run) -> None:
    materialized = sorted(small_demo_run.instance.get_materialized_partitions(dg.AssetKey("risk_scores")))
    assert materialized, "the demo run materialized no risk_scores partition"
    key = materialized[0]
    browser.get(f"{webserver}/assets/risk_scores?view=partitions&partition={urllib.parse.quote(key)}")

    text = wait_for_text(browser, [f"Materialized ({len(materialized)})", "Latest materialization", "score_job"])
    save_screenshot(browser, "risk_scores_partitions")

    # The detail panel names the selected partition, then its status.
    assert f"{key}\nMaterialized\nLatest materialization" in text


@pytest.mark.parametrize("asset", list(CHECKED_ASSETS))
def test_checks_tab_shows_results(browser, webserver: str, small_demo_run, asset: str) -> None:
    checks = [dg.AssetCheckKey(dg.AssetKey(asset), name) for name in CHECKED_ASSETS[asset]]
    records = small_demo_run.instance.event_log_storage.get_latest_asset_check_execution_by_key(checks)
    statuses = {key.name: "Succeeded" if record.status.value == "SUCCEEDED" else "Failed"
                for key, record in records.items() if record.status.value in ("SUCCEEDED", "FAILED")}
    assert set(statuses) == set(CHECKED_ASSETS[asset]), f"the demo run has no result of some checks: {records}"
    browser.get(f"{webserver}/assets/{asset}?view=checks")

    # The list on the left gives every check's name with its latest result on the next line.
    wait_for_text(browser, [f"{name}\n{status}" for name, status in statuses.items()])
    save_screenshot(browser, f"checks_{asset}")

