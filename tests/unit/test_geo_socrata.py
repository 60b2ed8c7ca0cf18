"""The live boundary source against a local Socrata-style GeoJSON server on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestration.definitions import build_definitions
from orchestration.ingest import ExtractError
from orchestration.jurisdiction import BoundaryLayerConfig
from orchestration.socrata import SocrataDataset, SocrataError
from orchestration.sources.boundaries import LocalBoundarySource, SocrataBoundarySource, pull_feature_collection
from tests.extracts import write_run_file
from tests.geo_fixtures import feature, rectangle, write_collection
from tests.geo_server import GeoJsonState, ScriptedResponse, geojson_server

DATASET = "74p9-q2aq"
# The features carry numbers as text, as SODA responses do.
FEATURES = [feature({"geoid10": f"170310{index:03d}00", "namelsad10": f"Census Tract {index}", "pop_total": str(100 * index)},
                    rectangle(-87.70 + 0.01 * index, -87.69 + 0.01 * index, 41.85, 41.86))
            for index in range(1, 6)]
TOKEN_ENV = "SOCRATA_APP_TOKEN"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, GeoJsonState]]:
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", TOKEN_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    with geojson_server({DATASET: FEATURES}) as running:
        yield running


def dataset(base_url: str, **overrides: object) -> SocrataDataset:
    settings = {"page_size": 2, "timeout_seconds": 5.0, "max_retries": 2, "backoff_seconds": 1.0}
    settings.update(overrides)
    return SocrataDataset(base_url=base_url, dataset_id=DATASET, **settings)


def layer(**api: object) -> BoundaryLayerConfig:
    return BoundaryLayerConfig(name="tracts", kind="census_tract", file="boundaries/tracts.geojson",
                               id_property="geoid10", name_property="namelsad10",
                               api={"base_url": "https://data.cityofchicago.org", "dataset_id": DATASET,
                                    "page_size": 2, **api})


def fail_on_sleep(seconds: float) -> None:
    raise AssertionError(f"unexpected retry wait of {seconds} s")


def collection_body(features: list[dict]) -> bytes:
    return json.dumps({"type": "FeatureCollection", "features": features}).encode()


def test_pages_in_id_order(server: tuple[str, GeoJsonState]) -> None:
    base_url, state = server

    collection, requests = pull_feature_collection(dataset(base_url), sleep=fail_on_sleep)

    assert collection["features"] == FEATURES
    assert len(requests) == 3
    assert [query["$offset"] for query in state.queries] == ["0", "2", "4"]
    assert {query["$limit"] for query in state.queries} == {"2"}
    assert {query["$order"] for query in state.queries} == {":id"}
    assert all(path.startswith(f"/resource/{DATASET}.geojson?") for path in state.paths)


def test_server_error_then_success(server: tuple[str, GeoJsonState]) -> None:
    base_url, state = server
    state.scripted = [ScriptedResponse(500, b'{"error": true, "message": "internal error"}')]
    waits: list[float] = []

    collection, requests = pull_feature_collection(dataset(base_url), sleep=waits.append)

    assert collection["features"] == FEATURES
    assert waits == [1.0]
    assert len(requests) == 4
    assert requests[0] == requests[1]


def test_truncated_body_is_retried(server: tuple[str, GeoJsonState]) -> None:
    base_url, state = server
    state.scripted = [ScriptedResponse(200, collection_body(FEATURES[:2]), truncate=True)]
    waits: list[float] = []

    collection, requests = pull_feature_collection(dataset(base_url), sleep=waits.append)

    assert collection["features"] == FEATURES
    assert waits == [1.0]
    assert len(requests) == 4


def test_error_after_last_retry(server: tuple[str, GeoJsonState]) -> None:
    base_url, state = server
    state.scripted = [ScriptedResponse(503, b"busy") for _ in range(3)]
    waits: list[float] = []

    with pytest.raises(SocrataError) as caught:
        pull_feature_collection(dataset(base_url), sleep=waits.append)

    message = str(caught.value)
    assert f"dataset {DATASET} at {base_url}" in message
    assert "failed after 3 attempts, last with HTTP 503" in message
    assert waits == [1.0, 2.0]
    assert len(state.paths) == 3


def test_complete_but_invalid_body(server: tuple[str, GeoJsonState]) -> None:
    base_url, state = server
    state.scripted = [ScriptedResponse(200, b'{"type": "FeatureCollection", "features": [')]

    with pytest.raises(ExtractError, match=f"{DATASET}.geojson.* is not valid GeoJSON"):
        pull_feature_collection(dataset(base_url), sleep=fail_on_sleep)


def test_changed_response_shape(server: tuple[str, GeoJsonState]) -> None:
    base_url, state = server
    state.scripted = [ScriptedResponse(200, b'[{"geoid10": "17031000100"}]')]

    with pytest.raises(ExtractError, match="must hold a GeoJSON FeatureCollection, found 'list'"):
        pull_feature_collection(dataset(base_url), sleep=fail_on_sleep)


def test_server_ignoring_offset(server: tuple[str, GeoJsonState]) -> None:
    base_url, state = server
    state.ignore_offset = True

    with pytest.raises(SocrataError, match="repeated the features of the page before"):
        pull_feature_collection(dataset(base_url), sleep=fail_on_sleep)


def test_unknown_dataset(server: tuple[str, GeoJsonState]) -> None:
    base_url, _ = server

    with pytest.raises(SocrataError, match="rejected with HTTP 404: dataset not found. Check base_url and dataset_id"):
        pull_feature_collection(SocrataDataset(base_url=base_url, dataset_id="none-such", max_retries=0),
                                sleep=fail_on_sleep)


def test_source_reads_layer_with_overrides(server: tuple[str, GeoJsonState], tmp_path: Path) -> None:
    base_url, _ = server
    source = SocrataBoundarySource(folder=str(tmp_path), base_url_override=base_url, backoff_seconds=0.0)

    table = source.read_layer(layer(population_property="pop_total"))

    assert table.frame["feature_id"].to_list() == [f"170310{index:03d}00" for index in range(1, 6)]
    assert table.frame["population"].to_list() == ["100", "200", "300", "400", "500"]
    assert table.frame["name"][0] == "Census Tract 1"
    assert table.frame["source_file"].unique().to_list() == [f"socrata:{DATASET}"]
    assert table.source == f"socrata:{DATASET}"
    assert len(table.requests) == 3


def test_source_reads_layer_without_api_from_folder(tmp_path: Path) -> None:
    write_collection(tmp_path / "boundaries" / "tracts.geojson", FEATURES[:1])
    source = SocrataBoundarySource(folder=str(tmp_path), base_url_override="http://127.0.0.1:9")

    table = source.read_layer(layer().model_copy(update={"api": None}))

    assert table.frame["feature_id"].to_list() == ["17031000100"]
    assert table.requests == []


def test_definitions_choose_source_from_run_file(tmp_path: Path) -> None:
    windows = (("2017-01-01", "2017-02-01"), ("2017-02-01", "2017-02-02"))
    live = build_definitions(write_run_file(tmp_path, "chicago", tmp_path, *windows, source="socrata",
                                            boundaries_source="socrata"), tmp_path)
    crimes_only = build_definitions(write_run_file(tmp_path, "chicago", tmp_path, *windows, source="socrata"),
                                   tmp_path)
    local = build_definitions(write_run_file(tmp_path, "chicago", tmp_path, *windows), tmp_path)

    assert isinstance(live.resources["boundary_source"], SocrataBoundarySource)
    assert isinstance(crimes_only.resources["boundary_source"], LocalBoundarySource)
    assert isinstance(local.resources["boundary_source"], LocalBoundarySource)
    assert live.resources["boundary_source"].folder == str(tmp_path)
