"""Choropleth maps of cells for the static HTML reports: interactive folium maps with a static SVG copy.

Each map colours the cells' polygons by one value per cell. Numbers get a sequential scale of six
quantile classes (ColorBrewer "YlOrRd", as in the Data Input Audit report).
Categories and yes/no values get the colour-blind-safe palette of Okabe & Ito (2008), "Color
Universal Design". Cells without a value are grey.

The interactive map is a folium ``Map`` with ``tiles=None``, so it fetches no map tiles. Its bounds
fit the cells, and each cell's tooltip gives its id and value, HTML-escaped because folium's
GeoJsonTooltip writes property values into the tooltip as HTML. The fragment holds only the map's
``<div>`` and ``<script>``. Leaflet itself is loaded once per page by ``leaflet_assets``, which
inlines leaflet.js and leaflet.css (Leaflet 1.9.4) from the ``django-js-lib-leaflet`` package, so a
report opened from disk needs no network. Folium 0.20's other default scripts (jQuery, Bootstrap,
Font Awesome, awesome-markers) are left out because these maps use none of them. When that package
is missing, the page links Leaflet from folium's CDN and shows the static map under each
interactive one, so every map can still be read offline.

The static copy is an inline SVG drawn with matplotlib. Element ids of the folium map are derived
from ``map_id``, so rendering the same inputs twice gives the same bytes.
"""

from __future__ import annotations

import html
import json
import logging
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib.resources import files
from typing import Any, Literal

import duckdb
import folium
import numpy as np
import polars as pl
from matplotlib.collections import PatchCollection
from matplotlib.patches import PathPatch
from matplotlib.path import Path as MatplotlibPath

from ml.reports.figures import figure_svg, new_figure
from ml.reports.formatting import escape, format_number

logger = logging.getLogger(__name__)

# ColorBrewer YlOrRd with 6 classes, light to dark.
SEQUENTIAL_PALETTE = ("#ffffb2", "#fed976", "#feb24c", "#fd8d3c", "#f03b20", "#bd0026")
# Okabe & Ito colours for categories, in order of use.
CATEGORICAL_PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7", "#F0E442", "#000000")
BOOLEAN_COLOURS = {True: "#D55E00", False: "#f2f2f2"}
NO_DATA_COLOUR = "#bdbdbd"
OUTLINE_COLOUR = "#555555"
FOLIUM_LEAFLET_CDN = {
    "js": "https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.js",
    "css": "https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.css",
}
LEAFLET_PACKAGE = "js_lib_leaflet"
MAP_ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
MAP_HEIGHT_PIXELS = 420
STATIC_WIDTH_INCHES = 4.2

# Page CSS that the maps need, in addition to leaflet.css.
MAP_STYLE = """
.cell-map { margin: 1em 0; max-width: 760px; }
.cell-map .leaflet-box { height: %dpx; border: 1px solid #ccc; }
.cell-map .folium-map { width: 100%%; height: 100%%; }
.cell-map .leaflet-container { background: #fff; font-size: 0.8rem; }
.cell-map .maptip th { text-align: left; padding-right: 8px; }
.map-legend { font-size: 0.85em; margin: 0.3em 0; }
.map-legend .swatch { display: inline-block; width: 1.1em; height: 0.9em; margin: 0 0.3em 0 0.8em;
  border: 1px solid #999; vertical-align: middle; }
.map-static svg { max-width: 100%%; height: auto; }
""" % MAP_HEIGHT_PIXELS

StaticMode = Literal["noscript", "visible", "none"]


@dataclass(frozen=True)
class LeafletAssets:
    """The ``<head>`` markup that loads Leaflet, and whether it is inlined (True) or linked from a CDN."""

    head: str
    inline: bool


@dataclass(frozen=True)
class MapLegendEntry:
    colour: str
    label: str


@dataclass(frozen=True)
class CellColours:
    """The fill colour and display text of every cell, and the legend that explains the colours."""

    colours: list[str]
    texts: list[str]
    legend: list[MapLegendEntry]


def leaflet_assets() -> LeafletAssets:
    """Return the markup that loads Leaflet once per page: inlined when its package is installed."""
    try:
        folder = files(LEAFLET_PACKAGE) / "static" / LEAFLET_PACKAGE
        script = (folder / "leaflet.js").read_text(encoding="utf-8")
        style = (folder / "leaflet.css").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError) as error:
        logger.warning("Leaflet is not inlined (%s); the maps link it from a CDN. Install "
                       "django-js-lib-leaflet==1.9.4.1 for reports that open offline.", error)
        head = (f'<link rel="stylesheet" href="{FOLIUM_LEAFLET_CDN["css"]}">'
                f'<script src="{FOLIUM_LEAFLET_CDN["js"]}"></script>')
        return LeafletAssets(head=head + f"<style>{MAP_STYLE}</style>", inline=False)

    # Inlined text must not close its own element early.
    if "</script" in script.lower() or "</style" in style.lower():
        raise ValueError(f"the Leaflet files of {LEAFLET_PACKAGE} contain a closing script or style tag, "
                         "so they cannot be inlined; pin django-js-lib-leaflet==1.9.4.1")
    return LeafletAssets(head=f"<style>{style}</style><style>{MAP_STYLE}</style><script>{script}</script>",
                         inline=True)


# Report outlines are simplified to about 10 m and snapped to about 1 m. That makes Chicago's 801
# tract outlines 20 times smaller (3.8 MB of GeoJSON to 0.18 MB), and every map embeds its own copy.
DEFAULT_SIMPLIFY_DEGREES = 0.0001
COORDINATE_GRID_DEGREES = 0.00001


def cell_geojson(connection: duckdb.DuckDBPyConnection, table: str = "marts.dim_cells",
                 simplify_degrees: float = DEFAULT_SIMPLIFY_DEGREES) -> pl.DataFrame:
    """Read every cell's polygon from the warehouse as GeoJSON text: columns cell_id and geojson.

    ``connection`` is a DuckDB connection with the spatial extension loaded, as
    ``orchestration.warehouse.open_connection(path, spatial=True)`` opens it. ``table`` has
    cell_id and geometry_wkt (WGS 84 longitude and latitude). Cells with a null geometry get a
    null geojson, which the maps count and leave undrawn. Outlines are simplified within
    ``simplify_degrees`` (0 keeps them exact) and their coordinates snapped to a 0.00001-degree grid.
    """
    geometry = "ST_GeomFromText(geometry_wkt)"
    if simplify_degrees > 0:
        geometry = (f"ST_ReducePrecision(ST_SimplifyPreserveTopology({geometry}, {simplify_degrees!r}), "
                    f"{COORDINATE_GRID_DEGREES!r})")
    query = f"SELECT cell_id, ST_AsGeoJSON({geometry}) AS geojson FROM {table} ORDER BY cell_id"
    try:
        frame = connection.execute(query).pl()
    except duckdb.Error as error:
        raise RuntimeError(f"could not read cell polygons from {table}: {error}. Open the warehouse with "
                           "spatial=True and build marts.dim_cells first.") from error
    logger.info("read %d cell polygons from %s, %d without geometry", frame.height, table,
                frame["geojson"].null_count())
    return frame.select(pl.col("cell_id").cast(pl.String), pl.col("geojson").cast(pl.String))


# Colours and legends.

def quantile_breaks(values: np.ndarray) -> list[float]:
    """Return the distinct inner class breaks that split ``values`` into up to six quantile classes."""
    if values.size == 0:
        return []
    levels = [index / len(SEQUENTIAL_PALETTE) for index in range(1, len(SEQUENTIAL_PALETTE))]
    quantiles = np.quantile(values, levels)
    return sorted({float(value) for value in quantiles if values.min() <= value < values.max()})


def numeric_colours(values: list[float | None], formatter: Callable[[Any], str]) -> CellColours:
    """Colour numbers by quantile class: class i contains values above break i-1 and up to break i."""
    present = np.array([value for value in values if value is not None and math.isfinite(value)], dtype=float)
    breaks = quantile_breaks(present)
    palette = spread_palette(len(breaks) + 1)

    colours, texts = [], []
    for value in values:
        if value is None or not math.isfinite(value):
            colours.append(NO_DATA_COLOUR)
            texts.append("no data")
            continue
        colours.append(palette[sum(value > limit for limit in breaks)])
        texts.append(formatter(value))

    legend = []
    if present.size and present.min() == present.max():
        legend.append(MapLegendEntry(palette[0], f"every cell: {formatter(float(present.min()))}"))
    elif present.size:
        edges = [float(present.min()), *breaks, float(present.max())]
        for index in range(len(edges) - 1):
            low, high = formatter(edges[index]), formatter(edges[index + 1])
            if index > 0:
                label = f"above {low} to {high}"
            else:
                label = low if edges[0] == edges[1] else f"{low} to {high}"
            legend.append(MapLegendEntry(palette[index], label))
    if len(present) < len(values):
        legend.append(MapLegendEntry(NO_DATA_COLOUR, "no data"))
    return CellColours(colours, texts, legend)


def spread_palette(classes: int) -> list[str]:
    """Pick ``classes`` colours spread over the sequential palette, keeping its lightest and darkest."""
    if classes <= 1:
        return [SEQUENTIAL_PALETTE[-1]]
    last = len(SEQUENTIAL_PALETTE) - 1
    return [SEQUENTIAL_PALETTE[round(index * last / (classes - 1))] for index in range(classes)]


def categorical_colours(values: list[Any], labels: Mapping[Any, str] | None) -> CellColours:
    """Colour categories; booleans read "yes" and "no" unless ``labels`` names them."""
    present = [value for value in values if value is not None]
    is_boolean = bool(present) and all(isinstance(value, bool) for value in present)
    if is_boolean:
        categories: list[Any] = [True, False]
        palette = {True: BOOLEAN_COLOURS[True], False: BOOLEAN_COLOURS[False]}
        default_labels: dict[Any, str] = {True: "yes", False: "no"}
    else:
        categories = sorted(set(present), key=str)
        palette = {category: CATEGORICAL_PALETTE[index % len(CATEGORICAL_PALETTE)]
                   for index, category in enumerate(categories)}
        default_labels = {category: str(category) for category in categories}
    names = {**default_labels, **(labels or {})}

    colours = [NO_DATA_COLOUR if value is None else palette[value] for value in values]
    texts = ["no data" if value is None else names[value] for value in values]
    legend = [MapLegendEntry(palette[category], names[category]) for category in categories if category in present]
    if len(present) < len(values):
        legend.append(MapLegendEntry(NO_DATA_COLOUR, "no data"))
    return CellColours(colours, texts, legend)


def legend_html(title: str, legend: list[MapLegendEntry]) -> str:
    swatches = "".join(f"<span class='swatch' style='background:{entry.colour}'></span>{escape(entry.label)}"
                       for entry in legend)
    return f"<div class='map-legend' aria-label='legend of {escape(title)}'>{swatches}</div>"


# Geometry.

def parse_geometries(cell_ids: list[str], texts: list[str | None]) -> list[dict | None]:
    """Parse each cell's GeoJSON text, raising ValueError that names the cell on invalid JSON or type."""
    geometries: list[dict | None] = []
    for cell_id, text in zip(cell_ids, texts):
        if text is None:
            geometries.append(None)
            continue
        try:
            geometry = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"cell {cell_id!r} has invalid GeoJSON ({error}); pass ST_AsGeoJSON output, "
                             "as cell_geojson reads it") from error
        if not isinstance(geometry, dict) or geometry.get("type") not in ("Polygon", "MultiPolygon"):
            kind = geometry.get("type") if isinstance(geometry, dict) else type(geometry).__name__
            raise ValueError(f"cell {cell_id!r} has a GeoJSON {kind!r}, but a cell map needs a Polygon or "
                             "MultiPolygon")
        geometries.append(geometry)
    return geometries


def polygon_rings(geometry: dict) -> Iterator[list[list[list[float]]]]:
    """Yield each polygon of a Polygon or MultiPolygon as its list of rings (outer ring first)."""
    if geometry["type"] == "Polygon":
        yield geometry["coordinates"]
    else:
        yield from geometry["coordinates"]


def geometry_bounds(geometries: list[dict]) -> tuple[float, float, float, float]:
    """Return (min longitude, min latitude, max longitude, max latitude) over every ring."""
    points = np.array([point[:2] for geometry in geometries for polygon in polygon_rings(geometry)
                       for ring in polygon for point in ring], dtype=float)
    return (float(points[:, 0].min()), float(points[:, 1].min()), float(points[:, 0].max()),
            float(points[:, 1].max()))


# Interactive map.

def folium_map(map_id: str, features: list[dict], bounds: tuple[float, float, float, float],
               value_title: str) -> folium.Map:
    """Build a tile-free folium map of the features, fitted to ``bounds``, with a tooltip per cell."""
    min_lon, min_lat, max_lon, max_lat = bounds
    centre = [(min_lat + max_lat) / 2, (min_lon + max_lon) / 2]
    figure_map = folium.Map(location=centre, tiles=None, zoom_start=11, control_scale=True)
    collection = {"type": "FeatureCollection", "features": features}
    tooltip = folium.GeoJsonTooltip(fields=["cell_text", "value_text"], aliases=["cell", escape(value_title)],
                                    class_name="maptip")
    folium.GeoJson(
        collection,
        name=value_title,
        style_function=lambda feature: {"fillColor": feature["properties"]["fill"], "color": OUTLINE_COLOUR,
                                        "weight": 0.5, "fillOpacity": 0.85},
        highlight_function=lambda feature: {"weight": 2.5, "color": "#000000"},
        tooltip=tooltip,
    ).add_to(figure_map)
    figure_map.fit_bounds([[min_lat, min_lon], [max_lat, max_lon]])
    number_elements(figure_map, map_id)
    return figure_map


def number_elements(root: Any, map_id: str) -> None:
    """Replace folium's random element ids with ``map_id`` and a counter, so reruns give the same bytes."""
    pending = [root]
    counter = 0
    while pending:
        element = pending.pop(0)
        element._id = f"{map_id}_{counter}"
        counter += 1
        pending.extend(element._children.values())


def interactive_fragment(figure_map: folium.Map) -> str:
    """Render the map's ``<div>`` and ``<script>`` without folium's page header and CDN links."""
    root = figure_map.get_root()
    root.render()
    return (f"<div class='leaflet-box'>{root.html.render()}</div>"
            f"<script>{root.script.render()}</script>")


# Static map.

def static_map_svg(map_id: str, title: str, geometries: list[dict | None], colours: list[str]) -> str:
    """Draw the cells with matplotlib as an inline SVG, keeping the map's shape at its latitude."""
    figure, (axes,) = new_figure(layout=None)
    patches = []
    fills = []
    for geometry, colour in zip(geometries, colours):
        if geometry is None:
            continue
        for polygon in polygon_rings(geometry):
            vertices, codes = [], []
            for ring in polygon:
                points = [point[:2] for point in ring]
                vertices += points
                codes += [MatplotlibPath.MOVETO] + [MatplotlibPath.LINETO] * (len(points) - 1)
            patches.append(PathPatch(MatplotlibPath(np.array(vertices, dtype=float), codes)))
            fills.append(colour)
    collection = PatchCollection(patches, facecolors=fills, edgecolors=OUTLINE_COLOUR, linewidths=0.3)
    axes.add_collection(collection)

    min_lon, min_lat, max_lon, max_lat = geometry_bounds([geometry for geometry in geometries if geometry])
    axes.set_xlim(min_lon, max_lon)
    axes.set_ylim(min_lat, max_lat)
    # A degree of longitude is cos(latitude) times as long as a degree of latitude.
    axes.set_aspect(1 / math.cos(math.radians((min_lat + max_lat) / 2)))
    axes.set_axis_off()
    figure.set_size_inches(STATIC_WIDTH_INCHES, STATIC_WIDTH_INCHES)
    figure.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.99)
    return figure_svg(figure, f"static-{map_id}", f"Static map: {title}")


# The map fragment.

def choropleth(
    cells: pl.DataFrame,
    value_column: str,
    title: str,
    map_id: str,
    *,
    formatter: Callable[[Any], str] = format_number,
    kind: Literal["numeric", "categorical"] | None = None,
    labels: Mapping[Any, str] | None = None,
    caption: str = "",
    static: StaticMode = "noscript",
) -> str:
    """Render one choropleth of ``cells`` as an HTML fragment: map, legend, caption and static copy.

    ``cells`` has cell_id, geojson (a Polygon or MultiPolygon as GeoJSON text, longitude and
    latitude) and ``value_column``. ``kind`` defaults to numeric for numeric columns and to
    categorical otherwise. ``formatter`` writes numbers for tooltips and the legend, and
    ``labels`` names categories. ``map_id`` (lower-case letters, digits, underscores) must be
    unique within the page. ``static`` places the static SVG copy: inside ``<noscript>`` (the
    default, for pages that inline Leaflet), always visible, or nowhere. The page must load
    ``leaflet_assets().head`` once, before the first map.
    """
    check_map_inputs(cells, value_column, map_id)
    heading = f"<figure class='cell-map' id='{map_id}'><figcaption><strong>{escape(title)}</strong>"
    heading += f" {escape(caption)}</figcaption>" if caption else "</figcaption>"
    drawable = cells.filter(pl.col("geojson").is_not_null())
    undrawn = cells.height - drawable.height
    if drawable.height == 0:
        return heading + f"<p class='missing'>No cell has a polygon, so this map is not drawn ({cells.height} cells).</p></figure>"

    cell_ids = [str(value) for value in drawable["cell_id"].to_list()]
    geometries = parse_geometries(cell_ids, drawable["geojson"].to_list())
    values = drawable[value_column].to_list()
    is_numeric = drawable.schema[value_column].is_numeric() and drawable.schema[value_column] != pl.Boolean
    chosen = kind or ("numeric" if is_numeric else "categorical")
    if chosen == "numeric":
        coloured = numeric_colours([None if value is None else float(value) for value in values], formatter)
    else:
        coloured = categorical_colours(values, labels)

    features = [
        {"type": "Feature", "geometry": geometry,
         "properties": {"cell_id": cell_id, "cell_text": html.escape(cell_id), "value_text": html.escape(text),
                        "fill": colour}}
        for cell_id, geometry, text, colour in zip(cell_ids, geometries, coloured.texts, coloured.colours)
    ]
    bounds = geometry_bounds(geometries)
    parts = [heading, legend_html(title, coloured.legend)]
    if static != "visible":
        parts.append(interactive_fragment(folium_map(map_id, features, bounds, title)))
    if static != "none":
        svg = static_map_svg(map_id, title, geometries, coloured.colours)
        block = f"<div class='map-static'>{svg}</div>"
        parts.append(f"<noscript>{block}</noscript>" if static == "noscript" else block)
    if undrawn:
        parts.append(f"<p class='note'>{undrawn} of {cells.height} cells have no polygon and are not drawn.</p>")
    parts.append("</figure>")
    logger.info("map %s: %d cells drawn, %d without a polygon, %d legend entries", map_id, drawable.height,
                undrawn, len(coloured.legend))
    return "".join(parts)


def check_map_inputs(cells: pl.DataFrame, value_column: str, map_id: str) -> None:
    """Raise ValueError on a missing column, a repeated cell or a map id unfit for an element id."""
    if not MAP_ID_PATTERN.match(map_id):
        raise ValueError(f"map_id {map_id!r} must be lower-case letters, digits and underscores, starting with "
                         "a letter, such as 'flag_rate_ensemble'")
    missing = [column for column in ("cell_id", "geojson", value_column) if column not in cells.columns]
    if missing:
        raise ValueError(f"the cells of map {map_id!r} lack columns {missing} (they have {cells.columns}); "
                         "join cell_geojson() to the per-cell values")
    repeated = cells.filter(pl.col("cell_id").is_duplicated())
    if repeated.height:
        raise ValueError(f"the cells of map {map_id!r} repeat cell_id {repeated['cell_id'][0]!r}; pass one row "
                         "per cell")
