"""A plain pandas build of the hourly cell features, kept as a reference for ``ml.features``.

``ml.features`` builds the panel from dense numpy arrays with prefix sums and one sparse product
per neighbour window. This module computes the same columns the way an analyst would write them
in pandas: a long cell-hour spine, ``groupby(...).rolling(..., closed="left")`` for trailing
windows, forward fills for "hours since", and merges for neighbours, weather and 311 counts. It is
slow on purpose and shares no code with the fast build beyond the constants of
``ml.feature_registry``, so tests can compare the two value for value and
``benchmarks/compare_features.py`` can time them side by side.

Every column of ``panel_schema(layout)`` is produced. The definitions are those of
``ml.feature_registry``; the inputs follow the ``ml.features.FeatureInputs`` contract.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import holidays
import pandas as pd

from ml.feature_registry import (
    CRIME_LAG_DAYS,
    HOURS_SINCE_CAP,
    PRECIPITATION_HISTORY_DAYS,
    PRECIPITATION_SINCE_CAP,
    REQUEST_LAG_DAYS,
    TEMPERATURE_CHANGE_DAYS,
    WEATHER_IMPUTATION,
    WEATHER_LEVELS,
    FeatureLayout,
    label_column,
    panel_schema,
)
from ml.features import LOOKBACK_HOURS, REQUEST_LOOKBACK_DAYS, UNMAPPED_CATEGORY, WEATHER_LOOKBACK_HOURS, FeatureInputs

ONE_HOUR = pd.Timedelta(hours=1)


def utc_hours(first: datetime, end: datetime) -> pd.DatetimeIndex:
    """Hour starts in ``[first, end)`` as a UTC index."""
    return pd.date_range(pd.Timestamp(first).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC"),
                         freq="h", inclusive="left", name="hour", unit="us")


def as_utc(column: pd.Series) -> pd.Series:
    return pd.to_datetime(column, utc=True).astype("datetime64[us, UTC]")


def dense_crime_table(counts: pd.DataFrame, cells: list[str], groups: list[str], first_hour: datetime,
                      end: datetime) -> pd.DataFrame:
    """Pivot sparse counts to one row per cell and hour of ``[first_hour, end)``, one column per crime group."""
    counts = counts.assign(hour=as_utc(counts["hour"]))
    wide = counts.pivot_table(index=["cell_id", "hour"], columns="crime_group", values="incidents",
                              aggfunc="sum", fill_value=0)
    spine = pd.MultiIndex.from_product([cells, utc_hours(first_hour, end)], names=["cell_id", "hour"])
    wide = wide.reindex(index=spine, columns=groups, fill_value=0)
    wide.columns.name = None
    return wide.reset_index()


def trailing_window_sums(table: pd.DataFrame, key: str, on: str, columns: list[str], window: str) -> pd.DataFrame:
    """Sum each column over ``[t - window, t)`` within each ``key``, for every row (an empty window sums to 0)."""
    rolled = table.groupby(key).rolling(window, on=on, closed="left")[columns].sum()
    return rolled.fillna(0).reset_index()


def hours_since_event(table: pd.DataFrame, key: str, flag: pd.Series, cap: int) -> pd.Series:
    """Hours from the last flagged row of the same key before each row, capped at ``cap``."""
    event_hour = table["hour"].where(flag)
    last_at_or_before = event_hour.groupby(table[key]).ffill()
    last_before = last_at_or_before.groupby(table[key]).shift(1)
    since = (table["hour"] - last_before) / ONE_HOUR
    return since.fillna(cap).clip(upper=cap)


def crime_features(inputs: FeatureInputs, layout: FeatureLayout, cells: list[str], start: datetime,
                   end: datetime) -> pd.DataFrame:
    """Lag counts per group, all-crime count, hours since each target, labels and history flag."""
    first_hour = start - timedelta(hours=LOOKBACK_HOURS)
    categories = sorted(set(layout.categories) | {UNMAPPED_CATEGORY})
    groups = sorted(set(layout.groups) | set(categories))
    table = dense_crime_table(inputs.crime_counts.to_pandas(), cells, groups, first_hour, end)
    table["all_crime"] = table[categories].sum(axis=1)

    features = table[["cell_id", "hour"]].copy()
    for days in CRIME_LAG_DAYS:
        sums = trailing_window_sums(table, "cell_id", "hour", list(layout.groups), f"{days * 24}h")
        for group in layout.groups:
            features[f"{group}_{days}d"] = sums[group].to_numpy()
    weekly = trailing_window_sums(table, "cell_id", "hour", ["all_crime"], "168h")
    features["all_crime_7d"] = weekly["all_crime"].to_numpy()

    for target in layout.targets:
        features[f"hours_since_{target}"] = hours_since_event(table, "cell_id", table[target] > 0, HOURS_SINCE_CAP)
        features[label_column(target)] = table[target]

    data_start = pd.Timestamp(layout.data_start).tz_localize("UTC")
    features["history_incomplete"] = features["hour"] - pd.Timedelta(hours=LOOKBACK_HOURS) < data_start
    return features[features["hour"] >= pd.Timestamp(start)].reset_index(drop=True)


def neighbour_features(inputs: FeatureInputs, layout: FeatureLayout, cells: list[str],
                       own: pd.DataFrame) -> pd.DataFrame:
    """Mean of each target lag over a cell's neighbours, the missing flags and the neighbour count."""
    pairs = inputs.neighbours.to_pandas()[["cell_id", "neighbour_id"]]
    pairs = pairs[pairs["cell_id"].isin(cells) & pairs["neighbour_id"].isin(cells)]
    pairs = pairs[pairs["cell_id"] != pairs["neighbour_id"]].drop_duplicates()
    counts = pairs.groupby("cell_id").size().rename("neighbour_count")
    counts = counts.reindex(cells, fill_value=0).rename_axis("cell_id").reset_index()

    lag_columns = [f"{target}_{days}d" for target in layout.targets for days in CRIME_LAG_DAYS]
    neighbour_lags = own[["cell_id", "hour", *lag_columns]].rename(columns={"cell_id": "neighbour_id"})
    joined = pairs.merge(neighbour_lags, on="neighbour_id")
    means = joined.groupby(["cell_id", "hour"])[lag_columns].mean()
    means.columns = [f"nbr_{name}" for name in lag_columns]

    result = own[["cell_id", "hour"]].merge(means.reset_index(), on=["cell_id", "hour"], how="left")
    result = result.merge(counts, on="cell_id", how="left")
    for name in lag_columns:
        result[f"nbr_{name}_missing"] = result["neighbour_count"] == 0
        result[f"nbr_{name}"] = result[f"nbr_{name}"].fillna(0.0)
    return result


def weather_features(weather: pd.DataFrame | None, start: datetime, end: datetime) -> pd.DataFrame:
    """Per-hour weather of the previous hour, temperature changes and precipitation history."""
    hours = utc_hours(start - timedelta(hours=WEATHER_LOOKBACK_HOURS), end)
    if weather is None:
        weather = pd.DataFrame({"hour": pd.Series(dtype="datetime64[us, UTC]")})
    weather = weather.assign(hour=as_utc(weather["hour"])).set_index("hour")
    series = pd.DataFrame(index=hours)
    for name in WEATHER_LEVELS:
        values = weather[name] if name in weather.columns else pd.Series(dtype=float)
        series[name] = pd.to_numeric(values, errors="coerce").astype(float).reindex(hours)
    trace = weather["precipitation_is_trace"] if "precipitation_is_trace" in weather.columns else pd.Series(dtype=float)
    series["trace"] = trace.astype(float).reindex(hours).fillna(0.0) > 0

    result = pd.DataFrame(index=hours)
    previous = series.shift(1)
    for name, imputed in WEATHER_IMPUTATION.items():
        result[f"{name}_missing"] = previous[name].isna()
        result[name] = previous[name].fillna(imputed)

    for days in TEMPERATURE_CHANGE_DAYS:
        change = previous["temperature_f"] - series["temperature_f"].shift(1 + days * 24)
        result[f"temperature_change_{days}d_missing"] = change.isna()
        result[f"temperature_change_{days}d"] = change.fillna(0.0)

    observed = series["precipitation_in"].notna()
    wet = observed & ((series["precipitation_in"].fillna(0.0) > 0) | series["trace"])
    for days in PRECIPITATION_HISTORY_DAYS:
        window = days * 24
        seen = observed.astype(int).rolling(f"{window}h", closed="left").sum().fillna(0)
        rained = wet.astype(int).rolling(f"{window}h", closed="left").sum().fillna(0)
        too_few = seen * 2 < window
        result[f"precipitation_hours_{days}d_missing"] = too_few
        result[f"precipitation_hours_{days}d"] = (rained * window / seen).where(~too_few, 0.0)

    frame = pd.DataFrame({"hour": hours, "key": 0})
    since = hours_since_event(frame, "key", pd.Series(wet.to_numpy()), PRECIPITATION_SINCE_CAP)
    unseen = observed.astype(int).rolling(f"{PRECIPITATION_SINCE_CAP}h", closed="left").sum().fillna(0) == 0
    result["hours_since_precipitation_missing"] = unseen
    result["hours_since_precipitation"] = since.where(~unseen.to_numpy(), float(PRECIPITATION_SINCE_CAP)).to_numpy()
    result = result[result.index >= pd.Timestamp(start)]
    return result.rename_axis("hour").reset_index()


def request_features(requests: pd.DataFrame | None, layout: FeatureLayout, cells: list[str],
                     local_dates: pd.Series) -> pd.DataFrame:
    """311 sums per type over the local days before each date, per cell and local date."""
    first_day = local_dates.min() - pd.Timedelta(days=REQUEST_LOOKBACK_DAYS)
    days = pd.date_range(first_day, local_dates.max(), freq="D", name="local_date", unit="us")
    types = list(layout.request_types)
    if requests is None:
        requests = pd.DataFrame({"cell_id": [], "local_date": [], "request_type": [], "requests": []})
    requests = requests[requests["cell_id"].isin(cells) & requests["request_type"].isin(types)]
    requests = requests.assign(local_date=pd.to_datetime(requests["local_date"]).astype("datetime64[us]"))

    wide = requests.pivot_table(index=["cell_id", "local_date"], columns="request_type", values="requests",
                                aggfunc="sum", fill_value=0)
    spine = pd.MultiIndex.from_product([cells, days], names=["cell_id", "local_date"])
    wide = wide.reindex(index=spine, columns=types, fill_value=0)
    wide.columns.name = None
    table = wide.reset_index()

    city_total = table.groupby("local_date")[types].sum().sum(axis=1)
    empty_day = (city_total == 0).astype(int)
    result = table[["cell_id", "local_date"]].copy()
    for lag in REQUEST_LAG_DAYS:
        sums = trailing_window_sums(table, "cell_id", "local_date", types, f"{lag}D")
        missing = empty_day.rolling(f"{lag}D", closed="left").sum().fillna(0) > 0
        for request_type in types:
            result[f"requests_{request_type}_{lag}d"] = sums[request_type].to_numpy()
            result[f"requests_{request_type}_{lag}d_missing"] = result["local_date"].map(missing).to_numpy()
    return result


def calendar_table(hours: pd.DatetimeIndex, time_zone: str, country: str, subdivision: str | None) -> pd.DataFrame:
    """Local hour, weekday (0 = Monday), month, holiday flag and local date of each UTC hour."""
    local = hours.tz_convert(time_zone)
    calendar = holidays.country_holidays(country, subdiv=subdivision, years=sorted(set(local.year)))
    local_dates = pd.Series(local.date)
    return pd.DataFrame({
        "hour": hours,
        "local_hour": local.hour,
        "day_of_week": local.day_of_week,
        "month": local.month,
        "is_holiday": local_dates.map(lambda day: day in calendar).to_numpy(),
        "local_date": pd.to_datetime(local_dates).astype("datetime64[us]").to_numpy(),
    })


def cell_table(cells: pd.DataFrame) -> pd.DataFrame:
    """Area and population per cell, the population imputed with the median of the known values."""
    population = cells["population"].astype(float)
    median = population.median() if population.notna().any() else 0.0
    return pd.DataFrame({
        "cell_id": cells["cell_id"],
        "area_km2": cells["area_km2"].astype(float),
        "population_missing": population.isna(),
        "population": population.fillna(median),
    })


def pandas_cell_hour_features(inputs: FeatureInputs, layout: FeatureLayout, start: datetime, end: datetime,
                              time_zone: str, holiday_country: str = "US",
                              holiday_subdivision: str | None = None) -> pd.DataFrame:
    """Build the feature panel of ``[start, end)`` with pandas, sorted by hour then cell.

    The columns are those of ``panel_schema(layout)`` in that order. Values are equal to
    ``ml.features.build_cell_hour_features`` up to float32 rounding, but the types are pandas'
    defaults (int64, float64, bool) rather than the stored ones.
    """
    cells_frame = inputs.cells.to_pandas().sort_values("cell_id")
    cells = cells_frame["cell_id"].tolist()

    crimes = crime_features(inputs, layout, cells, start, end)
    neighbours = neighbour_features(inputs, layout, cells, crimes)
    calendar = calendar_table(utc_hours(start, end), time_zone, holiday_country, holiday_subdivision)
    weather = inputs.weather.to_pandas() if inputs.weather is not None else None

    panel = crimes.merge(neighbours, on=["cell_id", "hour"])
    panel = panel.merge(calendar, on="hour").merge(weather_features(weather, start, end), on="hour", how="left")
    panel = panel.merge(cell_table(cells_frame), on="cell_id")
    if layout.request_types:
        requests = inputs.requests.to_pandas() if inputs.requests is not None else None
        daily = request_features(requests, layout, cells, calendar["local_date"])
        panel = panel.merge(daily, on=["cell_id", "local_date"], how="left")

    panel = panel.sort_values(["hour", "cell_id"]).reset_index(drop=True)
    return panel[list(panel_schema(layout))]

