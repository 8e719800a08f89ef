"""The probed form of a search graph (``edge.runtime.build_cpu.probed_graph``) and its fingerprint rule."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edge.contract import ContractError, NetworkPlan
from edge.runtime.build_cpu import probed_graph
from edge.runtime.ort_backend import session


def _search_like(dim: int) -> bytes:
    """x [R, D] -> embeddings = relu(x) [R, D], scores = sum(embeddings, 1) [R] (outputs in that order)."""
    g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["embeddings"]),
         helper.make_node("ReduceSum", ["embeddings", "axes"], ["scores"], keepdims=0)],
        "search", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["rois", dim])],
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["rois", dim]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["rois"])],
        [helper.make_tensor("axes", TensorProto.INT64, [1], [1])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


@pytest.mark.parametrize("rows,k", [(1, 1), (37, 5), (256, 3)])
def test_probed_graph_returns_the_products_instead_of_the_embeddings(rng, rows, k):
    """Against numpy on fresh inputs: products = relu(x) @ probes^T, scores unchanged, embeddings no longer
    an output, the output order kept (products where embeddings were)."""
    dim = 24
    m = onnx.load_from_string(probed_graph(_search_like(dim), "embeddings"))
    onnx.checker.check_model(m, full_check=True)
    assert [o.name for o in m.graph.output] == ["products", "scores"]
    assert [i.name for i in m.graph.input] == ["x", "probes"]
    x = rng.standard_normal((rows, dim)).astype(np.float32)
    probes = rng.standard_normal((k, dim)).astype(np.float32)
    products, scores = session(m.SerializeToString(), 1).run(None, {"x": x, "probes": probes})
    emb = np.maximum(x, 0).astype(np.float64)
    np.testing.assert_allclose(products, emb @ probes.T.astype(np.float64), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(scores, emb.sum(1), rtol=1e-5, atol=1e-5)


def _plan(**probed):
    return {"kind": "onnxruntime", "precision": "fp32", "files": {"search.ort.onnx": "a", "search.probed.ort.onnx": "b"},
            "probed": probed}


def test_fingerprint_probed_file_rules():
    """A kept probed form is one of the network's files (its second file); one not kept is no file."""
    plan = NetworkPlan.from_dict("search", _plan(kept=True, file="search.probed.ort.onnx"), "fp32", "fp")
    assert plan.probed_file == "search.probed.ort.onnx"
    with pytest.raises(ContractError, match="probed form 'other.onnx' is not one of its files"):
        NetworkPlan.from_dict("search", _plan(kept=True, file="other.onnx"), "fp32", "fp")
    with pytest.raises(ContractError, match="has one file"):                 # not kept: two files is one too many
        NetworkPlan.from_dict("search", _plan(kept=False), "fp32", "fp")
