{#
  Geometry helpers shared by the boundary and cell models.

  repaired_polygons: a valid geometry unchanged; an invalid one (a self-intersecting ring, a
  bow-tie) through GEOS MakeValid, keeping only its polygonal parts, so lines and points that the
  repair leaves behind are dropped. A geometry with no area left becomes empty.

  equal_area: the geometry in EPSG:6933 (WGS 84 / NSIDC EASE-Grid 2.0 Global, an equal-area
  projection in meters), for areas and overlaps that are not distorted by latitude.
#}
{% macro repaired_polygons(geom) -%}
    case
        when ST_IsValid({{ geom }}) then {{ geom }}
        else ST_CollectionExtract(ST_MakeValid({{ geom }}), 3)
    end
{%- endmacro %}

{% macro equal_area(geom) -%}
    ST_Transform({{ geom }}, 'EPSG:4326', 'EPSG:6933', always_xy := true)
{%- endmacro %}
