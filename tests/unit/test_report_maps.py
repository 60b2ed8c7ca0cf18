"""Unit tests for the folium choropleth maps of the reports, on a 4 x 4 grid of square cells."""

from __future__ import annotations

import json
import re

import polars as pl
import pytest

from ml.reports.formatting import format_share
from ml.reports.maps import cell_geojson, choropleth, leaflet_assets
from orchestration.warehouse import open_connection
from tests.unit.report_grid import MARKUP_ID, grid_cells, square


def numeric_cells() -> pl.DataFrame:
    cells = grid_cells()
    return cells.with_columns((pl.col("column") * 4 + pl.col("row")).cast(pl.Float64).alias("value"))


def legend_labels(fragment: str) -> list[str]:
    legend = re.search(r"<div class='map-legend'[^>]*>(.*?)</div>", fragment).group(1)
    return re.findall(r"</span>([^<]+)", legend)


def test_numeric_map_cells_and_legend() -> None:
    fragment = choropleth(numeric_cells(), "value", "Mean risk", "mean_risk")

    for name in ("c00", "c12", "c32"):
        assert f'"cell_id": "{name}"' in fragment
    assert legend_labels(fragment) == ["0 to 2.5", "above 2.5 to 5", "above 5 to 7.5", "above 7.5 to 10",
                                       "above 10 to 12.5", "above 12.5 to 15"]
    assert "tileLayer" not in fragment
    assert "fitBounds" in fragment
    bounds = json.loads(re.search(r"fitBounds\(\s*(\[\[.*?\]\])", fragment, re.DOTALL).group(1))
    assert bounds[0] == pytest.approx([41.80, -87.70])
    assert bounds[1] == pytest.approx([41.84, -87.66])


def test_numeric_map_cell_colours() -> None:
    fragment = choropleth(numeric_cells(), "value", "Mean risk", "mean_risk")

    data = json.loads(re.search(r"_add\((\{.*?\})\);", fragment, re.DOTALL).group(1))
    fills = {feature["properties"]["cell_id"]: feature["properties"]["fill"] for feature in data["features"]}
    assert fills["c00"] == "#ffffb2"
    assert fills["c02"] == "#ffffb2"
    assert fills["c03"] == "#fed976"
    assert fills[MARKUP_ID] == "#bd0026"


def test_boolean_map_legend() -> None:
    cells = grid_cells().with_columns((pl.col("column") == 3).alias("east"))

    fragment = choropleth(cells, "east", "Group east", "group_east",
                          labels={True: "in the group", False: "not in the group"})

    assert legend_labels(fragment) == ["in the group", "not in the group"]
    assert '"value_text": "in the group"' in fragment


def test_map_escapes_cell_id_and_title() -> None:
    fragment = choropleth(numeric_cells(), "value", "Risk <b>&</b>", "mean_risk")

    assert 'alert("cell")' not in fragment
    assert "\\u0026lt;script\\u0026gt;alert(\\u0026quot;cell\\u0026quot;)" in fragment
    assert "Risk &lt;b&gt;&amp;&lt;/b&gt;" in fragment


def test_map_is_deterministic() -> None:
    first = choropleth(numeric_cells(), "value", "Mean risk", "mean_risk", formatter=format_share)
    second = choropleth(numeric_cells(), "value", "Mean risk", "mean_risk", formatter=format_share)

    assert first == second
    assert "map_mean_risk_0" in first
    assert not re.search(r"[0-9a-f]{32}", first)


def test_map_static_copy_placement() -> None:
    cells = numeric_cells()

    hidden = choropleth(cells, "value", "Risk", "risk")
    visible = choropleth(cells, "value", "Risk", "risk", static="visible")

    assert re.search(r"<noscript><div class='map-static'><svg", hidden)
    assert "<noscript>" not in visible
    assert "<div class='map-static'><svg" in visible
    assert "L.map(" not in visible


def test_map_counts_cells_without_polygon() -> None:
    cells = numeric_cells().with_columns(
        pl.when(pl.col("cell_id") == "c00").then(None).otherwise(pl.col("geojson")).alias("geojson"),
        pl.when(pl.col("cell_id") == "c01").then(None).otherwise(pl.col("value")).alias("value"),
    )

    fragment = choropleth(cells, "value", "Risk", "risk")

    assert "1 of 16 cells have no polygon and are not drawn." in fragment
    assert legend_labels(fragment)[-1] == "no data"
    assert '"cell_id": "c00"' not in fragment


def test_map_rejects_invalid_geojson() -> None:
    cells = numeric_cells().with_columns(
        pl.when(pl.col("cell_id") == "c11").then(pl.lit("{not json")).otherwise(pl.col("geojson")).alias("geojson"))

    with pytest.raises(ValueError, match="cell 'c11' has invalid GeoJSON"):
        choropleth(cells, "value", "Risk", "risk")


def test_map_rejects_bad_map_id() -> None:
    with pytest.raises(ValueError, match="map_id 'Mean risk'"):
        choropleth(numeric_cells(), "value", "Risk", "Mean risk")


def test_leaflet_assets_inline() -> None:
    assets = leaflet_assets()

    assert assets.inline
    assert "Leaflet 1.9.4" in assets.head
    assert "cdn.jsdelivr" not in assets.head
    assert ".leaflet-container" in assets.head


def test_cell_geojson_from_warehouse(tmp_path) -> None:
    connection = open_connection(tmp_path / "warehouse.duckdb", spatial=True)
    connection.execute("CREATE SCHEMA marts")
    connection.execute("CREATE TABLE marts.dim_cells (cell_id VARCHAR, geometry_wkt VARCHAR)")
    connection.execute("INSERT INTO marts.dim_cells VALUES "
                       "('b', 'POLYGON ((-87.7 41.8, -87.69 41.8, -87.69 41.81, -87.7 41.81, -87.7 41.8))'), "
                       "('a', NULL)")

    frame = cell_geojson(connection)
    connection.close()

    assert frame["cell_id"].to_list() == ["a", "b"]
    assert frame["geojson"][0] is None
    geometry = json.loads(frame["geojson"][1])
    assert geometry["type"] == "Polygon"
    corners = {tuple(point) for point in geometry["coordinates"][0]}
    assert corners == {(-87.7, 41.8), (-87.69, 41.8), (-87.69, 41.81), (-87.7, 41.81)}
    assert tuple(json.loads(square(0, 0))["coordinates"][0][0]) in corners


def test_cell_geojson_simplifies_outlines(tmp_path) -> None:
    """Points within the tolerance of a straight edge are dropped and coordinates snap to about 1 m."""
    connection = open_connection(tmp_path / "warehouse.duckdb", spatial=True)
    connection.execute("CREATE SCHEMA marts")
    connection.execute("CREATE TABLE marts.dim_cells (cell_id VARCHAR, geometry_wkt VARCHAR)")
    connection.execute("INSERT INTO marts.dim_cells VALUES ('c', 'POLYGON ((-87.7 41.8, -87.695 41.80000003, "
                       "-87.69 41.8, -87.69 41.810000004, -87.7 41.81, -87.7 41.8))')")

    simplified = json.loads(cell_geojson(connection)["geojson"][0])["coordinates"][0]
    exact = json.loads(cell_geojson(connection, simplify_degrees=0)["geojson"][0])["coordinates"][0]
    connection.close()

    assert len(simplified) == 5
    assert len(exact) == 6
    assert {tuple(point) for point in simplified} == {(-87.7, 41.8), (-87.69, 41.8), (-87.69, 41.81), (-87.7, 41.81)}


def test_cell_geojson_needs_spatial(tmp_path) -> None:
    connection = open_connection(tmp_path / "warehouse.duckdb")
    connection.execute("CREATE SCHEMA marts")
    connection.execute("CREATE TABLE marts.dim_cells (cell_id VARCHAR, geometry_wkt VARCHAR)")

    with pytest.raises(RuntimeError, match="spatial=True"):
        cell_geojson(connection)
    connection.close()
