"""Growth of the wall time and peak memory of the feature build and of scoring with cell-hours.

Each size is a synthetic city of N cells on a square grid (queen-contiguity neighbours) over Y
city-years of 365 days from 2014-01-01. Its inputs are sized per cell like Chicago 2017 (about 325
incidents and 25 sanitation 311 requests per cell-year) with hourly weather. Every measurement runs
in a fresh child process. The peak RSS is ``ru_maxrss`` of that child from ``wait4``, which
includes building the synthetic inputs. The wall time covers only the measured work:

- feature build: ``build_cell_hour_features`` month by month, each month written to Parquet day
  files with ``write_window``, as the ``cell_hour_features`` asset does;
- scoring: ``RiskEnsemble.predict_proba`` on N cells x 72 horizons for one issue hour per week
  of the Y city-years (the weekly cadence of a backtest), one issue hour at a time. The ensemble
  is trained once, before the sizes, on a synthetic set of 200 cells x 16 weeks with 60
  features. Its prediction cost depends on its members, not on that set.

A least-squares line through (log cell-hours, log figure) gives the exponent of each figure. The
peak RSS is fitted as measured and also above the import baseline (the peak of a child that only
imports the modules, about 0.6 GiB with torch), because that constant flattens the fit. An
exponent up to 1 + ``--tolerance`` (default 0.1, for the noise of a shared machine) counts as no
faster than linear. The default grid is 1, 2 and 4 city-years by 800, 3,200 and 12,800 cells.
``--years`` and ``--cells`` choose a subset, and ``--max-cell-hours`` skips the largest sizes.
``--smoke`` measures periods of 14 days (on 50, 100 and 200 cells unless ``--cells`` is given)
with a 2-net ensemble, in a few minutes. The warehouse job (ingest and dbt) is left out here: ``resource_limits.py --warehouse-job``
measures it on 1 to 10 city-years. Run from the repository root:

    .venv/bin/python benchmarks/scaling.py [--years 1 2 4] [--cells 800 3200 12800] [--smoke] [--record]

``--record`` adds the figures to docs/benchmarks.md (newest first).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from benchmarks.ingest_crimes import commit, record  # noqa: E402

UTC = timezone.utc
FIRST_DAY = datetime(2014, 1, 1, tzinfo=UTC)
INCIDENTS_PER_CELL_YEAR = 325
REQUESTS_PER_CELL_YEAR = 25
HORIZON_HOURS = 72
N_FEATURES = 60
TRAINING_CELLS = 200
TRAINING_WEEKS = 16
CHILD_FLAG = "--child"
GIB = 1024 ** 3
# Floor of the RSS above the import baseline, so that its logarithm is defined when a small size
# stays within the baseline.
MIN_RSS_ABOVE_BASELINE = 1024 ** 2


def grid_cells(cell_count: int):
    """Return ``cell_count`` cell ids on a square grid and their queen-contiguity pairs."""
    import polars as pl

    side = math.ceil(math.sqrt(cell_count))
    positions = [(row, column) for row in range(side) for column in range(side)][:cell_count]
    names = {position: f"C{index:05d}" for index, position in enumerate(positions)}
    pairs = [(names[(row, column)], names[(row + dr, column + dc)])
             for row, column in positions for dr in (-1, 0, 1) for dc in (-1, 0, 1)
             if (dr or dc) and (row + dr, column + dc) in names]
    return sorted(names.values()), pl.DataFrame(pairs, schema=["cell_id", "neighbour_id"], orient="row")


def synthetic_inputs(cell_count: int, start: datetime, end: datetime, rng: np.random.Generator):
    """Build feature inputs for ``cell_count`` cells covering ``[start, end)`` and the lookbacks before it."""
    import polars as pl

    from benchmarks.build_features import GROUP_SHARES
    from ml.features import LOOKBACK_HOURS, WEATHER_LOOKBACK_HOURS, FeatureInputs

    cells, neighbours = grid_cells(cell_count)
    first = start - timedelta(hours=max(LOOKBACK_HOURS, WEATHER_LOOKBACK_HOURS))
    hours = pl.datetime_range(first, end, "1h", time_zone="UTC", eager=True)
    years = hours.len() / 8760
    cell_weights = rng.gamma(0.8, size=len(cells))
    cell_weights /= cell_weights.sum()

    incident_count = int(INCIDENTS_PER_CELL_YEAR * cell_count * years)
    incidents = pl.DataFrame({
        "cell_id": rng.choice(cells, size=incident_count, p=cell_weights),
        "hour": hours.gather(rng.integers(0, hours.len(), incident_count)),
        "crime_group": rng.choice(list(GROUP_SHARES), size=incident_count, p=list(GROUP_SHARES.values())),
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

    request_count = int(REQUESTS_PER_CELL_YEAR * cell_count * years)
    day_count = (end - first).days + 14
    days = [first.date() - timedelta(days=14) + timedelta(days=int(offset))
            for offset in rng.integers(0, day_count, request_count)]
    requests = pl.DataFrame({"cell_id": rng.choice(cells, size=request_count, p=cell_weights), "local_date": days,
                             "request_type": "sanitation_code"}) \
        .group_by("cell_id", "local_date", "request_type").len("requests") \
        .with_columns(pl.col("requests").cast(pl.Int64))
    cells_frame = pl.DataFrame({"cell_id": cells, "area_km2": rng.uniform(0.2, 5.0, len(cells)),
                                "population": rng.uniform(500, 8000, len(cells))})
    return FeatureInputs(cells_frame, neighbours, counts, weather, requests)


def month_windows(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """Split ``[start, end)`` at the first of each UTC month."""
    windows = []
    left = start
    while left < end:
        next_month = datetime(left.year + left.month // 12, left.month % 12 + 1, 1, tzinfo=UTC)
        right = min(next_month, end)
        windows.append((left, right))
        left = right
    return windows


def measure_features(cell_count: int, end: datetime, folder: Path) -> dict:
    """Build and write the features of every hour in ``[FIRST_DAY, end)``; return the wall time and rows."""
    from benchmarks.build_features import LAYOUT
    from ml.feature_store import write_window
    from ml.features import build_cell_hour_features

    inputs = synthetic_inputs(cell_count, FIRST_DAY, end, np.random.default_rng(7))
    rows = 0
    started = time.perf_counter()
    for left, right in month_windows(FIRST_DAY, end):
        frame = build_cell_hour_features(inputs, LAYOUT, left, right, "America/Chicago", "US", "IL")
        write_window(folder, frame, left, right)
        rows += frame.height
        del frame
    return {"seconds": time.perf_counter() - started, "rows": rows}


def measure_scoring(cell_count: int, end: datetime, ensemble_folder: Path) -> dict:
    """Score ``cell_count`` cells x 72 hours for one issue hour per week in ``[FIRST_DAY, end)``."""
    from ml.ensemble import RiskEnsemble

    ensemble = RiskEnsemble.load(ensemble_folder)
    issue_hours = (end - FIRST_DAY).days // 7
    rng = np.random.default_rng(11)
    matrix = rng.standard_normal((cell_count * HORIZON_HOURS, N_FEATURES), dtype=np.float32)

    rows = 0
    started = time.perf_counter()
    for _ in range(issue_hours):
        rows += ensemble.predict_proba(matrix).shape[0]
    return {"seconds": time.perf_counter() - started, "rows": rows, "issue_hours": issue_hours}


def train_ensemble(folder: Path, n_nets: int) -> None:
    """Train an ensemble on a small synthetic set with 60 features and save it to ``folder``."""
    from ml.ensemble import EnsembleConfig, RiskEnsemble

    rng = np.random.default_rng(3)
    hour_count = TRAINING_WEEKS * 168
    first_hour = int(FIRST_DAY.timestamp() // 3600)
    X = rng.standard_normal((hour_count * TRAINING_CELLS, N_FEATURES), dtype=np.float32)
    hours = np.repeat(np.arange(first_hour, first_hour + hour_count, dtype=np.int64), TRAINING_CELLS)
    logit = -3.5 + 0.6 * X[:, 0] - 0.4 * X[:, 1] + 0.3 * X[:, 2] * X[:, 3]
    labels = (rng.random(X.shape[0]) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int8)

    ensemble = RiskEnsemble(EnsembleConfig(n_nets=n_nets))
    ensemble.fit(X, labels, hours, [f"x{index:02d}" for index in range(N_FEATURES)])
    ensemble.save(folder)


def child(arguments: list[str]) -> None:
    """Run one measurement in this process and print its figures as JSON on the last line."""
    kind = arguments[0]
    if kind == "baseline":
        import ml.ensemble  # noqa: F401
        import ml.feature_store  # noqa: F401
        import ml.features  # noqa: F401

        print(json.dumps({}))
        return
    if kind == "train":
        train_ensemble(Path(arguments[1]), int(arguments[2]))
        print(json.dumps({}))
        return

    cell_count, end, folder = int(arguments[1]), datetime.fromisoformat(arguments[2]), Path(arguments[3])
    if kind == "features":
        figures = measure_features(cell_count, end, folder)
    else:
        figures = measure_scoring(cell_count, end, folder)
    print(json.dumps(figures))


def run_child(arguments: list[str]) -> dict:
    """Run ``arguments`` in a child process; return its figures with its peak RSS in bytes."""
    process = subprocess.Popen([sys.executable, __file__, CHILD_FLAG, *arguments], stdout=subprocess.PIPE, text=True)
    output = process.stdout.read() if process.stdout else ""
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"the {arguments[0]} measurement {arguments[1:]} failed with exit status {status}")
    figures = json.loads(output.strip().splitlines()[-1])
    # ru_maxrss is in KiB on Linux.
    figures["peak_rss_bytes"] = usage.ru_maxrss * 1024
    return figures


def fitted_exponent(cell_hours: list[int], values: list[float]) -> float:
    """Slope of the least-squares line through (log cell-hours, log value)."""
    slope, _ = np.polyfit(np.log(cell_hours), np.log(values), 1)
    return float(slope)


def measure(years: list[int], cells: list[int], period_days: int, n_nets: int, max_cell_hours: float,
            scratch: Path) -> list[dict]:
    """Measure the feature build and scoring at every size up to ``max_cell_hours``."""
    ensemble_folder = scratch / "ensemble"
    print(f"training the scoring ensemble ({n_nets} nets) ...", file=sys.stderr, flush=True)
    run_child(["train", str(ensemble_folder), str(n_nets)])
    baseline = run_child(["baseline"])["peak_rss_bytes"]

    results = []
    for year_count in years:
        end = FIRST_DAY + timedelta(days=period_days * year_count)
        for cell_count in cells:
            cell_hours = cell_count * int((end - FIRST_DAY) / timedelta(hours=1))
            if cell_hours > max_cell_hours:
                print(f"skipping {year_count} x {cell_count} cells: {cell_hours:,} cell-hours is above "
                      f"--max-cell-hours", file=sys.stderr, flush=True)
                continue
            print(f"measuring {year_count} periods x {cell_count} cells ({cell_hours:,} cell-hours) ...",
                  file=sys.stderr, flush=True)
            features = run_child(["features", str(cell_count), end.isoformat(),
                                  str(scratch / f"features-{year_count}-{cell_count}")])
            scoring = run_child(["scoring", str(cell_count), end.isoformat(), str(ensemble_folder)])
            for figures in (features, scoring):
                figures["rss_above_baseline_bytes"] = max(figures["peak_rss_bytes"] - baseline, MIN_RSS_ABOVE_BASELINE)
            results.append({"years": year_count, "cells": cell_count, "cell_hours": cell_hours,
                            "baseline_rss_bytes": baseline, "features": features, "scoring": scoring})
    return results


def exponent_rows(results: list[dict], tolerance: float) -> list[str]:
    """Format one row per stage and figure: the fitted exponent, and whether it is at most 1 + ``tolerance``."""
    cell_hours = [result["cell_hours"] for result in results]
    rows = []
    for stage in ("features", "scoring"):
        for label, key in (("wall time", "seconds"), ("peak RSS", "peak_rss_bytes"),
                           ("peak RSS above the import baseline", "rss_above_baseline_bytes")):
            exponent = fitted_exponent(cell_hours, [result[stage][key] for result in results])
            outcome = "PASS" if exponent <= 1 + tolerance else "MISS"
            rows.append(f"| {stage} | {label} | {exponent:.2f} | <= {1 + tolerance:.2f} | {outcome} |")
    return rows


def report(results: list[dict], period_days: int, tolerance: float, smoke: bool) -> str:
    """Format the figures and the fitted exponents as a docs/benchmarks.md entry."""
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    baseline = ""
    if results:
        baseline = (f"; a child that only imports the modules peaks at "
                    f"{results[0]['baseline_rss_bytes'] / GIB:.2f} GiB (the import baseline)")
    lines = [
        f"## {date.today().isoformat()}: scaling of the feature build and scoring with cell-hours"
        f"{' (smoke run)' if smoke else ''}",
        "",
        f"- Command: `.venv/bin/python benchmarks/scaling.py {' '.join(sys.argv[1:])}`",
        f"- Commit: {commit()}; machine: {os.cpu_count()} cores, {memory_gb:.0f} GB RAM, "
        f"Python {platform.python_version()}; load average {os.getloadavg()[0]:.1f} after the run",
        f"- Input: synthetic square-grid cities, periods of {period_days} days from {FIRST_DAY.date()}, "
        f"{INCIDENTS_PER_CELL_YEAR} incidents and {REQUESTS_PER_CELL_YEAR} 311 requests per cell-year; "
        f"scoring of cells x {HORIZON_HOURS} h for one issue hour per week; peak RSS is `ru_maxrss` of each child"
        f"{baseline}",
        "",
        "| periods | cells | cell-hours | features wall | features peak RSS | cell-hours/s | "
        "scoring wall | scored rows | scoring peak RSS |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        features, scoring = result["features"], result["scoring"]
        lines.append(
            f"| {result['years']} | {result['cells']:,} | {result['cell_hours']:,} | {features['seconds']:.1f} s | "
            f"{features['peak_rss_bytes'] / GIB:.2f} GiB | {result['cell_hours'] / features['seconds']:,.0f} | "
            f"{scoring['seconds']:.2f} s | {scoring['rows']:,} | {scoring['peak_rss_bytes'] / GIB:.2f} GiB |")
    lines += [
        "",
        "| stage | figure | exponent in cell-hours | target | outcome |",
        "|---|---|---|---|---|",
    ]
    if len({result["cell_hours"] for result in results}) >= 2:
        lines += exponent_rows(results, tolerance)
    else:
        lines.append("| | no fit: fewer than two distinct sizes were measured | | | |")
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == CHILD_FLAG:
        child(sys.argv[2:])
        return

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--years", type=int, nargs="+", default=[1, 2, 4], help="city-years of each size")
    parser.add_argument("--cells", type=int, nargs="+",
                        help="cells of each size (default 800 3200 12800, or 50 100 200 with --smoke)")
    parser.add_argument("--max-cell-hours", type=float, default=math.inf,
                        help="skip sizes with more cell-hours than this (default: no limit)")
    parser.add_argument("--n-nets", type=int, default=100, help="nets of the scoring ensemble (default %(default)s)")
    parser.add_argument("--tolerance", type=float, default=0.1,
                        help="an exponent up to 1 plus this counts as no faster than linear (default %(default)s)")
    parser.add_argument("--smoke", action="store_true",
                        help="measure periods of 14 days with a 2-net ensemble, on 50, 100 and 200 cells by default")
    parser.add_argument("--record", action="store_true", help="add the figures to docs/benchmarks.md")
    arguments = parser.parse_args()
    if arguments.smoke and arguments.record:
        parser.error("--record with --smoke: smoke figures are not comparable with the targets, so they are not "
                     "recorded; drop one of the two options")

    period_days, cells, n_nets = 365, arguments.cells or [800, 3200, 12800], arguments.n_nets
    if arguments.smoke:
        period_days, cells, n_nets = 14, arguments.cells or [50, 100, 200], 2

    with tempfile.TemporaryDirectory(prefix="riskcast-scaling-") as scratch:
        results = measure(arguments.years, cells, period_days, n_nets, arguments.max_cell_hours, Path(scratch))
    text = report(results, period_days, arguments.tolerance, arguments.smoke)
    print(text)
    if arguments.record:
        record(text)


if __name__ == "__main__":
    main()
