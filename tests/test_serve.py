"""``actionclip serve`` against real servers: uvicorn in a child process on a loopback port.

Every answer is checked against the library on the same file (``model.classify``, ``timeline``,
the window scorer), every error path for its status and one-line JSON (and that the server still
answers afterwards), uploads at the socket level (a limit hit while streaming, a client that vanishes
mid-upload, an upload held open to fill the queue or to be in flight during SIGTERM), a load test,
the webcam WebSocket, and the page in a real headless Chromium.
"""

from __future__ import annotations

import concurrent.futures as cf
import http.client
import io
import json
import os
import shutil
import signal
import socket
import statistics
import struct
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'actionclip[serve]'")
pytest.importorskip("uvicorn")
pytest.importorskip("websockets")

from actionclip._dev.serving import ServerProcess
from actionclip.serve.client import ServeClient, ServeError, encode_form

LABELS = ["running", "walking", "playing guitar"]
OTHER_LABELS = ["arm wrestling", "shaking hands", "push up", "dancing"]
CHROMIUM = "/usr/bin/chromium"


# ----------------------------------------------------------------------------------------------
# Fixtures: files and servers


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    from actionclip._dev.videos import make_test_video, write_audio

    d = tmp_path_factory.mktemp("serve-files")
    out = {f"clip{i}": make_test_video(d / f"clip{i}.mp4", seconds=s, size=(64, 48), fps=10)
           for i, s in enumerate((1.0, 1.6, 2.2, 3.0))}
    out["webm"] = make_test_video(d / "clip.webm", seconds=1.5, size=(64, 48), fps=10)
    out["long"] = make_test_video(d / "long.mp4", seconds=14, size=(64, 48), fps=10)
    out["too_long"] = make_test_video(d / "too_long.mp4", seconds=25, size=(32, 32), fps=4)
    out["audio"] = write_audio(d / "tone.m4a", seconds=0.5)
    (d / "notes.mp4").write_text("this is not a video\n")
    out["text"] = d / "notes.mp4"
    (d / "empty.mp4").write_bytes(b"")
    out["empty"] = d / "empty.mp4"
    (d / "list.mp4").write_text("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n")
    out["playlist"] = d / "list.mp4"
    return out


@pytest.fixture(scope="module")
def upload_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("serve-uploads")


@pytest.fixture(scope="module")
def server(tiny_checkpoint, upload_dir):
    """The main server: small limits so that every limit can be hit cheaply."""
    with ServerProcess(["--model", tiny_checkpoint, "--dtype", "fp32", "--device", "cpu", "--max-upload-mib", "1",
                        "--max-duration", "20", "--max-wait", "0.05", "--queue-size", "32", "--workers", "2",
                        "--temp-dir", upload_dir], env={"ACTIONCLIP_SERVE_TOKEN": ""}) as srv:
        yield srv
    assert "Traceback" not in srv.log, srv.log


@pytest.fixture(scope="module")
def client(server) -> ServeClient:
    return ServeClient(server.url, timeout=120)


@pytest.fixture(scope="module")
def references(tiny_model, files):
    """``model.classify`` on the same files: what every answer must equal."""
    cache: dict[tuple, list] = {}

    def get(name: str, labels: list[str], **options) -> list[tuple[str, float]]:
        key = (name, tuple(labels), tuple(sorted(options.items())))
        if key not in cache:
            cache[key] = tiny_model.classify(files[name], labels, **options)
        return cache[key]

    return get


def assert_same_ranking(results: list[dict], expected: list[tuple[str, float]], atol: float = 1e-5) -> None:
    assert [r["label"] for r in results] == [label for label, _ in expected]
    np.testing.assert_allclose([r["prob"] for r in results], [p for _, p in expected], atol=atol)


def assert_healthy(client: ServeClient) -> None:
    assert client.healthz()["status"] == "ok"


# ----------------------------------------------------------------------------------------------
# Raw-socket uploads: held open, cut off, or streamed past the limit


def start_upload(port: int, fields: list[tuple[str, str]], data: bytes, *, send: int, path: str = "/v1/classify",
                 token: str | None = None) -> tuple[socket.socket, bytes]:
    """Send the request's head and the first ``send`` bytes of its multipart body; return the socket
    and the bytes not sent yet."""
    body, content_type = encode_form(fields, ("clip.mp4", data))
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n{auth}"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    sock.sendall(head + body[:send])
    return sock, body[send:]


def read_reply(sock: socket.socket) -> tuple[int, dict[str, str], dict]:
    response = http.client.HTTPResponse(sock)
    response.begin()
    body = response.read()
    sock.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(body)


def wait_for(condition, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def in_flight(client: ServeClient) -> int:
    return client.get("/v1/stats")["admission"]["in_flight"]


# ----------------------------------------------------------------------------------------------
# The contract


def test_health_models_classes_docs_and_page(client, server):
    assert client.healthz() == {"status": "ok", "model": "tiny-actionclip.pt"}
    models = client.models()
    assert models["model"]["frames"] == 8 and models["model"]["dtype"] == "float32"
    assert models["model"]["resolution"] == 32
    from actionclip.loading.registry import DEFAULT_MODEL

    assert DEFAULT_MODEL in [row["name"] for row in models["registry"]]
    lists = client.get("/v1/classes")["lists"]
    assert {"ucf101", "hmdb51", "k400", "k600"} <= set(lists)
    from actionclip.text.classes import builtin_classes, builtin_labels

    # The page fills its labels from "classes": the words classify --labels and eval give the model.
    ucf = client.get("/v1/classes/ucf101")
    assert ucf["classes"] == builtin_labels("ucf101") and ucf["names"] == builtin_classes("ucf101")
    assert "uneven bars" in ucf["classes"]
    with pytest.raises(ServeError) as err:
        client.get("/v1/classes/hmdb5")
    assert err.value.status == 404 and "did you mean 'hmdb51'?" in err.value.message

    spec = client.get("/openapi.json")
    form = spec["paths"]["/v1/classify"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert {"video", "labels", "top_k", "clips", "crops", "templates"} <= set(form["properties"])
    assert "/v1/timeline" in spec["paths"]
    docs = client.request("GET", "/docs")
    assert docs.status == 200 and b"swagger" in docs.body.lower()
    if b"/docs-assets/" in docs.body:  # Swagger UI served from this machine (swagger-ui-bundle-v2)
        assert b"https://" not in docs.body
        assert client.request("GET", "/docs-assets/swagger-ui-bundle.js").status == 200

    page = client.request("GET", "/")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    assert b"/static/app.js" in page.body and b"/static/style.css" in page.body
    for asset in ("/", "/static/app.js", "/static/style.css"):
        text = client.request("GET", asset).body.decode()
        # Every asset comes from this server: users may be offline, and no CDN sees them.
        assert "http://" not in text and "https://" not in text and "//cdn" not in text
    assert client.request("GET", "/static/app.js").headers["content-type"].startswith(("text/javascript",
                                                                                        "application/javascript"))


def test_classify_matches_the_library(client, files, references):
    record = client.classify(files["clip1"], LABELS)
    assert set(record) >= {"video", "model", "frames", "clips", "crops", "results"}
    assert record["video"] == "clip1.mp4" and record["model"] == "tiny-actionclip.pt" and record["frames"] == 8
    assert (record["clips"], record["crops"]) == (1, 1)
    assert_same_ranking(record["results"], references("clip1", LABELS))
    assert sum(r["prob"] for r in record["results"]) == pytest.approx(1.0, abs=1e-5)

    top = client.classify(files["clip2"], OTHER_LABELS, top_k=2)
    assert_same_ranking(top["results"], references("clip2", OTHER_LABELS)[:2])

    views = client.classify(files["webm"], LABELS, clips=2, crops=3)
    assert (views["clips"], views["crops"]) == (2, 3)
    assert_same_ranking(views["results"], references("webm", LABELS, clips=2, crops=3))

    templates = ["a clip of {}", "someone {}"]
    custom = client.classify(files["clip0"], LABELS, templates=templates)
    assert_same_ranking(custom["results"], references("clip0", LABELS, templates=tuple(templates)))


def test_classify_record_is_the_cli_record(client, files, tiny_checkpoint):
    """``/v1/classify`` answers what ``actionclip classify --json`` prints for the same file."""
    from cli_support import run_cli

    done = run_cli("classify", files["clip3"], "--json", "--model", tiny_checkpoint, "--dtype", "fp32",
                   "--device", "cpu", *[a for label in LABELS for a in ("--text", label)])
    assert done.returncode == 0, done.stderr
    cli = json.loads(done.stdout)
    served = client.classify(files["clip3"], LABELS)
    assert set(served) == set(cli)
    assert {k: served[k] for k in ("model", "frames", "clips", "crops")} == \
        {k: cli[k] for k in ("model", "frames", "clips", "crops")}
    assert_same_ranking(served["results"], [(r["label"], r["prob"]) for r in cli["results"]])


def test_timeline_matches_the_library(client, files, tiny_model):
    from actionclip.temporal.timeline import timeline

    doc = client.timeline(files["long"], LABELS, stride=2, score="softmax", threshold=0.4)
    ref = timeline(tiny_model, files["long"], LABELS, stride=2, score="softmax", threshold=0.4).to_dict()
    assert doc["video"] == "long.mp4" and doc["labels"] == LABELS
    assert {k: v for k, v in doc["settings"].items()} == ref["settings"]
    assert len(doc["windows"]) == len(ref["windows"]) == doc["stats"]["windows"]
    for got, want in zip(doc["windows"], ref["windows"]):
        assert (got["start"], got["end"], got["top"]) == (want["start"], want["end"], want["top"])
        np.testing.assert_allclose(list(got["probs"].values()), list(want["probs"].values()), atol=1e-5)
    assert [(s["label"], s["start"], s["end"]) for s in doc["segments"]] == \
        [(s["label"], s["start"], s["end"]) for s in ref["segments"]]
    assert doc["segments"], "softmax over 3 labels at threshold 0.4 finds segments"


def test_the_label_cache_is_used(client, files):
    before = client.get("/v1/stats")["label_cache"]
    labels = ["cache probe one", "cache probe two"]
    client.classify(files["clip0"], labels)
    client.classify(files["clip1"], labels)
    after = client.get("/v1/stats")["label_cache"]
    assert after["misses"] == before["misses"] + 1 and after["hits"] >= before["hits"] + 1


# ----------------------------------------------------------------------------------------------
# Errors: status, one line of JSON, and the server still answers


def error_of(call) -> ServeError:
    with pytest.raises(ServeError) as err:
        call()
    message = err.value.message
    assert message and "\n" not in message and "Traceback" not in message and "/tmp" not in message, message
    return err.value


@pytest.mark.parametrize("case, status, words", [
    ("no labels", 400, "no labels"),
    ("no video", 400, "no video"),
    ("unreadable", 400, "notes.mp4: not a video"),
    ("audio only", 400, "tone.m4a"),
    ("empty video", 400, "empty"),
    ("playlist", 400, "playlist"),
    ("too long", 400, "over this server's limit of 20 s"),
    ("bad clips", 400, "clips 'two': not an integer"),
    ("bad crops", 400, "crops '2'"),
    ("bad top_k", 400, "top_k 0"),
    ("unknown field", 400, "unknown field 'label'"),
    ("field twice", 400, "'clips' given 2 times"),
    ("duplicate labels", 400, "duplicate label"),
    ("bad template", 400, "must contain exactly one '{}'"),
    ("url refused", 400, "--allow-urls"),
    ("bad timeline option", 400, "threshold 1.5"),
    ("bad score", 400, "score 'best'"),
])
def test_error_answers(client, files, upload_dir, case, status, words):
    c = client
    calls = {
        "no labels": lambda: c.classify(files["clip0"], []),
        "no video": lambda: c.post_form("/v1/classify", [("labels", "a"), ("labels", "b")]),
        "unreadable": lambda: c.classify(files["text"], LABELS),
        "audio only": lambda: c.classify(files["audio"], LABELS),
        "empty video": lambda: c.classify(files["empty"], LABELS),
        "playlist": lambda: c.classify(files["playlist"], LABELS),
        "too long": lambda: c.classify(files["too_long"], LABELS),
        "bad clips": lambda: c.classify(files["clip0"], LABELS, clips="two"),
        "bad crops": lambda: c.classify(files["clip0"], LABELS, crops=2),
        "bad top_k": lambda: c.classify(files["clip0"], LABELS, top_k=0),
        "unknown field": lambda: c.classify(files["clip0"], LABELS, label="x"),
        "field twice": lambda: c.classify(files["clip0"], LABELS, clips=[1, 2]),
        "duplicate labels": lambda: c.classify(files["clip0"], ["Running", "running "]),
        "bad template": lambda: c.classify(files["clip0"], LABELS, templates=["no slot"]),
        "url refused": lambda: c.post_form("/v1/classify", [("labels", "a"), ("url", "/etc/passwd")]),
        "bad timeline option": lambda: c.timeline(files["clip0"], LABELS, threshold=1.5),
        "bad score": lambda: c.timeline(files["clip0"], LABELS, score="best"),
    }
    err = error_of(calls[case])
    assert err.status == status and words in err.message, err.message
    assert_healthy(client)
    assert not list(upload_dir.iterdir()), "every upload's temporary file is deleted"


def test_error_answers_outside_the_forms(client):
    assert error_of(lambda: client.get("/nowhere")).status == 404
    reply = client.request("POST", "/v1/classify", b"labels=a", {"Content-Type": "application/x-www-form-urlencoded"})
    assert reply.status == 400 and "multipart/form-data" in reply.json()["error"]
    reply = client.request("GET", "/v1/classify")
    assert reply.status == 405 and set(reply.json()) == {"error"}
    assert_healthy(client)


def test_upload_limit_is_checked_while_streaming(server, client, upload_dir):
    # Announced too large: refused before a byte of the body is read.
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sock.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                 b"Content-Length: 10000000000\r\n\r\n")
    status, _, body = read_reply(sock)
    assert status == 413 and "limit of 1 MiB" in body["error"]

    # No length announced (chunked): refused as soon as the file part passes 1 MB, while the
    # client is still sending (it never finishes the body).
    boundary = "xyz"
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sock.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                 b"Content-Type: multipart/form-data; boundary=xyz\r\n\r\n")

    def chunk(data: bytes) -> bytes:
        return f"{len(data):x}\r\n".encode() + data + b"\r\n"

    sock.sendall(chunk(f'--{boundary}\r\nContent-Disposition: form-data; name="labels"\r\n\r\nrun\r\n'.encode()))
    sock.sendall(chunk(f'--{boundary}\r\nContent-Disposition: form-data; name="video"; filename="big.mp4"\r\n\r\n'
                       .encode()))
    sent = 0
    for _ in range(6):  # 1.5 MB: past the limit, then stop sending without ending the body
        sock.sendall(chunk(b"\0" * (256 * 1024)))
        sent += 256 * 1024
    status, _, body = read_reply(sock)
    assert status == 413 and "over this server's limit of 1 MiB" in body["error"]
    assert_healthy(client)
    wait_for(lambda: not list(upload_dir.iterdir()), what="the partial upload to be deleted")


def test_client_gone_mid_upload_leaves_no_temp_file(server, client, upload_dir):
    sock, _rest = start_upload(server.port, [("labels", "a"), ("labels", "b")], b"\1" * 600_000, send=300_000)
    wait_for(lambda: list(upload_dir.iterdir()), what="the upload to reach a temporary file")
    sock.close()  # the client vanishes half-way
    wait_for(lambda: not list(upload_dir.iterdir()), what="the temporary file to be deleted")
    wait_for(lambda: in_flight(client) == 0, what="the request to be released")
    assert_healthy(client)


# ----------------------------------------------------------------------------------------------
# Load: 64 requests, 8 at a time


def test_load_64_requests_8_at_a_time(client, files, references):
    names = ["clip0", "clip1", "clip2", "clip3"]
    jobs = [(names[i % 4], LABELS if i % 3 else OTHER_LABELS) for i in range(64)]
    expected = {(n, tuple(lb)): references(n, list(lb)) for n, lb in {(n, tuple(lb)) for n, lb in jobs}}
    before = client.get("/v1/stats")["batching"]

    def one(job):
        name, labels = job
        start = time.perf_counter()
        record = client.classify(files[name], list(labels))
        return job, record, time.perf_counter() - start

    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, jobs))
    wall = time.perf_counter() - t0
    assert len(answers) == 64
    for (name, labels), record, _ in answers:
        assert record["video"] == f"{name}.mp4"
        assert_same_ranking(record["results"], expected[(name, tuple(labels))])
    latencies = sorted(seconds for _, _, seconds in answers)
    p50, p95 = statistics.median(latencies), latencies[int(0.95 * (len(latencies) - 1))]
    after = client.get("/v1/stats")["batching"]
    print(f"\nload test: 64 requests, 8 concurrent: {64 / wall:.1f} requests/s, p50 {p50 * 1000:.0f} ms, "
          f"p95 {p95 * 1000:.0f} ms; {after['batches'] - before['batches']} encoder passes, largest {after['largest']}")
    assert after["items"] - before["items"] == 64, "every request went through the encoder exactly once"
    assert after["largest"] >= 2, "concurrent requests shared encoder passes"


# ----------------------------------------------------------------------------------------------
# The webcam WebSocket


def jpeg(frame: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def test_watch_websocket_scores_like_the_library(server, tiny_model):
    from websockets.sync.client import connect

    from actionclip._dev.videos import counter_frame
    from actionclip.temporal.frames import FrameEncoder
    from actionclip.temporal.windows import WindowScorer

    images = [jpeg(counter_frame(i, (64, 48))) for i in range(12)]
    ws_url = server.url.replace("http://", "ws://") + "/v1/watch"
    with connect(ws_url, open_timeout=30) as ws:
        ws.send(json.dumps({"labels": LABELS, "score": "softmax", "top_k": 2}))
        ready = json.loads(ws.recv(timeout=60))
        assert ready["type"] == "ready" and ready["frames"] == 8 and ready["fps"] == pytest.approx(2.0)
        ws.send(struct.pack("<d", 0.0) + b"not a jpeg")
        bad = json.loads(ws.recv(timeout=30))
        assert bad["type"] == "error" and "not a readable JPEG" in bad["error"]
        for i, data in enumerate(images):
            ws.send(struct.pack("<d", i * 0.5) + data)
        updates = [json.loads(ws.recv(timeout=60)) for _ in range(3)]
    assert [u["type"] for u in updates] == ["update"] * 3
    assert [u["time"] for u in updates] == [3.5, 4.5, 5.5]
    assert len(updates[0]["top"]) == 2

    # The reference: the library's encoder and window scorer on the same decoded frames 0..7.
    from PIL import Image

    encoder = FrameEncoder(tiny_model, batch_size=8)
    frames = [np.array(Image.open(io.BytesIO(d)).convert("RGB")) for d in images[:8]]
    units = encoder.encode([encoder.preprocess(f) for f in frames])
    probs, _ = WindowScorer(tiny_model, LABELS).score(units[None])
    np.testing.assert_allclose([updates[0]["probs"][label] for label in LABELS], probs[0], atol=2e-4)


def test_watch_refuses_bad_settings(server):
    from websockets.sync.client import connect

    with connect(server.url.replace("http://", "ws://") + "/v1/watch", open_timeout=30) as ws:
        ws.send(json.dumps({"labels": [], "window": 4}))
        message = json.loads(ws.recv(timeout=30))
        assert message["type"] == "error" and "no labels" in message["error"]


# ----------------------------------------------------------------------------------------------
# Token, full queue, SIGTERM: servers of their own


@pytest.fixture(scope="module")
def guarded_server(tiny_checkpoint, upload_dir):
    """Token from the environment, a queue of one, server-side paths allowed."""
    with ServerProcess(["--model", tiny_checkpoint, "--dtype", "fp32", "--device", "cpu", "--queue-size", "1",
                        "--allow-urls", "--temp-dir", upload_dir], env={"ACTIONCLIP_SERVE_TOKEN": "s3cret"}) as srv:
        yield srv
    assert "Traceback" not in srv.log, srv.log


def test_token(guarded_server, files, references):
    anonymous = ServeClient(guarded_server.url)
    wrong = ServeClient(guarded_server.url, token="guess")
    right = ServeClient(guarded_server.url, token="s3cret")
    assert anonymous.healthz()["status"] == "ok"  # health and the page stay open
    assert anonymous.request("GET", "/").status == 200
    for c, words in ((anonymous, "missing token"), (wrong, "wrong token")):
        for call in (c.models, lambda c=c: c.classify(files["clip0"], LABELS)):
            err = error_of(call)
            assert err.status == 401 and words in err.message
    reply = anonymous.request("GET", "/v1/models")
    assert reply.headers["www-authenticate"].startswith("Bearer")
    assert_same_ranking(right.classify(files["clip0"], LABELS)["results"], references("clip0", LABELS))

    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    ws_url = guarded_server.url.replace("http://", "ws://") + "/v1/watch"
    with pytest.raises(InvalidStatus):
        connect(ws_url, open_timeout=30)
    with connect(ws_url + "?token=s3cret", open_timeout=30) as ws:
        ws.send(json.dumps({"labels": LABELS}))
        assert json.loads(ws.recv(timeout=60))["type"] == "ready"
    assert_healthy(right)


def test_allow_urls_opens_server_side_paths(guarded_server, files, references):
    c = ServeClient(guarded_server.url, token="s3cret")
    fields = [("labels", label) for label in LABELS]
    record = c.post_form("/v1/classify", fields + [("url", str(files["clip3"]))])
    assert record["video"] == str(files["clip3"])
    assert_same_ranking(record["results"], references("clip3", LABELS))
    err = error_of(lambda: c.post_form("/v1/classify", fields + [("url", str(files["clip3"]))], files["clip0"]))
    assert err.status == 400 and "not both" in err.message


def test_full_queue_answers_503_with_retry_after(guarded_server, files, references):
    c = ServeClient(guarded_server.url, token="s3cret")
    data = files["clip1"].read_bytes()
    held, rest = start_upload(guarded_server.port, [("labels", label) for label in LABELS], data,
                              send=200, token="s3cret")
    wait_for(lambda: in_flight(c) == 1, what="the held upload to take the only slot")
    err = error_of(lambda: c.classify(files["clip0"], LABELS))
    assert err.status == 503 and err.retry_after is not None and err.retry_after >= 1
    held.sendall(rest)  # the held request completes, correctly
    status, _, record = read_reply(held)
    assert status == 200
    assert_same_ranking(record["results"], references("clip1", LABELS))
    assert_same_ranking(c.classify(files["clip0"], LABELS)["results"], references("clip0", LABELS))


def test_sigterm_drains(tiny_checkpoint, files, references, tmp_path):
    with ServerProcess(["--model", tiny_checkpoint, "--dtype", "fp32", "--device", "cpu",
                        "--temp-dir", tmp_path]) as srv:
        c = ServeClient(srv.url)
        held, rest = start_upload(srv.port, [("labels", label) for label in LABELS], files["clip2"].read_bytes(),
                                  send=300)
        wait_for(lambda: in_flight(c) == 1, what="a request in flight")
        srv.signal(signal.SIGTERM)
        wait_for(lambda: c.request("GET", "/healthz").status == 503, what="draining")
        err = error_of(lambda: c.classify(files["clip0"], LABELS))
        assert err.status == 503 and "shutting down" in err.message and err.retry_after >= 1
        assert srv.proc.poll() is None, "the server waits for the request in flight"
        held.sendall(rest)
        status, _, record = read_reply(held)
        assert status == 200
        assert_same_ranking(record["results"], references("clip2", LABELS))
        assert srv.wait(timeout=30) == 0
        assert "server stopped" in srv.log and "Traceback" not in srv.log, srv.log
        assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------------------------
# The command line around the server


def test_serve_without_the_extra_is_one_line(tmp_path):
    import subprocess
    import sys

    code = ("import sys; sys.modules['fastapi'] = None\n"
            "from actionclip.cli import main; sys.exit(main(['serve', '--port', '0']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [('actionclip: error: serving needs fastapi, which is not installed: '
                                                 'pip install "actionclip[serve]"')]


def test_upload_limit_is_in_mib_and_the_old_flag_still_works(capsys):
    from actionclip.cli import build_parser
    from actionclip.serve.settings import ServeSettings

    parser = build_parser()
    assert parser.parse_args(["serve", "--max-upload-mib", "1.5"]).max_upload_mib == 1.5
    assert parser.parse_args(["serve", "--max-upload-mb", "3"]).max_upload_mib == 3  # the old name
    assert parser.parse_args(["serve"]).max_upload_mib == 200
    assert ServeSettings(max_upload_mib=1).max_upload_bytes == 2 ** 20
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--help"])
    shown = capsys.readouterr().out
    assert "--max-upload-mib MIB" in shown and "in MiB" in shown and "--max-upload-mb" not in shown


def test_temp_dir_that_cannot_be_written_is_refused_at_start_up(tiny_checkpoint):
    """Tests run as root, for whom chmod does not stop writes: sysfs (/sys) is a folder in which no
    one, root included, can create a regular file, so it is a temp dir that truly fails."""
    from actionclip.serve.uploads import temp_dir_problem
    from cli_support import run_cli

    if temp_dir_problem("/sys") is None:
        pytest.skip("this machine lets a file be created in /sys")
    done = run_cli("serve", "--model", tiny_checkpoint, "--port", "0", "--temp-dir", "/sys")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("actionclip: error: --temp-dir /sys: uploads cannot be stored there ("), lines[0]
    assert "serving" not in done.stderr


def test_an_upload_the_server_cannot_store_is_one_json_line(tiny_checkpoint, files, tmp_path):
    """The temp folder disappears after start-up (a cleaned /tmp, an unmounted disk): each upload
    answers one JSON line naming no server path, the server's log has one line and no traceback,
    and the server keeps serving once the folder is back."""
    spool = tmp_path / "spool"
    spool.mkdir()
    with ServerProcess(["--model", tiny_checkpoint, "--dtype", "fp32", "--device", "cpu", "--temp-dir", spool],
                       env={"ACTIONCLIP_SERVE_TOKEN": ""}) as srv:
        client = ServeClient(srv.url, timeout=120)
        spool.rmdir()
        for _ in range(2):
            with pytest.raises(ServeError) as err:
                client.classify(files["clip0"], LABELS)
            assert err.value.status == 500
            assert err.value.message == "the server cannot store the upload (No such file or directory); try again later"
            assert str(tmp_path) not in err.value.message
        spool.mkdir()
        assert len(client.classify(files["clip0"], LABELS)["results"]) == len(LABELS)
        assert srv.stop() == 0
    assert "Traceback" not in srv.log, srv.log
    stored = [line for line in srv.log.splitlines() if "cannot store an upload" in line]
    assert len(stored) == 2 and list(spool.iterdir()) == []


def test_a_full_disk_answers_507():
    import errno

    from actionclip.serve.uploads import storage_problem

    full = storage_problem(OSError(errno.ENOSPC, "No space left on device"))
    assert (full.status, full.message) == (507, "the server cannot store the upload (No space left on device); try again later")
    assert storage_problem(OSError(errno.EROFS, "Read-only file system")).status == 500


def test_port_in_use_is_one_line(tiny_checkpoint):
    from cli_support import run_cli

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = run_cli("serve", "--model", tiny_checkpoint, "--port", str(port))
    assert done.returncode == 1
    assert done.stderr.strip() == f"actionclip: error: 127.0.0.1:{port}: cannot listen there (Address already in use)"


# ----------------------------------------------------------------------------------------------
# The page in a real browser


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium; .ci/run installs it)")
    playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)")
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        yield b
        b.close()


def test_page_in_chromium(browser, server, files, references, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("requestfailed", lambda req: problems.append(f"failed: {req.url}"))
    page.on("request", lambda req: None if req.url.startswith((server.url, "blob:", "data:"))
            else problems.append(f"off-server request: {req.url}"))
    page.goto(server.url + "/")
    page.wait_for_function("document.querySelector('#class-list').options.length > 4")
    assert "tiny-actionclip.pt" in page.inner_text("#model")

    # A short clip: upload, type labels, read the ranking off the page.
    page.set_input_files("#file", str(files["clip1"]))
    page.fill("#labels", "\n".join(LABELS))
    page.click("#classify")
    page.wait_for_selector("#results .bar-row")
    rows = page.eval_on_selector_all("#results .bar-row", "rows => rows.map(r => [r.dataset.label, +r.dataset.prob])")
    expected = references("clip1", LABELS)
    assert [label for label, _ in rows] == [label for label, _ in expected]
    np.testing.assert_allclose([p for _, p in rows], [p for _, p in expected], atol=1e-5)
    assert "clip1.mp4" in page.inner_text("#status")

    # A built-in class list fills the labels.
    page.select_option("#class-list", "hmdb51")
    page.wait_for_function("document.querySelector('#labels').value.split('\\n').length === 51")

    # A long video: the timeline lanes under the player; a segment click seeks.
    page.fill("#labels", "\n".join(LABELS))
    page.set_input_files("#file", str(files["long"]))
    page.wait_for_function("document.querySelector('#want-timeline').checked")
    page.select_option("#score", "softmax")
    page.fill("#threshold", "0.4")
    page.click("#classify")
    page.wait_for_selector(".lane .segment", timeout=60_000)
    assert page.locator(".lane").count() == len(LABELS)
    segment = page.locator(".segment").first
    start = float(segment.get_attribute("title").split(": ")[1].split("–")[0])
    segment.click()
    page.wait_for_function(f"Math.abs(document.querySelector('#player').currentTime - {start}) < 0.6")
    shot = tmp_path / "serve-page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000

    # The webcam mode over the WebSocket (Chromium's fake camera).
    page.click("button[data-tab=webcam-tab]")
    page.click("#cam-start")
    page.wait_for_function("document.querySelector('#status').textContent.startsWith('Live:')", timeout=60_000)
    assert page.locator("#results .bar-row").count() == len(LABELS)
    webcam_shot = tmp_path / "serve-webcam.png"
    page.screenshot(path=str(webcam_shot), full_page=True)
    page.click("#cam-stop")
    artifacts = os.environ.get("ACTIONCLIP_TEST_ARTIFACTS")
    if artifacts:  # to look at the page after a run
        for path in (shot, webcam_shot):
            shutil.copy(path, Path(artifacts) / path.name)
    # The API docs render from this server alone.
    page.goto(server.url + "/docs")
    page.get_by_text("/v1/classify", exact=True).wait_for(timeout=30_000)
    assert not problems, problems
    page.close()
