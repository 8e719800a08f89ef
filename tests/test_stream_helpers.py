"""Small numpy engines (real computations, deterministic weights) and an MJPEG-over-HTTP test server for
the stream/run tests. Imported by tests/test_stream*.py and tests/test_run*.py (pytest puts tests/ on
sys.path); the two tests here check the numpy ConvLSTM step against hand-written gate algebra."""
from __future__ import annotations

import http.server
import socket
import socketserver
import threading
import time

import cv2
import numpy as np

from edge.data.sequences import read_video
from edge.runtime.base import Engines, TensorSpec

LABELS = ["idle", "take", "put_back", "fall"]


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


class NumpyEncoder:
    """rgb [N,3,S,S] (0..255) + flow [N,2,S,S] -> features [N,C,G,G] (block means, 1x1 mix, tanh) and
    attention [N,1,G,G] (softmax over positions of the channel mean)."""
    name = "encoder"

    def __init__(self, size: int = 56, grid: int = 7, channels: int = 8, seed: int = 0, delay: float = 0.0):
        r = np.random.default_rng(seed)
        self.size, self.grid, self.channels, self.delay = size, grid, channels, delay
        self.w = r.standard_normal((channels, 5)).astype(np.float32)
        self.b = r.standard_normal(channels).astype(np.float32) * 0.1
        self.inputs = [TensorSpec("rgb", ("batch", 3, size, size)), TensorSpec("flow", ("batch", 2, size, size))]
        self.outputs = [TensorSpec("features", ("batch", channels, grid, grid)),
                        TensorSpec("attention", ("batch", 1, grid, grid))]
        self.calls: list[int] = []

    def run(self, feeds):
        if self.delay:
            time.sleep(self.delay)
        x = np.concatenate([feeds["rgb"] / 255.0, feeds["flow"]], axis=1).astype(np.float32)
        n, k, g = x.shape[0], self.size // self.grid, self.grid
        pooled = x.reshape(n, 5, g, k, g, k).mean(axis=(3, 5))
        feats = np.tanh(np.einsum("ck,nkij->ncij", self.w, pooled) + self.b[None, :, None, None])
        m = feats.mean(1).reshape(n, -1)
        e = np.exp(m - m.max(1, keepdims=True))
        att = (e / e.sum(1, keepdims=True)).reshape(n, 1, g, g)
        self.calls.append(n)
        return {"features": feats.astype(np.float32), "attention": att.astype(np.float32)}


class NumpyStep:
    """One ConvLSTM step with 1x1 convolutions: gates = Wx x + b + Wh h; logits = L mean(c') + bl."""
    name = "step"

    def __init__(self, channels: int = 8, hidden: int = 6, grid: int = 7, classes: int = len(LABELS), seed: int = 1):
        r = np.random.default_rng(seed)
        self.wx = (r.standard_normal((4 * hidden, channels)) * 0.7).astype(np.float32)
        self.wh = (r.standard_normal((4 * hidden, hidden)) * 0.5).astype(np.float32)
        self.b = (r.standard_normal(4 * hidden) * 0.1).astype(np.float32)
        self.wl = (r.standard_normal((classes, hidden)) * 3).astype(np.float32)
        self.bl = (r.standard_normal(classes) * 0.1).astype(np.float32)
        self.hidden = hidden
        self.inputs = [TensorSpec("features", ("batch", channels, grid, grid)),
                       TensorSpec("h", ("batch", hidden, grid, grid)), TensorSpec("c", ("batch", hidden, grid, grid))]
        self.outputs = [TensorSpec("h_next", ("batch", hidden, grid, grid)),
                        TensorSpec("c_next", ("batch", hidden, grid, grid)), TensorSpec("logits", ("batch", classes))]

    def run(self, feeds):
        x, h, c = feeds["features"], feeds["h"], feeds["c"]
        z = (np.einsum("ok,nkij->noij", self.wx, x) + np.einsum("ok,nkij->noij", self.wh, h)
             + self.b[None, :, None, None])
        i, f, o, g = np.split(z, 4, axis=1)
        c2 = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h2 = _sigmoid(o) * np.tanh(c2)
        logits = c2.mean(axis=(2, 3)) @ self.wl.T + self.bl
        return {"h_next": h2.astype(np.float32), "c_next": c2.astype(np.float32),
                "logits": logits.astype(np.float32)}


def classifier_engines(delay: float = 0.0, window: int = 4, stride: int = 2, size: int = 56) -> Engines:
    return Engines({"encoder": NumpyEncoder(size=size, delay=delay), "step": NumpyStep()},
                   manifest={"config": {"window": window, "stride": stride, "input_size": size,
                                        "labels": LABELS}}, backend="numpy")


read_clip = read_video      # every frame of a video file (the package's own reader)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MJPEGServer:
    """multipart/x-mixed-replace JPEG stream on 127.0.0.1 (what IP cameras serve). Each connection gets
    ``per_connection`` frames (None = forever) at ``fps``, then the server drops the connection."""

    def __init__(self, frames: list[np.ndarray], port: int | None = None, fps: float = 60.0,
                 per_connection: int | None = None):
        self.jpegs = [cv2.imencode(".jpg", f)[1].tobytes() for f in frames]
        self.port = port or free_port()
        self.fps, self.per_connection = fps, per_connection
        self.connections = 0
        self.sent = 0
        self._srv = None
        self._stop = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def start(self) -> "MJPEGServer":
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                owner.connections += 1
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                n = 0
                try:
                    while not owner._stop.is_set():
                        if owner.per_connection is not None and n >= owner.per_connection:
                            break
                        b = owner.jpegs[owner.sent % len(owner.jpegs)]
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n"
                                         b"Content-Length: %d\r\n\r\n" % len(b) + b + b"\r\n")
                        owner.sent += 1
                        n += 1
                        time.sleep(1.0 / owner.fps)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *a):
                pass

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._srv = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), Handler)
        self._srv.daemon_threads = True
        threading.Thread(target=self._srv.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._srv is not None:
            self._srv.shutdown()
            self._srv.server_close()


def test_numpy_step_matches_gate_algebra(rng):
    """The test ConvLSTM step at one pixel equals the written-out gate equations."""
    step = NumpyStep()
    x = rng.standard_normal((2, 8, 7, 7)).astype(np.float32)
    h = rng.standard_normal((2, 6, 7, 7)).astype(np.float32)
    c = rng.standard_normal((2, 6, 7, 7)).astype(np.float32)
    out = step.run({"features": x, "h": h, "c": c})
    n, y, xx = 1, 3, 5
    z = step.wx @ x[n, :, y, xx] + step.wh @ h[n, :, y, xx] + step.b
    i, f, o, g = z[:6], z[6:12], z[12:18], z[18:]
    c2 = _sigmoid(f) * c[n, :, y, xx] + _sigmoid(i) * np.tanh(g)
    np.testing.assert_allclose(out["c_next"][n, :, y, xx], c2, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["h_next"][n, :, y, xx], _sigmoid(o) * np.tanh(c2), rtol=1e-5, atol=1e-5)


def test_numpy_encoder_batch_equals_single(rng):
    enc = NumpyEncoder()
    rgb = rng.uniform(0, 255, (3, 3, 56, 56)).astype(np.float32)
    flow = rng.uniform(-1, 1, (3, 2, 56, 56)).astype(np.float32)
    both = enc.run({"rgb": rgb, "flow": flow})
    one = enc.run({"rgb": rgb[1:2], "flow": flow[1:2]})
    np.testing.assert_allclose(both["features"][1:2], one["features"], rtol=1e-6)
    assert np.allclose(both["attention"].sum(axis=(1, 2, 3)), 1.0)
