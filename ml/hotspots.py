"""Spatial hotspot baselines: a retrospective kernel density and prospective hot-spotting.

Retrospective hotspot maps smooth the recent crimes of an area with a spatial
kernel and treat the dense places as the places at risk. Chainey, Tompson &
Uhlig (2008), "The utility of hotspot mapping for predicting spatial patterns
of crime", Security Journal 21, DOI 10.1057/palgrave.sj.8350066, compare such
maps by how well they predict the next period's crimes. `RetrospectiveHotspot`
spreads each crime of the last `weeks` weeks over the cells with a Gaussian
kernel of the distance between cell centroids, so that the risk is a rate.

Bowers, Johnson & Pease (2004), "Prospective hot-spotting: the future of crime
mapping?", British Journal of Criminology 44(5), DOI 10.1093/bjc/azh036, use
the finding that the risk of a crime rises for a few weeks at the place of a
recent crime and nearby. Their map weights each recent crime by its closeness
in space and time, 1/(1+d) * 1/(1+t), with d in distance units and t in
weeks, within a spatial and a temporal bandwidth. `ProspectiveHotspot`
computes that sum for each cell.

Both baselines place every crime at its cell's centroid and accept a sparse
history (only cell-hours with crime_count > 0) as well as the complete spine.
Their risk is the same for every target hour of a cell. Cells come as a polars
frame with `cell_id` (String), `x_m`, `y_m` (Float64, projected metres) and
`area_km2`. `cells_from_lonlat` builds it from the cell centroids in
longitude and latitude.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta

import numpy as np
import polars as pl
from scipy.spatial import cKDTree

from ml.baselines import RiskBaseline, RiskKind, as_utc, check_columns, check_history, check_targets, window_events

logger = logging.getLogger(__name__)

# Mean Earth radius (IUGG), used by the local equirectangular projection.
EARTH_RADIUS_M = 6_371_008.8
HOURS_PER_WEEK = 168

# The Gaussian kernel is cut at this many bandwidths, where its weight is exp(-8), about 3e-4 of the peak.
GAUSSIAN_TRUNCATION_BANDWIDTHS = 4.0


def cells_from_lonlat(frame: pl.DataFrame) -> pl.DataFrame:
    """Project cell centroids (cell_id, centroid_lon, centroid_lat, area_km2) to cell_id, x_m, y_m, area_km2.

    The projection is a local equirectangular one about the mean longitude and
    latitude of the centroids: x_m = R * cos(mean latitude) * (lon - mean lon)
    and y_m = R * (lat - mean lat), angles in radians, R the mean Earth radius.
    Over a city 50 km from north to south, the change of cos(latitude) puts
    its east-west distances within about 0.5% of the great-circle ones (an
    estimate for latitudes near 42 degrees), which is plenty for a kernel bandwidth.
    These are the columns of the warehouse table marts.dim_cells.
    """
    check_columns(frame, {"cell_id": pl.String, "centroid_lon": None, "centroid_lat": None, "area_km2": None}, "cells")

    for name in ("centroid_lon", "centroid_lat", "area_km2"):
        if not frame.schema[name].is_numeric():
            raise ValueError(f"cells.{name} must be numeric, got {frame.schema[name]}.")

    if frame.height == 0:
        raise ValueError("cells has no rows. Pass one row per cell of marts.dim_cells.")

    lon = frame["centroid_lon"].cast(pl.Float64).to_numpy()
    lat = frame["centroid_lat"].cast(pl.Float64).to_numpy()
    if not (np.isfinite(lon).all() and np.isfinite(lat).all()):
        raise ValueError("cells.centroid_lon and centroid_lat must be finite. Drop or fix the cells without a centroid.")

    if np.abs(lat).max() > 90 or np.abs(lon).max() > 180:
        raise ValueError("cells centroids must be longitude in [-180, 180] and latitude in [-90, 90] degrees.")

    mean_lon = math.radians(float(lon.mean()))
    mean_lat = math.radians(float(lat.mean()))
    x_m = EARTH_RADIUS_M * math.cos(mean_lat) * (np.radians(lon) - mean_lon)
    y_m = EARTH_RADIUS_M * (np.radians(lat) - mean_lat)

    cells = pl.DataFrame(
        {
            "cell_id": frame["cell_id"],
            "x_m": pl.Series(x_m, dtype=pl.Float64),
            "y_m": pl.Series(y_m, dtype=pl.Float64),
            "area_km2": frame["area_km2"].cast(pl.Float64),
        }
    )
    check_cells(cells)
    return cells


def check_cells(cells: pl.DataFrame) -> None:
    """Raise ValueError unless `cells` has unique cell ids, finite coordinates and positive areas."""
    check_columns(cells, {"cell_id": pl.String, "x_m": pl.Float64, "y_m": pl.Float64, "area_km2": None}, "cells")

    if cells.height == 0:
        raise ValueError("cells has no rows. Pass one row per cell.")

    n_null = cells["cell_id"].null_count()
    if n_null:
        raise ValueError(f"cells.cell_id has {n_null} null values. Drop them first.")

    duplicated = cells.filter(pl.col("cell_id").is_duplicated())["cell_id"].unique().sort()
    if duplicated.len():
        raise ValueError(f"cells.cell_id must be unique, found duplicates {duplicated.head(5).to_list()}.")

    coordinates = cells.select("x_m", "y_m").to_numpy()
    if not np.isfinite(coordinates).all():
        raise ValueError("cells.x_m and cells.y_m must be finite. Drop or fix the cells without a centroid.")

    areas = cells["area_km2"].cast(pl.Float64)
    if areas.null_count() or (areas <= 0).any():
        raise ValueError("cells.area_km2 must be positive for every cell.")


def check_positive(value: float, name: str, fix: str) -> float:
    """Return `value` as a float, raising ValueError unless it is a finite number above 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}. {fix}")
    return float(value)


def check_weeks(weeks: int) -> int:
    """Return `weeks`, raising ValueError unless it is a positive whole number."""
    if isinstance(weeks, bool) or not isinstance(weeks, int) or weeks < 1:
        raise ValueError(f"weeks must be a positive whole number of weeks, got {weeks!r}.")
    return weeks


def centroid_pairs(cells: pl.DataFrame, max_distance_m: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (row, column, distance in metres) of every ordered pair of cells at most `max_distance_m` apart.

    Each cell is paired with itself at distance 0, and pairs come from a k-d
    tree, so memory grows with the number of close pairs, not with the square
    of the number of cells.
    """
    coordinates = cells.select("x_m", "y_m").to_numpy()
    tree = cKDTree(coordinates)
    pairs = tree.sparse_distance_matrix(tree, max_distance_m, output_type="ndarray")

    rows = pairs["i"].astype(np.int64)
    columns = pairs["j"].astype(np.int64)
    distances = pairs["v"].astype(np.float64)

    # Cells with identical centroids, and each cell with itself, have distance 0; make
    # sure every cell is paired with itself even if the tree ever left zero entries out.
    n_cells = coordinates.shape[0]
    if np.count_nonzero(rows == columns) != n_cells:
        off_diagonal = rows != columns
        rows = np.concatenate([rows[off_diagonal], np.arange(n_cells)])
        columns = np.concatenate([columns[off_diagonal], np.arange(n_cells)])
        distances = np.concatenate([distances[off_diagonal], np.zeros(n_cells)])
    return rows, columns, distances


def event_cell_indices(events: pl.DataFrame, cells: pl.DataFrame) -> np.ndarray:
    """Return the row of `cells` of each event's cell_id, raising ValueError for cells not in `cells`."""
    indexed = cells.select("cell_id").with_row_index("cell_index")
    joined = events.select("cell_id").join(indexed, on="cell_id", how="left", maintain_order="left")

    unknown = joined.filter(pl.col("cell_index").is_null())["cell_id"].unique().sort()
    if unknown.len():
        raise ValueError(
            f"history has crimes in {unknown.len()} cells that are not in cells, for example {unknown.head(5).to_list()}. "
            "Pass the cells of the same jurisdiction and spatial unit as the history."
        )
    return joined["cell_index"].cast(pl.Int64).to_numpy()


def cell_risk_targets(targets: pl.DataFrame, cell_risk: pl.DataFrame, baseline_name: str) -> pl.DataFrame:
    """Return `targets` in input order with the `risk` of its cell, raising ValueError for unknown cells."""
    joined = targets.join(cell_risk.select("cell_id", "risk"), on="cell_id", how="left", maintain_order="left")

    unknown = joined.filter(pl.col("risk").is_null())["cell_id"].unique().sort()
    if unknown.len():
        raise ValueError(
            f"targets has {unknown.len()} cells that are not in the cells given to {baseline_name}, "
            f"for example {unknown.head(5).to_list()}. Pass targets of the same cells."
        )
    return joined


class RetrospectiveHotspot(RiskBaseline):
    """Gaussian kernel density of the crimes of the last `weeks` weeks, as a rate per cell-hour.

    Each crime sits at its cell's centroid and is shared among the cells in
    proportion to the Gaussian weight exp(-d^2 / (2 * bandwidth_m^2)) of the
    centroid distance d, cut at 4 bandwidths. The shares of one crime sum to 1.
    The risk of a cell, its kernel-weighted crimes divided by the hours in the
    window, is therefore an expected count per hour, and the risks of all
    cells sum to the city's mean count per hour. The default bandwidth of 400 m suits
    cells of roughly 0.5 to 1 km^2, such as census tracts in a dense city:
    each crime then keeps most of its weight in its own cell.
    """

    name = "retrospective_hotspot"
    risk_kind: RiskKind = "rate"

    def __init__(self, cells: pl.DataFrame, weeks: int = 8, bandwidth_m: float = 400.0) -> None:
        check_cells(cells)
        self.weeks = check_weeks(weeks)
        self.bandwidth_m = check_positive(bandwidth_m, "bandwidth_m", "Pass the kernel's standard deviation in metres.")
        self.cells = cells.select("cell_id", "x_m", "y_m", "area_km2")

        rows, columns, distances = centroid_pairs(self.cells, GAUSSIAN_TRUNCATION_BANDWIDTHS * self.bandwidth_m)
        weights = np.exp(-0.5 * (distances / self.bandwidth_m) ** 2)
        row_sums = np.bincount(rows, weights=weights, minlength=self.cells.height)
        self.pair_rows = rows
        self.pair_columns = columns
        self.pair_shares = weights / row_sums[rows]

        self.cutoff: datetime | None = None
        self.n_events: int | None = None
        self.cell_risk: pl.DataFrame | None = None

    def fit(self, history: pl.DataFrame, cutoff: datetime) -> "RetrospectiveHotspot":
        """Spread the crimes of the `weeks` weeks before `cutoff` over the cells."""
        check_history(history)
        cutoff_utc = as_utc(cutoff, "cutoff")
        window_start = cutoff_utc - timedelta(weeks=self.weeks)
        events = window_events(history, window_start, cutoff_utc)

        n_cells = self.cells.height
        counts_per_cell = np.bincount(
            event_cell_indices(events, self.cells),
            weights=events["crime_count"].to_numpy().astype(np.float64),
            minlength=n_cells,
        )
        smoothed = np.bincount(
            self.pair_columns,
            weights=counts_per_cell[self.pair_rows] * self.pair_shares,
            minlength=n_cells,
        )
        window_hours = self.weeks * HOURS_PER_WEEK

        self.cell_risk = self.cells.select("cell_id").with_columns(risk=pl.Series(smoothed / window_hours))
        self.cutoff = cutoff_utc
        self.n_events = int(counts_per_cell.sum())
        logger.info(
            "Fitted retrospective hotspot on %d crimes in %d cell-hours over the %d weeks before %s (bandwidth %.0f m).",
            self.n_events,
            events.height,
            self.weeks,
            cutoff_utc.isoformat(),
            self.bandwidth_m,
        )
        return self

    def predict(self, targets: pl.DataFrame) -> pl.DataFrame:
        """Return `targets` in input order with `risk`, the smoothed count per hour of its cell."""
        if self.cell_risk is None:
            raise RuntimeError("RetrospectiveHotspot.predict was called before fit. Call fit(history, cutoff) first.")
        check_targets(targets)
        return cell_risk_targets(targets, self.cell_risk, self.name)


class ProspectiveHotspot(RiskBaseline):
    """Bowers, Johnson & Pease (2004) prospective hot-spotting on cell centroids.

    A crime in cell m adds crime_count * 1/(1+d) * 1/(1+t) to the score of
    cell n. Here d is the distance between the centroids of m and n divided
    by `distance_unit_m`, and t is the time from the crime's hour start to the
    cutoff in weeks, both real numbers, not rounded. Only crimes with
    d * distance_unit_m <= `bandwidth_m` and t <= `weeks` count. A crime's own
    cell has d = 0 and gets the full spatial weight 1. Cells with identical
    centroids do too.

    The score only ranks cells, so the fit rescales it into a rate: the risk
    is score * (crimes in the window / hours in the window) / (sum of all
    cells' scores), so the risks of all cells sum to the city's mean count per
    hour. `cell_risk` keeps the raw `score` beside the `risk`. The defaults (a
    1,200 m bandwidth and an 800 m unit) suit cells of roughly 0.5 to 1 km^2,
    so that about one ring of neighbours counts.
    """

    name = "prospective_hotspot"
    risk_kind: RiskKind = "rate"

    def __init__(
        self,
        cells: pl.DataFrame,
        bandwidth_m: float = 1200.0,
        distance_unit_m: float = 800.0,
        weeks: int = 8,
    ) -> None:
        check_cells(cells)
        self.bandwidth_m = check_positive(bandwidth_m, "bandwidth_m", "Pass the spatial bandwidth in metres.")
        self.distance_unit_m = check_positive(
            distance_unit_m, "distance_unit_m", "Pass the length of one distance unit in metres, such as a cell width."
        )
        self.weeks = check_weeks(weeks)
        self.cells = cells.select("cell_id", "x_m", "y_m", "area_km2")

        rows, columns, distances = centroid_pairs(self.cells, self.bandwidth_m)
        self.pair_rows = rows
        self.pair_columns = columns
        self.pair_weights = 1.0 / (1.0 + distances / self.distance_unit_m)

        self.cutoff: datetime | None = None
        self.n_events: int | None = None
        self.scale: float | None = None
        self.cell_risk: pl.DataFrame | None = None

    def fit(self, history: pl.DataFrame, cutoff: datetime) -> "ProspectiveHotspot":
        """Sum the space-time weights of the crimes of the `weeks` weeks before `cutoff` for every cell."""
        check_history(history)
        cutoff_utc = as_utc(cutoff, "cutoff")
        window_start = cutoff_utc - timedelta(weeks=self.weeks)
        events = window_events(history, window_start, cutoff_utc)

        weeks_before = (cutoff_utc - events["hour"]).dt.total_seconds().to_numpy() / (HOURS_PER_WEEK * 3600)
        counts = events["crime_count"].to_numpy().astype(np.float64)
        time_weighted = np.bincount(
            event_cell_indices(events, self.cells),
            weights=counts / (1.0 + weeks_before),
            minlength=self.cells.height,
        )
        score = np.bincount(
            self.pair_columns,
            weights=time_weighted[self.pair_rows] * self.pair_weights,
            minlength=self.cells.height,
        )

        window_hours = self.weeks * HOURS_PER_WEEK
        self.n_events = int(counts.sum())
        self.scale = (self.n_events / window_hours) / float(score.sum())
        self.cell_risk = self.cells.select("cell_id").with_columns(
            score=pl.Series(score), risk=pl.Series(score * self.scale)
        )
        self.cutoff = cutoff_utc
        logger.info(
            "Fitted prospective hotspot on %d crimes in %d cell-hours over the %d weeks before %s "
            "(bandwidth %.0f m, distance unit %.0f m).",
            self.n_events,
            events.height,
            self.weeks,
            cutoff_utc.isoformat(),
            self.bandwidth_m,
            self.distance_unit_m,
        )
        return self

    def predict(self, targets: pl.DataFrame) -> pl.DataFrame:
        """Return `targets` in input order with `risk`, the rescaled prospective score of its cell."""
        if self.cell_risk is None:
            raise RuntimeError("ProspectiveHotspot.predict was called before fit. Call fit(history, cutoff) first.")
        check_targets(targets)
        return cell_risk_targets(targets, self.cell_risk, self.name)
