"""A bounded fuzz target for the CSV ingest path of crime extracts.

Hypothesis writes CSV files (random bytes, or Chicago's header with mutated rows: quotes, embedded
newlines, a byte order mark, Latin-1 bytes, missing and extra columns, huge numbers), some of
them gzip-compressed or cut short, and reads
them with ``read_crime_extracts``, the reader behind the ``raw_crime_incidents`` asset. Each file
either reads, with every parsed row either kept or counted as blank, or raises ``ExtractError``.
Any other exception is a bug in the reader.

The example count defaults to a value that runs in about 20 seconds. Set
``RISKCAST_FUZZ_EXAMPLES`` to run longer, for example ``RISKCAST_FUZZ_EXAMPLES=20000``.
"""

from __future__ import annotations

import gzip
import os
import tempfile
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestration.ingest import ExtractError, read_crime_extracts
from orchestration.jurisdiction import OPTIONAL_CRIME_FIELDS, REQUIRED_CRIME_FIELDS, load_jurisdiction

CHICAGO = load_jurisdiction("chicago")
CONFIG = CHICAGO.crimes.model_copy(update={"files": "crimes.csv*"})
HEADER = list(CONFIG.columns.values())
EXAMPLES = int(os.environ.get("RISKCAST_FUZZ_EXAMPLES", "3000"))

GOOD_ROW = {
    "ID": "13311263", "Case Number": "JG503434", "Date": "07/29/2023 03:39:00 AM", "IUCR": "0486",
    "Primary Type": "BATTERY", "Location Description": "STREET", "Beat": "1021", "District": "010",
    "Community Area": "29", "FBI Code": "08B", "Updated On": "08/05/2023 03:40:48 PM",
    "Latitude": "41.857", "Longitude": "-87.713", "Arrest": "false",
}
ODD_TEXT = st.sampled_from([
    "", " ", '"', '""', "a,b", "line\nbreak", "line\r\nbreak", "\ufeff", "é", "\x00",
    "9" * 400, "-1e309", "NaN", "13/45/2023 99:99:99 PM", "2023-07-29T03:39:00", "null",
])
FIELD_VALUE = st.one_of(st.text(max_size=12), ODD_TEXT)


def quote(value: str) -> str:
    """Quote a CSV field the way a spreadsheet export does when it needs to."""
    if any(mark in value for mark in (",", '"', "\n", "\r")):
        return '"' + value.replace('"', '""') + '"'
    return value


@st.composite
def mutated_rows(draw: st.DrawFn) -> list[list[str]]:
    """Rows of Chicago's columns with some fields replaced, dropped or added."""
    rows = []
    for _ in range(draw(st.integers(0, 6))):
        row = [GOOD_ROW[name] for name in HEADER]
        for _ in range(draw(st.integers(0, 2))):
            row[draw(st.integers(0, len(row) - 1))] = draw(FIELD_VALUE)
        cut = draw(st.sampled_from([len(row)] * 6 + [len(row) - 1, len(row) + 1, 1]))
        row = row[:cut] + [draw(FIELD_VALUE) for _ in range(cut - len(row))]
        rows.append(row)
    return rows


@st.composite
def csv_bytes(draw: st.DrawFn) -> bytes:
    """A CSV file: random bytes, or the real header with mutated rows in one of several encodings."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=300))

    header = list(HEADER)
    if draw(st.integers(0, 4)) == 0:
        header = [name for name in header if draw(st.integers(0, 7)) != 0]
    if draw(st.integers(0, 5)) == 0:
        header.append(draw(st.sampled_from(["Date", "ID", "", "extra"])))
    lines = [",".join(quote(name) for name in header)]
    lines += [",".join(quote(value) for value in row) for row in draw(mutated_rows())]
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = newline.join(lines) + draw(st.sampled_from(["", newline, newline * 3]))

    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1"]))
    return text.encode(encoding, errors="replace")


@st.composite
def extract_files(draw: st.DrawFn) -> tuple[str, bytes]:
    """An extract's file name and content: plain CSV, or gzip-compressed and possibly truncated."""
    content = draw(csv_bytes())
    if draw(st.integers(0, 4)) != 0:
        return "crimes.csv", content
    compressed = gzip.compress(content)
    return "crimes.csv.gz", compressed[:draw(st.integers(0, len(compressed)))]


def parsed_rows(path: Path) -> int:
    """Count the data rows polars parses from the file, the count the reader must account for."""
    return pl.read_csv(path, infer_schema=False, encoding="utf8-lossy", raise_if_empty=False).height


def check_extract(name: str, content: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(content)
        try:
            extract = read_crime_extracts(Path(folder), CONFIG)
        except ExtractError as error:
            assert name in str(error)
            return

        frame = extract.frame
        assert frame.height + extract.blank_rows_skipped == parsed_rows(path)
        assert frame.columns[:len(REQUIRED_CRIME_FIELDS + OPTIONAL_CRIME_FIELDS)] == list(
            REQUIRED_CRIME_FIELDS + OPTIONAL_CRIME_FIELDS)
        assert frame["source_row"].is_unique().all()
        assert frame["source_row"].min() is None or frame["source_row"].min() >= 2
        assert set(frame["source_file"].to_list()) <= {name}


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(extract_files())
def test_csv_ingest_reads_or_rejects(extract: tuple[str, bytes]) -> None:
    check_extract(*extract)
