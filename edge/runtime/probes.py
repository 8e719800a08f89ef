"""Linear read-outs of a tracker's candidate embeddings, taken where the embeddings are (torch-free).

Besides the template score, everything the tracker reads from a candidate's embedding is linear in it: the IoU
head (``edge.tracking.head``: one [D] weight) and the box regression (``RidgeRegressor``: [D, 4]). Stacked as
``probes`` [K, D] they turn the search's ``embeddings`` [R, D] into ``products`` [R, K] = E @ P^T. One home for
that product: ``edge serve`` offers ``<model>_search_probed`` (the search network followed by it, inside the
server), so a remote frame returns R x K numbers instead of R x D embeddings (256 x 2048 float32 = 2 MB); a
CPU build keeps the product inside the graph where that is faster (``edge.runtime.build_cpu.probed_graph``,
loaded as the composite ``search_probed``), so the embeddings never leave the run.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from edge.contract import Manifest, TensorSpec
from edge.runtime.base import Engine

#: the composite network ``edge serve`` offers next to a tracker's search when the search returns embeddings
PROBED = "search_probed"
PROBES, PRODUCTS = "probes", "products"


def probed_network(search: dict, embeddings: str) -> dict:
    """The manifest-style entry of a served ``search_probed``: the search's inputs plus ``probes`` [K, D]
    (float32, K dynamic) -> its outputs with ``embeddings`` [R, D] replaced by ``products`` [R, K]."""
    emb = next(s for s in search["outputs"] if s["name"] == embeddings)
    rows, dim = emb["shape"][0], emb["shape"][1]
    return {"inputs": [*search["inputs"], {"name": PROBES, "dtype": "float32", "shape": [PROBES, dim]}],
            "outputs": [*(s for s in search["outputs"] if s["name"] != embeddings),
                        {"name": PRODUCTS, "dtype": "float32", "shape": [rows, PROBES]}]}


def probed_specs(inputs, outputs, embeddings: str) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """``probed_network``'s (inputs, outputs) as ``TensorSpec`` lists, from a search engine's own."""
    net = probed_network({"inputs": [vars(s) | {"shape": list(s.shape)} for s in inputs],
                          "outputs": [vars(s) | {"shape": list(s.shape)} for s in outputs]}, embeddings)
    return ([TensorSpec.from_dict(d, PROBED) for d in net["inputs"]],
            [TensorSpec.from_dict(d, PROBED) for d in net["outputs"]])


def manifest_probed_network(manifest: Mapping) -> dict | None:
    """``probed_network`` of a ``model.json``'s search when it is a tracker whose search returns embeddings (and
    has no network of that name already), else None: what ``edge serve`` hosts and a client looks for."""
    emb = probed_output(manifest, "search")
    if emb is None or PROBED in manifest["networks"]:
        return None
    return probed_network(manifest["networks"]["search"], emb)


def probed_output(manifest: Mapping, net_name: str) -> str | None:
    """The output a probed form of network ``net_name`` replaces: a tracker's search embeddings, else None."""
    m = manifest if isinstance(manifest, Manifest) else Manifest.from_dict(manifest)
    if m.kind != "tracker" or net_name != "search":
        return None
    return m.config.search_embeddings or None


def products(embeddings: np.ndarray, probes: np.ndarray) -> np.ndarray:
    """``embeddings`` [R, D] @ ``probes`` [K, D]^T -> [R, K] float32."""
    probes = np.asarray(probes, np.float32)
    embeddings = np.asarray(embeddings, np.float32)
    if probes.ndim != 2 or embeddings.ndim != 2 or probes.shape[1] != embeddings.shape[1]:
        raise ValueError(f"probes must be [K, {embeddings.shape[-1]}] for embeddings "
                         f"{list(embeddings.shape)}, got shape {list(probes.shape)}")
    return embeddings @ probes.T


def run_probed(search: Engine, embeddings: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The search on ``feeds`` (its inputs + ``probes``), with ``embeddings`` returned as their ``products``."""
    feeds = dict(feeds)
    if PROBES not in feeds:
        raise ValueError(f"missing input {PROBES!r}")
    probes = feeds.pop(PROBES)
    out = dict(search.run(feeds))
    out[PRODUCTS] = products(out.pop(embeddings), probes)
    return out
