"""Feature build rate for one city-year at Chicago's size: cell-hours per second, with and without Parquet writes.

The inputs are synthetic and sized like Chicago 2017. There are 801 cells on a queen-contiguity
grid (about as many neighbours as a census tract has) and 8,760 hours. About 260,000 incidents are
spread over the violent, robbery, property and other groups, with hourly weather and about 20,000
sanitation 311 requests. The build runs month by month, as the ``cell_hour_features`` asset does, so the figures
are those of the asset minus its warehouse reads. Run from the repository root:

    .venv/bin/python benchmarks/build_features.py [--year 2017] [--record]

``--record`` appends the figures to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from benchmarks.ingest_crimes import commit, record  # noqa: E402
from ml.feature_registry import FeatureLayout  # noqa: E402
from ml.feature_store import write_window  # noqa: E402
from ml.features import LOOKBACK_HOURS, WEATHER_LOOKBACK_HOURS, FeatureInputs, build_cell_hour_features  # noqa: E402

UTC = timezone.utc
GRID_ROWS, GRID_COLUMNS = 27, 30
N_CELLS = 801
INCIDENTS = 260_000
REQUESTS = 20_000
GROUP_SHARES = {"other": 0.45, "property": 0.45, "violent": 0.10}
LAYOUT = FeatureLayout(targets=("violent", "robbery", "property"), groups=("other", "property", "robbery", "violent"),
                       categories=("other", "property", "violent"), request_types=("sanitation_code",),
                       data_start=date(2001, 1, 1))


def grid_cells() -> tuple[list[str], pl.DataFrame]:
    """801 cell ids on a 27 x 30 grid and their queen-contiguity pairs."""
    positions = [(row, column) for row in range(GRID_ROWS) for column in range(GRID_COLUMNS)][:N_CELLS]
    names = {position: f"C{index:04d}" for index, position in enumerate(positions)}
    pairs = [(names[(row, column)], names[(row + dr, column + dc)])
             for row, column in positions for dr in (-1, 0, 1) for dc in (-1, 0, 1)
             if (dr or dc) and (row + dr, column + dc) in names]
    return sorted(names.values()), pl.DataFrame(pairs, schema=["cell_id", "neighbour_id"], orient="row")


def synthetic_inputs(year: int, rng: np.random.Generator) -> FeatureInputs:
    cells, neighbours = grid_cells()
    first = datetime(year, 1, 1, tzinfo=UTC) - timedelta(hours=max(LOOKBACK_HOURS, WEATHER_LOOKBACK_HOURS))
    hours = pl.datetime_range(first, datetime(year + 1, 1, 1, tzinfo=UTC), "1h", time_zone="UTC", eager=True)
    cell_weights = rng.gamma(0.8, size=len(cells))
    cell_weights /= cell_weights.sum()

    groups = rng.choice(list(GROUP_SHARES), size=INCIDENTS, p=list(GROUP_SHARES.values()))
    incidents = pl.DataFrame({
        "cell_id": rng.choice(cells, size=INCIDENTS, p=cell_weights),
        "hour": hours.gather(rng.integers(0, hours.len(), INCIDENTS)),
        "crime_group": groups,
    })
    robberies = incidents.filter(pl.col("crime_group") == "violent").sample(fraction=0.35, seed=1) \
        .with_columns(pl.lit("robbery").alias("crime_group"))
    counts = pl.concat([incidents, robberies]).group_by("cell_id", "hour", "crime_group").len("incidents") \
        .with_columns(pl.col("incidents").cast(pl.Int64))

    weather = pl.DataFrame({
        "hour": hours,
        "temperature_f": 50 + 25 * np.sin(np.arange(hours.len()) / 8760 * 2 * np.pi) + rng.normal(0, 5, hours.len()),
        "precipitation_in": np.where(rng.random(hours.len()) < 0.08, rng.exponential(0.05, hours.len()), 0.0),
        "relative_humidity": rng.uniform(30, 95, hours.len()),
        "wind_speed_mph": rng.gamma(2.0, 5.0, hours.len()),
        "precipitation_is_trace": rng.random(hours.len()) < 0.02,
    })
    days = [date(year - 1, 12, 20) + timedelta(days=int(offset)) for offset in rng.integers(0, 377, REQUESTS)]
    requests = pl.DataFrame({"cell_id": rng.choice(cells, size=REQUESTS, p=cell_weights), "local_date": days,
                             "request_type": "sanitation_code"}) \
        .group_by("cell_id", "local_date", "request_type").len("requests").with_columns(pl.col("requests").cast(pl.Int64))
    cells_frame = pl.DataFrame({"cell_id": cells, "area_km2": rng.uniform(0.2, 5.0, len(cells)),
                                "population": rng.uniform(500, 8000, len(cells))})
    return FeatureInputs(cells_frame, neighbours, counts, weather, requests)


def months(year: int) -> list[tuple[datetime, datetime]]:
    starts = [datetime(year, month, 1, tzinfo=UTC) for month in range(1, 13)] + [datetime(year + 1, 1, 1, tzinfo=UTC)]
    return list(zip(starts[:-1], starts[1:]))


def run(year: int, folder: Path) -> dict[str, float]:
    inputs = synthetic_inputs(year, np.random.default_rng(7))
    build_seconds = write_seconds = 0.0
    rows = columns = 0
    for start, end in months(year):
        began = time.perf_counter()
        frame = build_cell_hour_features(inputs, LAYOUT, start, end, "America/Chicago", "US", "IL")
        built = time.perf_counter()
        write_window(folder, frame, start, end)
        build_seconds += built - began
        write_seconds += time.perf_counter() - built
        rows, columns = rows + frame.height, frame.width
    return {"rows": rows, "columns": columns, "build": build_seconds, "write": write_seconds,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}


def report(year: int, figures: dict[str, float]) -> str:
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    rows, build, write = figures["rows"], figures["build"], figures["write"]
    return "\n".join([
        f"## {date.today().isoformat()}: feature build rate, one synthetic Chicago-size year ({year})",
        "",
        f"- Command: `.venv/bin/python benchmarks/build_features.py --year {year} --record`",
        f"- Commit: {commit()}; machine: {os.cpu_count()} cores, {memory_gb:.0f} GB RAM, "
        f"Python {platform.python_version()}",
        f"- Input: 801 cells x 8,760 hours = {rows:,} cell-hours, {figures['columns']} columns, "
        f"{INCIDENTS:,} incidents, {REQUESTS:,} 311 requests; peak RSS {figures['peak_rss_gb']:.2f} GB",
        "- Target: at least 5 million cell-hours per second for the build",
        "",
        "| step | wall time | cell-hours per second |",
        "|---|---|---|",
        f"| build (numpy and polars, in memory) | {build:.1f} s | {rows / build:,.0f} |",
        f"| Parquet writes (zstd day files) | {write:.1f} s | {rows / write:,.0f} |",
        f"| build and write | {build + write:.1f} s | {rows / (build + write):,.0f} |",
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--year", type=int, default=2017)
    parser.add_argument("--record", action="store_true", help="append the figures to docs/benchmarks.md")
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="riskcast-features-") as scratch:
        figures = run(arguments.year, Path(scratch))
    text = report(arguments.year, figures)
    print(text)
    if arguments.record:
        record(text)


if __name__ == "__main__":
    main()
