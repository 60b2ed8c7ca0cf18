"""The page shell, styles and table helpers that the Bias Audit and Police Deployment reports share."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ml.reports.formatting import escape, format_number, is_missing
from ml.reports.maps import LeafletAssets

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; line-height: 1.45;
  padding: 0 1em; }
h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1em; }
caption { text-align: left; font-weight: bold; padding: 0.3em 0; }
th, td { border: 1px solid #ddd; padding: 3px 7px; text-align: right; vertical-align: top; }
th { background: #f4f4f4; } td:first-child, th:first-child, td:last-child:not(:nth-child(2)) { text-align: left; }
.banner { background: #c00; color: #fff; padding: 0.6em 1em; font-weight: bold; font-size: 1.1em; }
.gate-pass { background: #e3f2e1; border-left: 6px solid #2e7d32; padding: 0.6em 1em; }
.gate-fail { background: #fbe3e0; border-left: 6px solid #c62828; padding: 0.6em 1em; }
tr.failed td, tr.failed th { background: #fbe3e0; } tr.highlight td, tr.highlight th { background: #fff3d6; }
.interval { color: #555; font-size: 0.9em; } .missing { color: #777; font-style: italic; }
figure { margin: 1em 0; } figure svg { max-width: 100%; height: auto; }
figcaption { font-size: 0.9em; color: #333; max-width: 60em; }
.maps { display: flex; flex-wrap: wrap; gap: 24px; } .maps > figure { flex: 1 1 420px; }
.note { font-size: 0.85em; color: #555; } footer { margin-top: 3em; border-top: 1px solid #ccc; }
"""

NOT_AVAILABLE = "n/a"


def document(title: str, synthetic: bool, assets: LeafletAssets, body: Sequence[str]) -> str:
    """Wrap report sections in one HTML document that loads Leaflet once, in the head."""
    banner = ("<p class='banner' role='alert'>SYNTHETIC DATA: these results come from a generated "
              "jurisdiction and describe no real city.</p>" if synthetic else "")
    head = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{STYLE}</style>{assets.head}</head><body>")
    return "\n".join([head, banner, f"<h1>{escape(title)}</h1>", *[part for part in body if part], "</body></html>"])


def absent(section: str, reason: str) -> str:
    """State that a section's input is absent and why, in place of the section's content."""
    return f"<p class='missing'>{escape(section)} is not shown: {escape(reason)}</p>"


def value_interval(value: float | None, low: float | None, high: float | None,
                   formatter: Callable[[float | None], str] = format_number) -> str:
    """Write "value [low, high]" with the interval de-emphasised, or n/a for a missing value."""
    if is_missing(value):
        return NOT_AVAILABLE
    interval = "" if is_missing(low) or is_missing(high) else f"[{formatter(low)}, {formatter(high)}]"
    interval_html = f" <span class='interval'>{escape(interval)}</span>" if interval else ""
    return f"{escape(formatter(value))}{interval_html}"


def table(caption: str, header: Sequence[str], rows: Sequence[Sequence[str]], row_classes: Sequence[str] = ()) -> str:
    """Build a table whose first cell of each row is a row header. Cells are HTML already escaped."""
    head = "".join(f"<th scope='col'>{cell}</th>" for cell in header)
    body = []
    for index, row in enumerate(rows):
        css = f" class='{row_classes[index]}'" if index < len(row_classes) and row_classes[index] else ""
        cells = f"<th scope='row'>{row[0]}</th>" + "".join(f"<td>{cell}</td>" for cell in row[1:])
        body.append(f"<tr{css}>{cells}</tr>")
    return (f"<table><caption>{escape(caption)}</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def map_footnote(assets: LeafletAssets) -> str:
    """Say how the maps load, so a reader knows whether the page needs the network."""
    if assets.inline:
        return ("The interactive maps use Leaflet 1.9.4, inlined in this page from the django-js-lib-leaflet "
                "package, and load no map tiles, so the page opens offline. Where JavaScript is off, each map is "
                "shown as a static SVG instead.")
    return ("Leaflet was not installed with the report, so the interactive maps load it from a CDN and need the "
            "network. A static SVG copy of every map is shown below it, so the maps can be read offline.")
