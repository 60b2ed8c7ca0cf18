"""The live 311 source against a local Socrata portal on 127.0.0.1: paging, filters, faults, errors.

The portal serves two datasets: sanitation complaints in the layout of the Chicago portal's
historical dataset, whose API gives date-only values as midnight floating timestamps, and a
mixed-type dataset in the layout of the unified 311 dataset.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestration.ingest import ExtractError
from orchestration.jurisdiction import (
    ConfigError,
    JurisdictionConfig,
    ServiceRequestSourceConfig,
    load_jurisdiction,
    load_run_config,
)
from orchestration.socrata import SocrataError
from orchestration.sources.service_requests import SocrataServiceRequestSource, check_requests_source
from tests.extracts import write_run_file
from tests.request_extracts import (
    MIXED_API_COLUMNS,
    MIXED_DATASET,
    MIXED_ID,
    MIXED_ROWS,
    SANITATION_API_COLUMNS,
    SANITATION_DATASET,
    SANITATION_ID,
    SANITATION_ROWS,
    api_dataset,
    sanitation_api_row,
    write_request_jurisdiction,
)
from tests.requests_server import Fault, PortalServer, PortalState, running_portal

@pytest.fixture(scope="module")
def portal() -> Iterator[PortalServer]:
    with pytest.MonkeyPatch.context() as patch:
        # Keep requests to the local server off any configured proxy.
        for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "SOCRATA_APP_TOKEN"):
            patch.delenv(name, raising=False)
        patch.setenv("no_proxy", "127.0.0.1")
        with running_portal({}) as server:
            yield server


@pytest.fixture
def state(portal: PortalServer) -> PortalState:
    """Reset the portal to the fixture datasets with no queued faults."""
    portal.state.datasets = {SANITATION_ID: copy.deepcopy(SANITATION_ROWS), MIXED_ID: copy.deepcopy(MIXED_ROWS)}
    portal.state.faults.clear()
    portal.state.queries.clear()
    portal.state.paths.clear()
    return portal.state


@pytest.fixture(scope="module")
def jurisdiction(portal: PortalServer, tmp_path_factory: pytest.TempPathFactory) -> JurisdictionConfig:
    folder = tmp_path_factory.mktemp("requests_socrata")
    datasets = [api_dataset(SANITATION_DATASET, SANITATION_ID, SANITATION_API_COLUMNS, "http://127.0.0.1:9"),
                api_dataset(MIXED_DATASET, MIXED_ID, MIXED_API_COLUMNS, "http://127.0.0.1:9")]
    return load_jurisdiction(str(write_request_jurisdiction(folder, datasets)))


def source(portal: PortalServer, **settings: object) -> SocrataServiceRequestSource:
    options = {"max_retries": 2, "backoff_seconds": 0.0, "timeout_seconds": 5.0} | settings
    return SocrataServiceRequestSource(base_url_override=portal.base_url, **options)


def sanitation(jurisdiction: JurisdictionConfig) -> ServiceRequestSourceConfig:
    return jurisdiction.service_requests[0]


def test_pull_pages_through_dataset(state: PortalState, portal: PortalServer,
        jurisdiction: JurisdictionConfig) -> None:
    pull = source(portal).pull_dataset(sanitation(jurisdiction), None)

    assert sorted(pull.frame["id"]) == [f"23-0000000{number}" for number in range(1, 6)]
    assert [query["$offset"] for query in state.data_queries] == ["0", "2", "4"]
    assert {query["$limit"] for query in state.data_queries} == {"2"}
    assert all("$where" not in query for query in state.queries)
    assert len(pull.requests) == 4
    assert pull.watermark == "2024-06-03T12:00:00.000Z"
    assert pull.source == f"socrata:{SANITATION_ID}"


def test_pull_keeps_mapped_fields_only(state: PortalState, portal: PortalServer,
        jurisdiction: JurisdictionConfig) -> None:
    pull = source(portal).pull_dataset(sanitation(jurisdiction), None)
    row = pull.frame.filter(pull.frame["id"] == "23-00000001").row(0, named=True)

    assert row == {"dataset": "sanitation_code", "request_type": "sanitation_code", "id": "23-00000001",
                   "created_on": "2023-07-04T00:00:00.000", "closed_on": "2023-07-10T00:00:00.000",
                   "updated_on": None, "status": "Completed", "duplicate": None, "latitude": "41.879",
                   "longitude": "-87.658", "source_file": f"socrata:{SANITATION_ID}",
                   "source_row": row["source_row"]}


def test_incremental_pull_sends_where(state: PortalState, portal: PortalServer,
        jurisdiction: JurisdictionConfig) -> None:
    pull = source(portal).pull_dataset(sanitation(jurisdiction), "2024-06-02T00:00:00.000Z")

    assert sorted(pull.frame["id"]) == ["23-00000004", "23-00000005"]
    assert {query.get("$where") for query in state.queries} == {":updated_at >= '2024-06-02T00:00:00.000Z'"}


def test_429_then_success(state: PortalState, portal: PortalServer,
        jurisdiction: JurisdictionConfig) -> None:
    state.faults.append(Fault(status=429, body=b"slow down", headers={"Retry-After": "0"}))

    pull = source(portal).pull_dataset(sanitation(jurisdiction), None)

    assert pull.frame.height == 5
    assert len(state.queries) == 5
    assert state.queries[0] == state.queries[1]


def test_500_until_retry_limit_fails(state: PortalState, portal: PortalServer,
        jurisdiction: JurisdictionConfig) -> None:
    state.faults.extend(Fault(status=500, body=b"oops") for _ in range(3))

    with pytest.raises(SocrataError) as raised:
        source(portal, max_retries=2).pull_dataset(sanitation(jurisdiction), None)

    assert len(state.queries) == 3
    assert "3 attempts" in str(raised.value)
    assert "HTTP 500" in str(raised.value)
    assert SANITATION_ID in str(raised.value)


def test_slow_response_times_out_then_retries(state: PortalState, portal: PortalServer,
        jurisdiction: JurisdictionConfig) -> None:
    state.faults.append(Fault(delay_seconds=1.0))

    pull = source(portal, timeout_seconds=0.2).pull_dataset(sanitation(jurisdiction), None)

    assert pull.frame.height == 5
    assert len(state.queries) == 5
    assert state.queries[0] == state.queries[1]


def test_truncated_body_is_retried(state: PortalState, portal: PortalServer,
        jurisdiction: JurisdictionConfig) -> None:
    state.faults.append(Fault(truncate=True))

    pull = source(portal).pull_dataset(sanitation(jurisdiction), None)

    assert pull.frame.height == 5
    assert len(state.queries) == 5


def test_truncated_body_every_time_fails(state: PortalState, portal: PortalServer,
        jurisdiction: JurisdictionConfig) -> None:
    state.faults.extend(Fault(truncate=True) for _ in range(3))

    with pytest.raises(SocrataError) as raised:
        source(portal, max_retries=2).pull_dataset(sanitation(jurisdiction), None)

    assert "3 attempts" in str(raised.value)
    assert "IncompleteRead" in str(raised.value)


def test_changed_schema_fails(state: PortalState, portal: PortalServer,
        jurisdiction: JurisdictionConfig) -> None:
    renamed = copy.deepcopy(SANITATION_ROWS)
    for row in renamed[2:]:
        row["created_date"] = row.pop("creation_date")
    state.datasets[SANITATION_ID] = renamed

    with pytest.raises(ExtractError) as raised:
        source(portal).pull_dataset(sanitation(jurisdiction), None)

    message = str(raised.value)
    assert "created_on ('creation_date')" in message
    assert "'created_date'" in message
    assert "api.columns" in message
    assert f"socrata:{SANITATION_ID}" in message


def test_unparseable_api_date_fails(state: PortalState, portal: PortalServer,
        jurisdiction: JurisdictionConfig) -> None:
    state.datasets[SANITATION_ID][1]["creation_date"] = "07/04/2023"

    with pytest.raises(ExtractError) as raised:
        source(portal).pull_dataset(sanitation(jurisdiction), None)

    assert "'07/04/2023'" in str(raised.value)
    assert "'creation_date'" in str(raised.value)


def test_repeated_request_id_keeps_latest(state: PortalState, portal: PortalServer,
        jurisdiction: JurisdictionConfig) -> None:
    state.datasets[SANITATION_ID].append(
        sanitation_api_row("row-6", "2024-06-04T08:00:00.000Z", "23-00000002", "2023-07-04T00:00:00.000",
                           "Completed"))

    pull = source(portal).pull_dataset(sanitation(jurisdiction), None)
    statuses = dict(zip(pull.frame["id"], pull.frame["status"]))

    assert pull.rows_received == 6
    assert pull.rows_superseded == 1
    assert pull.frame.height == 5
    assert statuses["23-00000002"] == "Completed"


def test_mixed_dataset_labels_types(state: PortalState, portal: PortalServer,
        jurisdiction: JurisdictionConfig) -> None:
    pull = source(portal).pull_dataset(jurisdiction.service_requests[1], None)
    rows = {row["id"]: row for row in pull.frame.iter_rows(named=True)}

    assert rows["SR23-0001"]["request_type"] == "street_lights_out"
    assert rows["SR23-0002"]["request_type"] == "other_311"
    assert rows["SR23-0001"]["duplicate"] == "false"
    assert rows["SR23-0002"]["duplicate"] == "true"
    assert rows["SR23-0002"]["latitude"] is None
    assert {row["dataset"] for row in rows.values()} == {"other_311"}


def test_socrata_run_needs_api_blocks(tmp_path: Path) -> None:
    jurisdiction = load_jurisdiction(str(write_request_jurisdiction(tmp_path, [SANITATION_DATASET])))
    run = load_run_config(write_run_file(tmp_path, "chicago", tmp_path, ("2023-01-01", "2023-06-01"),
                                         ("2023-06-01", "2023-06-02"), source="socrata"))

    with pytest.raises(ConfigError) as raised:
        check_requests_source(run, jurisdiction)

    assert "['sanitation_code']" in str(raised.value)
    assert "api" in str(raised.value)
