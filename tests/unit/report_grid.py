"""A 4 x 4 grid of square cells with hand-set forecasts, shared by the map and report tests.

Cells are 0.01 degrees square near Chicago and named "c<column><row>", except cell (3, 3), whose
id is markup, so the tests can check that every renderer escapes it. The ensemble's risk is
highest in column 3 (the "east" group) except in the markup cell, and also high in c00, so at
25% coverage it flags c30, c31, c32 and c00 in every hour. CompSTAT's risk is highest in row 0,
so it flags c00, c10, c20 and c30.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser

import polars as pl

MARKUP_ID = '<script>alert("cell")</script>'
START = datetime(2024, 3, 4, tzinfo=timezone.utc)


def cell_id(column: int, row: int) -> str:
    return MARKUP_ID if (column, row) == (3, 3) else f"c{column}{row}"


def square(column: int, row: int) -> str:
    x, y = -87.70 + column * 0.01, 41.80 + row * 0.01
    ring = [[x, y], [x + 0.01, y], [x + 0.01, y + 0.01], [x, y + 0.01], [x, y]]
    return json.dumps({"type": "Polygon", "coordinates": [ring]})


def grid_cells() -> pl.DataFrame:
    """Return cell_id, geojson, column and row of the 16 cells."""
    rows = [{"cell_id": cell_id(column, row), "geojson": square(column, row), "column": column, "row": row}
            for column in range(4) for row in range(4)]
    return pl.DataFrame(rows)


def demographics() -> pl.DataFrame:
    """Return population, share_x (1.0 in column 3) and share_w (1.0 in column 0) per cell.

    East cells have 100 residents and the others 400 / 3, so the tied east cells' weighted
    mid-rank is (1600 + 200) / 2000 = 0.9: quintile 5 of share_x contains exactly column 3, and
    quintile 5 of share_w exactly column 0.
    """
    cells = grid_cells()
    east, west = pl.col("column") == 3, pl.col("column") == 0
    return cells.select(
        "cell_id",
        pl.when(east).then(100.0).otherwise(400.0 / 3).alias("population"),
        pl.when(east).then(1.0).otherwise(pl.col("column") * 0.2 + pl.col("row") * 0.01).alias("share_x"),
        pl.when(west).then(1.0).otherwise(0.5 - pl.col("column") * 0.1 - pl.col("row") * 0.01).alias("share_w"),
    )


def forecasts(days: int) -> pl.DataFrame:
    """Return hourly forecasts: cell_id, hour, crime_count, area_km2, ensemble and compstat.

    One incident a day falls in cell c31 at 02:00 UTC and one in c00 at 10:00 UTC.
    """
    cells = grid_cells()
    hours = [START + timedelta(hours=offset) for offset in range(days * 24)]
    frame = cells.join(pl.DataFrame({"hour": hours}), how="cross")
    crime = (((pl.col("cell_id") == "c31") & (pl.col("hour").dt.hour() == 2))
             | ((pl.col("cell_id") == "c00") & (pl.col("hour").dt.hour() == 10)))
    return frame.select(
        "cell_id", "hour",
        crime.cast(pl.Int64).alias("crime_count"),
        pl.lit(1.0).alias("area_km2"),
        pl.when(pl.col("cell_id") == "c00").then(0.5)
        .when(pl.col("cell_id") == MARKUP_ID).then(0.0)
        .otherwise(0.001 + 0.01 * pl.col("column") + 0.0001 * pl.col("row")).alias("ensemble"),
        (0.1 + 0.5 * (3 - pl.col("row")) + 0.01 * pl.col("column")).alias("compstat"),
    ).sort("hour", "cell_id")


class TextParser(HTMLParser):
    """Collect the visible text (outside script, style and noscript) and every table's rows."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tables: list[dict] = []
        self.cell: list[str] | None = None
        self.skip = 0
        self.in_caption = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in ("script", "style", "noscript"):
            self.skip += 1
        elif tag == "table":
            self.tables.append({"caption": "", "rows": []})
        elif tag == "tr" and self.tables:
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th") and self.tables:
            self.cell = []
        elif tag == "caption":
            self.in_caption = True

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "noscript"):
            self.skip -= 1
        elif tag in ("td", "th") and self.cell is not None:
            self.tables[-1]["rows"][-1].append(" ".join(" ".join(self.cell).split()))
            self.cell = None
        elif tag == "caption":
            self.in_caption = False

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        self.text.append(data)
        if self.in_caption:
            self.tables[-1]["caption"] += data
        elif self.cell is not None:
            self.cell.append(data)


def parse(page: str) -> TextParser:
    parser = TextParser()
    parser.feed(page)
    parser.close()
    return parser


def visible_text(page: str) -> str:
    return " ".join(" ".join(parse(page).text).split())


def table_with(page: str, caption_start: str) -> list[list[str]]:
    """Return the rows of the first table whose caption starts with ``caption_start``."""
    for found in parse(page).tables:
        if found["caption"].startswith(caption_start):
            return found["rows"]
    raise AssertionError(f"no table captioned {caption_start!r}")
