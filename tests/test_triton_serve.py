"""``edge serve`` (a real tritonserver on loopback) and ``edge run --remote``: every network through
tritonclient equals the local engine, dynamic batching splits results back per request, malformed requests
get an error while the server keeps serving, a remote run equals the local one, and a client survives a
server restart (SIGTERM = clean stop) with the gap counted."""
from __future__ import annotations

import re
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

tritonclient = pytest.importorskip("tritonclient.grpc", reason="needs the serve extra: pip install '.[serve]'")
from tritonclient.utils import InferenceServerException  # noqa: E402

from edge.assets import video_clip  # noqa: E402
from edge.runtime import load_engines  # noqa: E402
from edge.runtime.feeds import fresh_feeds, load_examples  # noqa: E402
from edge.runtime.triton_backend import load_remote_engines  # noqa: E402
from fixtures import standin_tracker_embed  # noqa: E402
from fixtures.engines import build_standins  # noqa: E402
from fixtures.outputs import jsonl  # noqa: E402
from test_run_cli import RUNNER  # noqa: E402
from triton_helpers import serve_python, start_serve  # noqa: E402

WIRE = {"float32": "FP32", "float64": "FP64", "int64": "INT64"}
CLIP = video_clip("carphone_pristine.mp4")
QUEUE_DELAY_US = 20000       # wide enough that concurrent test requests meet in one batch


@pytest.fixture(scope="module")
def serve_py():
    py, why = serve_python()
    if py is None:
        pytest.skip(why)
    return py


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    # the tracker whose search returns embeddings (as SINT's): head, regression and search_probed all run
    return build_standins(tmp_path_factory.mktemp("triton_standins"), tracker=standin_tracker_embed)


@pytest.fixture(scope="module")
def server(serve_py, engines, tmp_path_factory):
    s = start_serve(serve_py, [engines["tracker"], engines["classifier"]], tmp_path_factory.mktemp("triton_server"),
                    extra=["--max-queue-delay-us", str(QUEUE_DELAY_US), "--max-batch", "8", "--threads", "1"])
    yield s
    s.stop()


def infer(client, model, feeds, dtypes=None):
    ins = []
    for name, x in feeds.items():
        i = tritonclient.InferInput(name, list(x.shape), (dtypes or {}).get(name, WIRE[str(x.dtype)]))
        i.set_data_from_numpy(x)
        ins.append(i)
    return client.infer(model, ins)


def test_every_network_served_as_model_network_equals_local(server, engines, rng):
    client = tritonclient.InferenceServerClient(server.target)
    names = {m["name"] for m in client.get_model_repository_index(as_json=True)["models"]}
    assert names == {"tracker_template", "tracker_search", "tracker_search_probed", "classifier_encoder",
                     "classifier_step", "classifier_window"}
    for model, d in engines.items():
        local = load_engines(d)
        for net, eng in local.networks.items():
            meta = client.get_model_metadata(f"{model}_{net}", as_json=True)
            assert [t["name"] for t in meta["inputs"]] == [s.name for s in eng.inputs]
            assert [t["name"] for t in meta["outputs"]] == [s.name for s in eng.outputs]
            cfg = client.get_model_config(f"{model}_{net}", as_json=True)["config"]
            spec = local.manifest.raw["networks"][net]
            batched = spec["inputs"][0]["shape"][0] == "batch"
            assert (int(cfg.get("max_batch_size", 0)) > 0) == batched, net
            assert ("dynamic_batching" in cfg) == batched, net
            ex, _ = load_examples(d, net)
            feeds = fresh_feeds(spec, ex, rng)
            got = infer(client, f"{model}_{net}", feeds)
            want = eng.run(feeds)
            for k, v in want.items():
                np.testing.assert_allclose(got.as_numpy(k), v, rtol=1e-5, atol=1e-6, err_msg=f"{net}.{k}")


def test_concurrent_requests_batched_and_split_back(server, engines, rng):
    local = load_engines(engines["classifier"])
    spec = local.manifest.raw["networks"]["encoder"]
    ex, _ = load_examples(engines["classifier"], "encoder")
    n = 6
    feeds = [fresh_feeds(spec, ex, rng, dims={"batch": 1 + i % 2}) for i in range(n)]    # batches of 1 and 2
    before = _exec_counts(server, "classifier_encoder")
    out, errors = [None] * n, []
    barrier = threading.Barrier(n)

    def one(i):
        try:
            client = tritonclient.InferenceServerClient(server.target)
            barrier.wait(10)
            out[i] = infer(client, "classifier_encoder", feeds[i])
        except Exception as e:          # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    for i in range(n):
        want = local["encoder"].run(feeds[i])
        for k, v in want.items():
            assert out[i].as_numpy(k).shape == v.shape
            np.testing.assert_allclose(out[i].as_numpy(k), v, rtol=1e-5, atol=1e-6)
    reqs, execs = (a - b for a, b in zip(_exec_counts(server, "classifier_encoder"), before))
    assert reqs == n and execs < n, (reqs, execs)        # some requests shared one engine call


def _exec_counts(server, model) -> tuple[int, int]:
    st = tritonclient.InferenceServerClient(server.target).get_inference_statistics(model, as_json=True)
    m = st["model_stats"][0]
    return int(m["inference_stats"]["success"].get("count", 0)), int(m.get("execution_count", 0))


@pytest.mark.parametrize("fault", ["wrong_shape", "wrong_dtype", "missing_input", "batch_mismatch"])
def test_malformed_request_gets_error_and_server_keeps_serving(server, engines, rng, fault):
    client = tritonclient.InferenceServerClient(server.target)
    local = load_engines(engines["classifier"])
    ex, _ = load_examples(engines["classifier"], "step")
    good = fresh_feeds(local.manifest.raw["networks"]["step"], ex, rng)
    bad, dtypes = dict(good), None
    if fault == "wrong_shape":
        bad["features"] = np.zeros((1, 3, 10, 10), np.float32)
    elif fault == "wrong_dtype":
        bad["h"] = good["h"].astype(np.float64)
    elif fault == "missing_input":
        del bad["c"]
    else:
        bad["h"] = np.concatenate([good["h"]] * 2)
    with pytest.raises(InferenceServerException) as e:
        infer(client, "classifier_step", bad, dtypes)
    msg = e.value.message()
    assert msg and ("features" in msg or "h" in msg or "c" in msg or "batch" in msg), msg
    got = infer(client, "classifier_step", good)          # the next request is served
    np.testing.assert_allclose(got.as_numpy("logits"), local["step"].run(good)["logits"], rtol=1e-5, atol=1e-6)
    # through the runtime's engine: one clear ValueError naming the server's reason
    remote = load_remote_engines(server.url, "classifier")
    if fault == "wrong_shape":
        with pytest.raises(ValueError, match="server refused"):
            remote["step"].run(bad)


def test_remote_run_equals_local_run(server, engines, tmp_path):
    box = "60,30,60,70"
    common = ["--source", str(CLIP), "--tracker", str(engines["tracker"]), "--init-box", box,
              "--classifier", str(engines["classifier"]), "--max-frames", "40", "--status-interval", "0"]
    runs = {}
    for mode in ("local", "remote", "remote_shm"):
        ev = tmp_path / f"{mode}.jsonl"
        extra = {"local": [], "remote": ["--remote", server.url],
                 "remote_shm": ["--remote", server.url, "--remote-shm", "on"]}[mode]
        p = subprocess.run([sys.executable, "-c", RUNNER, "run", *common, "--events", str(ev), *extra],
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        assert "TORCH_LOADED False" in p.stderr
        runs[mode] = (jsonl(ev), p.stderr)
    loc = runs["local"][0]
    assert re.search(r"remote grpc://127\.0\.0\.1:\d+: \d+ requests \(0 with inputs in shared memory\), "
                     r"0 reconnects", runs["remote"][1]), runs["remote"][1]
    assert re.search(r"remote grpc://127\.0\.0\.1:\d+: \d+ requests \([1-9]\d* with inputs in shared memory\), "
                     r"0 reconnects", runs["remote_shm"][1]), runs["remote_shm"][1]
    fl = [r for r in loc if r["type"] == "frame"]
    for rem in (runs["remote"][0], runs["remote_shm"][0]):
        fr = [r for r in rem if r["type"] == "frame"]
        assert [r["frame"] for r in fr] == list(range(40)) == [r["frame"] for r in fl]
        np.testing.assert_allclose([r["box"] for r in fr], [r["box"] for r in fl], atol=0.011)
        assert [r["label"] for r in fr] == [r["label"] for r in fl]
        assert [r["type"] for r in rem if r["type"] != "frame"] == [r["type"] for r in loc if r["type"] != "frame"]
    assert any(r["label"] is not None for r in fr)       # windows were classified through the server


def test_served_window_equals_local_steps_in_one_request(server, engines, rng):
    """``classifier_window`` (the step unrolled inside the server) gives the logits of T local step calls,
    for one window and for several at once, in one request instead of T."""
    from edge.classify.runtime import ClassifierRuntime
    remote = load_remote_engines(server.url, "classifier")
    assert list(remote.composites) == ["window"]
    local = ClassifierRuntime(load_engines(engines["classifier"]))
    rt = ClassifierRuntime(remote)
    shape = local.step_engine.inputs[0].shape[1:]
    for b, t in ((1, local.window), (3, local.window), (2, 3)):
        windows = [[rng.standard_normal((1, *shape)).astype(np.float32) for _ in range(t)] for _ in range(b)]
        before = remote.connection.stats.requests
        got = rt.classify(windows)
        assert remote.connection.stats.requests - before == 1
        np.testing.assert_allclose(got, local.classify(windows), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="server refused"):          # a window must be [B, T, C, H, W]
        remote.composites["window"].run({"features": np.zeros((1, *shape), np.float32)})


def test_served_search_probed_equals_local_products(server, engines, rng):
    """``tracker_search_probed`` returns the search's scores and its embeddings' products with the request's
    probes (R x K instead of R x D), equal to the local search; probes of the wrong width are refused (by the config's dims)."""
    remote = load_remote_engines(server.url, "tracker")
    assert list(remote.composites) == ["search_probed"]
    local = load_engines(engines["tracker"])
    spec = local.manifest.raw["networks"]["search"]
    ex, _ = load_examples(engines["tracker"], "search")
    for k in (1, 5):
        feeds = fresh_feeds(spec, ex, rng)
        want = local["search"].run(feeds)
        probes = rng.standard_normal((k, want["embeddings"].shape[1])).astype(np.float32)
        got = remote.composites["search_probed"].run({**feeds, "probes": probes})
        assert set(got) == {"scores", "products"} and got["products"].shape == (len(feeds["rois"]), k)
        np.testing.assert_allclose(got["scores"], want["scores"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got["products"], want["embeddings"].astype(np.float64) @ probes.T.astype(np.float64),
                                   rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match=r"server refused.*probes"):
        remote.composites["search_probed"].run({**feeds, "probes": probes[:, :-1]})


def test_remote_tracker_reads_products_and_follows_the_local_boxes(server, engines):
    """A served tracker's search goes through ``search_probed`` (never the plain search) once the head and
    the regression are fitted, and its boxes follow the local tracker's on a real clip."""
    import cv2
    from edge.tracking import SiameseTracker
    cap = cv2.VideoCapture(str(CLIP))
    frames = [cap.read()[1] for _ in range(25)]
    cap.release()
    box = [60, 30, 60, 70]
    local = load_engines(engines["tracker"])
    local.composites.clear()            # the reference: the plain search, products in numpy
    trackers = [SiameseTracker(local), SiameseTracker(load_remote_engines(server.url, "tracker"))]
    assert trackers[0]._probed is None and trackers[1]._probed is not None
    before = {m: _exec_counts(server, m)[0] for m in ("tracker_search", "tracker_search_probed")}
    boxes = [[], []]
    for tr, out in zip(trackers, boxes):
        tr.init(frames[0], box)
        out.extend(tr.update(f) for f in frames[1:])
    assert trackers[0].head is not None and trackers[0].regressor is not None
    assert trackers[1]._probes.shape == (5, trackers[0].template.shape[1])
    np.testing.assert_allclose(boxes[1], boxes[0], atol=0.011)
    after = {m: _exec_counts(server, m)[0] for m in before}
    assert after["tracker_search_probed"] - before["tracker_search_probed"] == len(frames) - 1
    assert after["tracker_search"] == before["tracker_search"]


def _region_path(engine):
    from pathlib import Path
    return Path("/dev/shm") / engine.shared.name


def test_inputs_through_shared_memory_equal_inline(server, engines, rng, caplog):
    """With ``shared_memory`` large inputs travel in a registered shared-memory region: same outputs as inline;
    the region grows for a bigger batch, is unlinked on close; a server that cannot map it (simulated: the
    region's file removed before it is registered, as the server in another container sees it) gets the
    tensors inline after one warning."""
    local = load_engines(engines["classifier"])
    spec = local.manifest.raw["networks"]["encoder"]
    ex, _ = load_examples(engines["classifier"], "encoder")
    shared = load_remote_engines(server.url, "classifier", shared_memory=True)
    inline = load_remote_engines(server.url, "classifier")
    assert shared["encoder"].shared is not None and inline["encoder"].shared is None
    for batch in (1, 3):
        feeds = fresh_feeds(spec, ex, rng, dims={"batch": batch})
        got, ref = shared["encoder"].run(feeds), inline["encoder"].run(feeds)
        for k, v in local["encoder"].run(feeds).items():
            np.testing.assert_array_equal(got[k], ref[k])
            np.testing.assert_allclose(got[k], v, rtol=1e-5, atol=1e-6)
    assert shared.connection.stats.shared_memory == 2 and inline.connection.stats.shared_memory == 0
    path = _region_path(shared["encoder"])
    assert path.exists()
    shared.close()
    assert not path.exists() and shared["encoder"].shared is None
    # the server cannot open the region: one warning, then inline for good
    lost = load_remote_engines(server.url, "classifier", shared_memory=True)
    eng = lost["encoder"]
    feeds = fresh_feeds(spec, ex, rng)
    eng.shared._grow(None, 4 * sum(v.nbytes for v in feeds.values()))
    _region_path(eng).unlink()
    with caplog.at_level("WARNING", logger="edge.remote"):
        got = eng.run(feeds)
    assert "cannot map this host's shared memory" in caplog.text and eng.shared is None
    for k, v in local["encoder"].run(feeds).items():
        np.testing.assert_allclose(got[k], v, rtol=1e-5, atol=1e-6)
    assert lost.connection.stats.shared_memory == 0 and lost.connection.stats.requests == 1


def test_client_waits_through_server_restart(serve_py, engines, tmp_path, rng):
    """SIGTERM stops ``edge serve`` cleanly (exit 0); a request made while it is down waits with back-off,
    is answered by the restarted server, equals the local result and is counted as one reconnect."""
    s1 = start_serve(serve_py, [engines["classifier"]], tmp_path / "a")
    remote = load_remote_engines(s1.url, engines["classifier"], retry_s=120, shared_memory=True)
    local = load_engines(engines["classifier"])
    ex, _ = load_examples(engines["classifier"], "encoder")
    feeds = fresh_feeds(local.manifest.raw["networks"]["encoder"], ex, rng)
    remote["encoder"].run(feeds)
    assert s1.stop() == 0                                  # SIGTERM: clean stop
    assert "stopped" in s1.log.read_text()
    holder = {}

    def restart():
        time.sleep(1.0)
        holder["s2"] = start_serve(serve_py, [engines["classifier"]], tmp_path / "b", ports=(s1.grpc, s1.http, s1.metrics))

    t = threading.Thread(target=restart)
    t.start()
    try:
        t0 = time.monotonic()
        got = remote["encoder"].run(feeds)               # blocks until the new server answers
        waited = time.monotonic() - t0
        t.join(200)
        for k, v in local["encoder"].run(feeds).items():
            np.testing.assert_allclose(got[k], v, rtol=1e-5, atol=1e-6)
        st = remote.connection.stats
        assert st.reconnects == 1 and st.retries >= 1 and 0.9 < st.gap_s <= waited + 0.1, st
        assert st.requests == 2
        assert st.shared_memory == 2          # the restarted server knew no region: registered again, resent
        remote.close()
    finally:
        t.join(200)
        if "s2" in holder:
            assert holder["s2"].stop() == 0


def test_serve_without_triton_says_how_to_install(engines):
    """Where nvidia-pytriton is missing (the device runtime's venv), ``edge serve`` exits 2 with one line
    naming `make serve-venv`."""
    import importlib.util
    if importlib.util.find_spec("pytriton") is not None:
        pytest.skip("nvidia-pytriton is installed in this venv")
    p = subprocess.run([sys.executable, "-m", "edge.cli", "serve", str(engines["tracker"])], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 2
    assert "make serve-venv" in p.stderr and "Traceback" not in p.stderr


def test_remote_unknown_model_is_one_line_error(server):
    from edge.errors import UserError
    with pytest.raises(UserError, match="serves no edge model 'nosuch'"):
        load_remote_engines(server.url, "nosuch")
    with pytest.raises(UserError, match="only grpc://"):
        load_remote_engines("http://127.0.0.1:1", "tracker")


def test_stale_backend_regions_of_dead_servers_are_swept(tmp_path):
    """A server killed with SIGKILL leaves its Python-backend regions in /dev/shm; the next start unlinks
    those of dead ``edge serve`` processes only (a live one's and foreign files stay)."""
    from edge.serve.server import sweep_stale_regions
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    names = {f"edge{dead.pid}x8001_a1b2": "dead", f"edge{dead.pid}x8001_c3d4": "dead",
             f"edge{__import__('os').getpid()}x8001_e5f6": "live", "edge_123_1_classifier_encoder_1": "client",
             "other_region": "foreign"}
    for n in names:
        (tmp_path / n).write_bytes(b"x")
    removed = sweep_stale_regions(tmp_path)
    assert sorted(removed) == sorted(n for n, k in names.items() if k == "dead")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(n for n, k in names.items() if k != "dead")
