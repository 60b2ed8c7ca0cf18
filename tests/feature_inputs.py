"""Small hand-made inputs for the hourly feature builder, shared by the feature and model tests."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl

from ml.feature_registry import FeatureLayout
from ml.features import FeatureInputs, build_cell_hour_features

LAYOUT = FeatureLayout(targets=("violent",), groups=("other", "property", "violent"),
                       categories=("other", "property", "violent"), request_types=(),
                       data_start=date(2020, 1, 1))

COUNT_SCHEMA = {"cell_id": pl.String, "hour": pl.Datetime("us", "UTC"), "crime_group": pl.String,
                "incidents": pl.Int64}
NEIGHBOUR_SCHEMA = {"cell_id": pl.String, "neighbour_id": pl.String}


def crime_counts(rows: list[tuple[str, datetime, str, int]]) -> pl.DataFrame:
    """Sparse (cell, hour, crime group, incidents) rows."""
    return pl.DataFrame(rows, schema=COUNT_SCHEMA, orient="row")


def violent_counts(rows: list[tuple[str, datetime]]) -> pl.DataFrame:
    """One violent incident per (cell, hour) row."""
    return crime_counts([(cell, hour, "violent", 1) for cell, hour in rows])


def cells_frame(cells: list[str], population: list[float | None] | None = None) -> pl.DataFrame:
    return pl.DataFrame({"cell_id": cells, "area_km2": [1.0] * len(cells),
                         "population": population or [1000.0] * len(cells)},
                        schema={"cell_id": pl.String, "area_km2": pl.Float64, "population": pl.Float64})


def features(cells: list[str], counts: pl.DataFrame, start: datetime, end: datetime,
             time_zone: str = "America/Chicago", weather: pl.DataFrame | None = None,
             requests: pl.DataFrame | None = None, neighbours: list[tuple[str, str]] | None = None,
             layout: FeatureLayout = LAYOUT, country: str = "US", subdivision: str | None = None,
             population: list[float | None] | None = None) -> pl.DataFrame:
    """Build the feature panel of ``[start, end)`` for hand-made inputs."""
    inputs = FeatureInputs(
        cells=cells_frame(cells, population),
        neighbours=pl.DataFrame(neighbours or [], schema=NEIGHBOUR_SCHEMA, orient="row"),
        crime_counts=counts,
        weather=weather,
        requests=requests,
    )
    return build_cell_hour_features(inputs, layout, start, end, time_zone, country, subdivision)
