"""Autocorrelation of hourly temperature anomalies at O'Hare in 2017, to set the blend's decay time.

For anomalies from climatology that follow a first-order autoregressive process, the best weight
of persistence in a blend with climatology at lag ``h`` is the lag-``h`` autocorrelation
``exp(-h / tau)`` (Murphy 1992, Weather and Forecasting 7: 692-698). The script reads the routine
(FM-15) reports of the 2017 LCD file and takes the last report of each hour as that hour's
temperature. It subtracts the climatology of ``ml.weather_forecast.climatology`` (+/- 7 days)
and prints the autocorrelation and the ``tau`` it implies at several lags. With one year of hourly
data the climatology is built from the same year, so the anomalies are in-sample and the
correlations at long lags are biased low. Run from the repository root:

    .venv/bin/python benchmarks/weather_persistence.py
"""

from __future__ import annotations

import math
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from ml.weather_forecast import climatology, day_of_year  # noqa: E402

SHARED_DATA = Path(os.environ.get("RISKCAST_SHARED_DATA", REPOSITORY.parent / "shared" / "data"))
LCD_FILE = SHARED_DATA / "chicago" / "weather" / "ohare_lcd_hourly_2017.csv.gz"
LAGS = (1, 3, 6, 12, 24, 48, 72)


def hourly_temperature(path: Path) -> pl.DataFrame:
    """Hourly temperatures (°F) of routine reports, on the file's Local Standard Time hours."""
    reports = pl.read_csv(path, columns=["DATE", "REPORTTPYE", "HOURLYDRYBULBTEMPF"], infer_schema=False)
    routine = reports.filter(pl.col("REPORTTPYE").str.strip_chars() == "FM-15").with_columns(
        pl.col("DATE").str.to_datetime("%Y-%m-%d %H:%M", time_zone="UTC").dt.truncate("1h").alias("hour"),
        pl.col("HOURLYDRYBULBTEMPF").str.strip_chars_end("s").cast(pl.Float64, strict=False).alias("temperature_f"),
    )
    hours = routine.group_by("hour").agg(pl.col("temperature_f").last())
    spine = pl.datetime_range(hours["hour"].min(), hours["hour"].max(), "1h", eager=True,
                              time_zone="UTC").alias("hour").to_frame()
    return spine.join(hours, on="hour", how="left").with_columns(
        pl.lit(0.0).alias("precipitation_in"), pl.lit(50.0).alias("relative_humidity"),
        pl.lit(5.0).alias("wind_speed_mph"))


def main() -> None:
    if not LCD_FILE.is_file():
        raise SystemExit(f"{LCD_FILE} not found; the script needs ../shared/data/chicago beside the repository")
    observed = hourly_temperature(LCD_FILE)
    table = climatology(observed, datetime(2018, 1, 1, tzinfo=timezone.utc), ["temperature_f"], years=1)

    keyed = observed.with_columns(day_of_year(pl.col("hour")).alias("day_of_year"),
                                  pl.col("hour").dt.hour().cast(pl.Int32).alias("hour_of_day"))
    joined = keyed.join(table.select("day_of_year", "hour_of_day", pl.col("temperature_f").alias("mean")),
                        on=["day_of_year", "hour_of_day"], how="left", maintain_order="left")
    anomaly = (joined["temperature_f"] - joined["mean"]).fill_null(np.nan).to_numpy()
    print(f"{len(anomaly)} hours, {int((~np.isnan(anomaly)).sum())} with a temperature")

    print("| lag (h) | autocorrelation | implied tau (h) | exp(-lag / 24) |")
    print("|---|---|---|---|")
    for lag in LAGS:
        first, second = anomaly[:-lag], anomaly[lag:]
        both = ~np.isnan(first) & ~np.isnan(second)
        correlation = float(np.corrcoef(first[both], second[both])[0, 1])
        tau = -lag / math.log(correlation) if 0 < correlation < 1 else float("nan")
        print(f"| {lag} | {correlation:.3f} | {tau:.1f} | {math.exp(-lag / 24):.3f} |")


if __name__ == "__main__":
    main()
