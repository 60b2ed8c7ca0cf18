"""The audit report's cell maps: legends for every spread of values, and escaped labels."""

from __future__ import annotations

import pandas as pd

from orchestration.audit_report import cell_map

SQUARE = "M 0 0 L 1 0 L 1 1 Z"


def cells(values: list[float | None], ids: list[str] | None = None) -> pd.DataFrame:
    ids = ids or [f"C{index}" for index in range(len(values))]
    return pd.DataFrame({"cell_id": ids, "svg_path": [SQUARE] * len(values), "value": values,
                         "min_lon": [-87.7] * len(values), "max_lon": [-87.6] * len(values),
                         "min_lat": [41.8] * len(values), "max_lat": [41.9] * len(values)})


def test_map_of_zeros_has_a_legend() -> None:
    """A map where every cell is 0, such as no unlocated records anywhere, still renders."""
    html = cell_map(cells([0.0, 0.0, None]), "value", "Unlocated share", str)

    assert "every value" in html
    assert html.count("<path") == 3
    assert html.count('fill="#ffffb2"') == 2


def test_map_with_spread_values_has_class_breaks() -> None:
    html = cell_map(cells([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), "value", "Records", str)

    assert "below " in html
    assert "from " in html


def test_map_escapes_cell_ids() -> None:
    html = cell_map(cells([1.0], ids=["<script>x</script>"]), "value", "Records", str)

    assert "<script>" not in html
    assert "&lt;script&gt;" in html
