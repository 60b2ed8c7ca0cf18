"""Boundary sources: polygon layers such as census tracts, community areas and police beats.

``LocalBoundarySource`` reads each layer's GeoJSON file from the extracts folder.
``SocrataBoundarySource`` pulls the layers that have an ``api`` block from the portal's GeoJSON
endpoint (``/resource/<dataset>.geojson`` of the SODA 2 API) and reads the others from the folder.

A pull pages with ``$limit`` and ``$offset`` in ``:id`` order, which is unique, so pages neither
repeat nor skip features (https://dev.socrata.com/docs/paging.html). HTTP 429 and 5xx responses,
timeouts and bodies cut off before their declared length are retried with exponential backoff by
the SODA client in ``orchestration.socrata``. After the last retry it raises ``SocrataError``.
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

import dagster as dg

from orchestration.geography import (
    BoundaryTable,
    LayerProperties,
    load_feature_collection,
    parse_feature_collection,
    read_layer_file,
)
from orchestration.ingest import ExtractError
from orchestration.jurisdiction import BoundaryApiConfig, BoundaryLayerConfig
from orchestration.resources import ensure_extracts_folder
from orchestration.socrata import SocrataDataset, SocrataError, SodaClient

logger = logging.getLogger(__name__)


class BoundarySource(dg.ConfigurableResource, ABC):
    """A source of a jurisdiction's boundary layers, one FeatureCollection per layer."""

    @abstractmethod
    def read_layer(self, layer: BoundaryLayerConfig) -> BoundaryTable:
        """Return the raw rows of one layer. Raises ``ExtractError`` on an unusable layer."""


class LocalBoundarySource(BoundarySource):
    """GeoJSON files in a folder of exports, at the paths the jurisdiction file gives."""

    folder: str
    generate_demo: bool = False

    def read_layer(self, layer: BoundaryLayerConfig) -> BoundaryTable:
        folder = ensure_extracts_folder(Path(self.folder), self.generate_demo)
        if self.generate_demo and layer.file and not (folder / layer.file).is_file():
            raise ExtractError(f"the demo extracts folder {folder} has no {layer.file}, so it was "
                               f"written by an older Riskcast. Delete the folder and run again to "
                               f"write it anew")
        return read_layer_file(folder, layer)


class SocrataBoundarySource(BoundarySource):
    """Layers with an ``api`` block from their Socrata dataset, the others from a folder."""

    folder: str
    base_url_override: str | None = None
    timeout_seconds: float = 60.0
    max_retries: int = 5
    backoff_seconds: float = 1.0

    def dataset(self, api: BoundaryApiConfig) -> SocrataDataset:
        return SocrataDataset(base_url=self.base_url_override or api.base_url, dataset_id=api.dataset_id,
                              page_size=api.page_size, timeout_seconds=self.timeout_seconds,
                              max_retries=self.max_retries, backoff_seconds=self.backoff_seconds)

    def read_layer(self, layer: BoundaryLayerConfig) -> BoundaryTable:
        if layer.api is None:
            return read_layer_file(Path(self.folder), layer)

        dataset = self.dataset(layer.api)
        collection, requests = pull_feature_collection(dataset)
        label = f"socrata:{dataset.dataset_id}"
        frame = parse_feature_collection(collection, layer, LayerProperties.of_api(layer), label)
        logger.info("pulled %d features of layer %s from %s in %d requests", frame.height, layer.name,
                    dataset.label, len(requests))
        return BoundaryTable(layer=layer.name, frame=frame, source=label, requests=requests)


def geojson_url(dataset: SocrataDataset, offset: int) -> str:
    params = {"$order": ":id", "$limit": str(dataset.page_size), "$offset": str(offset)}
    query = urllib.parse.urlencode(params, quote_via=urllib.parse.quote, safe=":,*$()")
    return f"{dataset.base_url.rstrip('/')}/resource/{dataset.dataset_id}.geojson?{query}"


def pull_feature_collection(dataset: SocrataDataset,
                            sleep: Callable[[float], None] = time.sleep) -> tuple[dict, list[str]]:
    """Pull every feature of a Socrata GeoJSON dataset into one FeatureCollection.

    Returns the collection and the URLs requested, retries included. Raises ``SocrataError``
    when a request fails after its retries or the server ignores ``$offset``, and
    ``ExtractError`` when a page is not a GeoJSON FeatureCollection.
    """
    client = SodaClient(dataset, sleep)
    features: list[dict] = []
    previous_page: list[dict] | None = None
    offset = 0
    while True:
        url = geojson_url(dataset, offset)
        body = client.get_with_retries(url)
        page = load_feature_collection(body, url)["features"]
        logger.info("%s: GeoJSON page at offset %d returned %d features", dataset.label, offset, len(page))

        if len(page) == dataset.page_size and page == previous_page:
            raise SocrataError(f"{dataset.label}: {url} repeated the features of the page before. "
                               f"The server seems to ignore $offset, so the pull cannot page")
        features.extend(page)
        if len(page) < dataset.page_size:
            break
        previous_page = page
        offset += dataset.page_size

    return {"type": "FeatureCollection", "features": features}, client.requests
