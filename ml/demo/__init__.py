"""Write a synthetic demo jurisdiction in the layout of real portal and NOAA exports.

Riskcast runs on a built-in demo jurisdiction when a machine has no network and no real
data. This package writes that jurisdiction as files in the same layouts as the City of
Chicago crime and 311 exports and the NOAA Local Climatological Data (LCD) hourly file,
so the same ingest code reads demo and real extracts. ALL DATA WRITTEN HERE IS SYNTHETIC. No row
describes a real crime, person, address or weather observation. The grid starts at
latitude 40.0, longitude -100.0, just north of the Nebraska-Kansas border in a rural area
far from any large city, so it cannot be mistaken for a real one.

Modules, in the order a run uses them:

- `extracts`: `write_demo_extracts`, which seeds and runs the steps below.
- `clock`: time windows and America/Chicago UTC offsets.
- `grid`: the cell grid and its GeoJSON file.
- `geography`: the police districts and their synthetic demographics table.
- `weather`: the hourly weather simulation and the LCD files.
- `incidents`: the self-exciting incident process (Mohler et al. 2011).
- `tables`: the IUCR category, location and street name tables.
- `observation`: the known-truth mode, with victim reporting, police discovery and the
  truth file `truth/cells.csv`.
- `records`: crime rows and their deliberate data flaws.
- `crime_files`: the crime CSVs in the Chicago export layout.
- `service_requests`: the 311 request CSVs in two Chicago export layouts.
- `files`: the gzip CSV and atomic file writers.
"""

from __future__ import annotations

from ml.demo.crime_files import CRIME_HEADER
from ml.demo.extracts import DemoSummary, write_demo_extracts
from ml.demo.observation import REPORTING_PATTERNS, TRUTH_HEADER, Discovery
from ml.demo.tables import VIOLENT_FBI_CODES
from ml.demo.weather import LCD_HEADER

__all__ = [
    "CRIME_HEADER",
    "DemoSummary",
    "Discovery",
    "LCD_HEADER",
    "REPORTING_PATTERNS",
    "TRUTH_HEADER",
    "VIOLENT_FBI_CODES",
    "write_demo_extracts",
]
