"""Data sources, one module per kind: each has a local-extract and a live implementation.

Each source kind is an abstract Dagster ``ConfigurableResource`` with two concrete resources: one
reads a folder of portal or NOAA exports, the other pulls from the live service. The raw assets
depend on the abstract resource, so a run file switches between them without code changes.
"""
