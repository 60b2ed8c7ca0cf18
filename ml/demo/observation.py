"""Known-truth mode of the demo generator: victim reporting, police discovery and the truth file.

The incident process of ml/demo/incidents.py is the true offending. In known-truth mode the
crime files hold only the incidents that someone recorded, so the data has the same two
observation processes as real police records:

- reported crime: the victim of an incident in cell c reports it with probability r_c (an
  independent draw per incident, so the reported count of a cell is a binomial thinning of its
  true count);
- discovered crime: an incident that no victim reported is found by police with probability
  min(1, patrol_share_c * n_cells * detection_rate). `detection_rate` is the chance of finding
  an unreported incident when patrols are spread evenly (patrol_share_c = 1 / n_cells), so
  police find crime in proportion to where they patrol.

Reported and discovered incidents are written alike, and the CSVs have no column that
distinguishes them, because the real portal has none. Lum and Isaac (2016), "To predict and serve?",
Significance 13(5), DOI 10.1111/j.1740-9713.2016.00960.x, showed that a model trained on such
records learns where crime is recorded, not where it happens. Ensign, Friedler, Neville,
Scheidegger and Venkatasubramanian (2018), "Runaway Feedback Loops in Predictive Policing",
Proceedings of Machine Learning Research 81, describe the discovered-crime process.

`truth/cells.csv`, written beside the extracts, holds one row per cell (in cell index order)
with the planted truth and the counts of each process, over the whole window:

- `cell_id` (`RrrCcc`, as in boundaries/cells.geojson) and `beat` (the crime files' `Beat`);
- `planted_risk`: the cell's factor mu_c of the background rate (mean 1 over the cells);
- `expected_violent_per_day`: the expected number of true violent incidents per local day,
  from the background rate and the triggering (see `_expected_violent_counts`);
- `reporting_probability`, `patrol_share` (blank without discovery) and
  `discovery_probability` (0 without discovery);
- `true_violent`, `reported_violent`, `discovered_violent`, `written_violent`, and the same
  four counts for all incidents (`true_incidents`, ...). Written is reported plus discovered.

A written incident is one `Case Number` in the crime files. A row count differs from it
because the files also hold second victims (another ID under the same case number), stale
revisions and exact duplicates (see ml/demo/records.py).
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.demo.crime_files import _admin_codes
from ml.demo.files import _remove_stale_files, _write_bytes_atomically
from ml.demo.grid import _cell_ids, _Grid
from ml.demo.incidents import _Events

logger = logging.getLogger(__name__)

TRUTH_FILE = Path("truth") / "cells.csv"
TRUTH_HEADER: tuple[str, ...] = (
    "cell_id", "beat", "planted_risk", "expected_violent_per_day", "reporting_probability",
    "patrol_share", "discovery_probability",
    "true_violent", "reported_violent", "discovered_violent", "written_violent",
    "true_incidents", "reported_incidents", "discovered_incidents", "written_incidents",
)
"""Columns of `truth/cells.csv`, in file order."""

REPORTING_PATTERNS: dict[str, tuple[float, float]] = {
    "west_half_low": (0.3, 0.9),
    "east_half_low": (0.9, 0.3),
}
"""Named reporting patterns: (probability in the west half, probability in the east half).

The west half is the grid columns `col < cols // 2`, so an odd middle column belongs to the
east half.
"""

Reporting = float | Sequence[float] | np.ndarray | str
"""One probability for every cell, one per cell in cell index order, or a REPORTING_PATTERNS name."""


@dataclass(frozen=True)
class Discovery:
    """Police discovery of unreported incidents.

    `patrol_share` is the share of patrol time per cell, in cell index order, summing to 1.
    `detection_rate` is the probability of finding an unreported incident in a cell when
    patrols are spread evenly.
    """

    patrol_share: Sequence[float] | np.ndarray
    detection_rate: float


@dataclass(frozen=True)
class _Observation:
    """Per-cell probabilities of the two observation processes, and the per-event outcome."""

    reporting_probability: np.ndarray
    patrol_share: np.ndarray | None
    discovery_probability: np.ndarray
    reported: np.ndarray  # One flag per event.
    discovered: np.ndarray  # One flag per event, never set where `reported` is.

    @property
    def written(self) -> np.ndarray:
        return self.reported | self.discovered


def _reporting_probabilities(reporting: Reporting, grid: _Grid) -> np.ndarray:
    """Resolve `reporting` to one probability per cell, or raise ValueError naming the value."""
    if isinstance(reporting, str):
        if reporting not in REPORTING_PATTERNS:
            raise ValueError(
                f"Unknown demo reporting pattern {reporting!r}. Use one of "
                f"{sorted(REPORTING_PATTERNS)}, one probability, or one probability per cell."
            )
        west, east = REPORTING_PATTERNS[reporting]
        columns = np.arange(grid.cell_count) % grid.cols
        return np.where(columns < grid.cols // 2, west, east)

    probabilities = np.asarray(reporting, dtype=float)
    if probabilities.ndim == 0:
        _check_probabilities(probabilities.reshape(1), "reporting probability")
        return np.full(grid.cell_count, float(probabilities))

    _check_per_cell(probabilities, grid.cell_count, "reporting probabilities")
    _check_probabilities(probabilities, "reporting probability")
    return probabilities


def _discovery_probabilities(discovery: Discovery, grid: _Grid) -> tuple[np.ndarray, np.ndarray]:
    """Return (patrol share, discovery probability) per cell, or raise ValueError naming the value."""
    shares = np.asarray(discovery.patrol_share, dtype=float)
    _check_per_cell(shares, grid.cell_count, "patrol shares")
    _check_probabilities(shares, "patrol share")
    if not math.isclose(float(shares.sum()), 1.0, abs_tol=1e-9):
        raise ValueError(
            f"Invalid demo patrol shares: they sum to {float(shares.sum())!r}, not 1. "
            "Divide them by their sum."
        )

    _check_probabilities(np.array([discovery.detection_rate], dtype=float), "detection rate")
    probability = np.minimum(1.0, shares * grid.cell_count * discovery.detection_rate)
    return shares, probability


def _check_per_cell(values: np.ndarray, cell_count: int, name: str) -> None:
    if values.shape != (cell_count,):
        raise ValueError(
            f"Invalid demo {name}: got shape {values.shape}, but the grid has {cell_count} "
            "cells. Give one value per cell, in cell index order (row * cols + col)."
        )


def _check_probabilities(values: np.ndarray, name: str) -> None:
    invalid = np.flatnonzero(~((values >= 0.0) & (values <= 1.0)))
    if invalid.size:
        index = int(invalid[0])
        where = f" for cell {index}" if values.size > 1 else ""
        raise ValueError(
            f"Invalid demo {name} {float(values[index])!r}{where}: it must lie between 0 and 1."
        )


def _observe(rng: np.random.Generator, events: _Events, reporting_probability: np.ndarray,
             patrol_share: np.ndarray | None,
             discovery_probability: np.ndarray | None) -> _Observation:
    """Draw which events victims report and which of the rest police discover."""
    reported = rng.random(events.cell.size) < reporting_probability[events.cell]

    if discovery_probability is None:
        discovery_probability = np.zeros(reporting_probability.size)
        discovered = np.zeros(events.cell.size, dtype=bool)
    else:
        found = rng.random(events.cell.size) < discovery_probability[events.cell]
        discovered = ~reported & found

    return _Observation(
        reporting_probability=reporting_probability,
        patrol_share=patrol_share,
        discovery_probability=discovery_probability,
        reported=reported,
        discovered=discovered,
    )


def _keep_events(events: _Events, keep: np.ndarray) -> _Events:
    return _Events(utc=events.utc[keep], cell=events.cell[keep], violent=events.violent[keep])


def _write_truth_file(folder: Path, grid: _Grid, events: _Events, observation: _Observation,
                      cell_rates: np.ndarray, expected_violent_per_day: np.ndarray) -> Path:
    """Write `truth/cells.csv` under `folder` and return its path."""
    path = folder / TRUTH_FILE
    beats = _admin_codes(grid, np.arange(grid.cell_count))["beat"]
    counts = _count_per_cell(grid, events, observation)

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(TRUTH_HEADER)
    for cell, cell_id in enumerate(_cell_ids(grid)):
        patrol_share = ("" if observation.patrol_share is None
                        else repr(float(observation.patrol_share[cell])))
        writer.writerow([
            cell_id,
            beats[cell],
            repr(float(cell_rates[cell])),
            repr(float(expected_violent_per_day[cell])),
            repr(float(observation.reporting_probability[cell])),
            patrol_share,
            repr(float(observation.discovery_probability[cell])),
            *(int(column[cell]) for column in counts),
        ])

    _write_bytes_atomically(path, text.getvalue().encode("utf-8"))
    logger.info("Wrote the known truth of %d synthetic demo cells to %s", grid.cell_count, path)
    return path


def _count_per_cell(grid: _Grid, events: _Events,
                    observation: _Observation) -> list[np.ndarray]:
    """Count true, reported, discovered and written events per cell: violent, then all."""
    everything = np.ones(events.cell.size, dtype=bool)
    outcomes = (everything, observation.reported, observation.discovered, observation.written)
    counts = []

    for kind in (events.violent, everything):
        for outcome in outcomes:
            counts.append(np.bincount(events.cell[kind & outcome], minlength=grid.cell_count))
    return counts


def _remove_truth_file(folder: Path) -> None:
    """Delete a truth file left by an earlier known-truth run, so it never describes other files."""
    _remove_stale_files(folder / TRUTH_FILE.parent, TRUTH_FILE.name, [])
