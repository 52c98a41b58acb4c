"""``actionclip serve --index`` against a real uvicorn child process, and its Search tab in Chromium.

Search answers are checked against ``actionclip search --json`` run on the same index (same order,
same scores), whole-index classification against ``classify --index --json``, videos byte for byte
against the files (ranges included), previews by decoding them, every traversal attempt for a 404
JSON answer, and the page by what a user sees: a click on a result lands the player on the moment.
"""

from __future__ import annotations

import concurrent.futures as cf
import csv
import http.client
import io
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'actionclip[serve]'")
pytest.importorskip("uvicorn")
pytest.importorskip("lancedb", reason="the index extra is not installed: pip install 'actionclip[index]'")

from cli_support import run_cli  # noqa: E402

from actionclip._dev.serving import ServerProcess  # noqa: E402
from actionclip.serve.client import ServeClient, ServeError  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
QUERIES = ["playing guitar", "someone running", "a person slipping on stairs"]


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    from actionclip._dev.videos import make_test_video

    root = tmp_path_factory.mktemp("search-videos")
    make_test_video(root / "walk.mp4", seconds=3.0, size=(64, 48), fps=10)
    make_test_video(root / "jump.mp4", seconds=2.0, size=(64, 48), fps=10)
    make_test_video(root / "ucf.avi", seconds=3.0, size=(64, 48), fps=10)  # MPEG-4 part 2 in AVI
    return root


@pytest.fixture(scope="module")
def extra_files(tmp_path_factory) -> dict[str, Path]:
    from actionclip._dev.videos import make_test_video

    d = tmp_path_factory.mktemp("search-uploads")
    bad = d / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100)
    return {"new": make_test_video(d / "new clip.mp4", seconds=2.0, size=(64, 48), fps=10),
            "avi": make_test_video(d / "upload.avi", seconds=2.0, size=(64, 48), fps=10),
            "long": make_test_video(d / "long.mp4", seconds=25.0, size=(32, 32), fps=2),
            "bad": bad}


@pytest.fixture(scope="module")
def built(videos, tiny_checkpoint, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("search-index") / "clips.index"
    done = run_cli("index", videos, "--out", out, "--model", tiny_checkpoint, "--dtype", "fp32", "--device", "cpu",
                   "--window", "1", "--stride", "0.5")
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("serve-cache")


@pytest.fixture(scope="module")
def server(built, cache):
    with ServerProcess(["--index", built, "--dtype", "fp32", "--device", "cpu", "--workers", "2",
                        "--max-upload-mb", "5", "--max-duration", "20"], env={"ACTIONCLIP_SERVE_TOKEN": "", "ACTIONCLIP_CACHE": str(cache)}) as srv:
        yield srv
    assert "Traceback" not in srv.log, srv.log


@pytest.fixture(scope="module")
def client(server) -> ServeClient:
    return ServeClient(server.url, timeout=120)


def raw_get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """A GET with ``path`` sent exactly as written (no client-side normalisation of ``..``)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def cli_search(index: Path, text: str, *args: str) -> list[dict]:
    done = run_cli("search", index, text, "--json", "--device", "cpu", "--dtype", "fp32", *args)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


# ----------------------------------------------------------------------------------------------
# The API


def test_search_ranks_as_the_cli(client, built):
    info = client.get("/v1/index")
    assert (info["videos"], info["model"], info["window"]) == (3, "tiny-actionclip.pt", 1.0)
    assert info["moments"] > 6
    for text, k, only in ((QUERIES[0], 3, None), (QUERIES[1], 5, "moments"), (QUERIES[2], 2, "videos")):
        expected = cli_search(built, text, "-k", str(k), *(["--only", only] if only else []))
        served = client.search(text, k, only)["results"]
        assert len(served) == len(expected) > 0
        assert [(h["video"], h["kind"]) for h in served] == [(h["video"], h["kind"]) for h in expected]
        # the CLI embeds the query with the text side alone (numpy), the server with its torch model
        np.testing.assert_allclose([h["score"] for h in served], [h["score"] for h in expected], rtol=0, atol=1e-6)
        for hit, cli in zip(served, expected):
            assert (hit["start"], hit["end"]) == ((cli["start"], cli["end"]) if cli["kind"] == "window" else (None, None))
            assert "path" not in hit  # the server's file system stays private
    assert all(h["kind"] == "window" for h in client.search(QUERIES[1], 4, "moments")["results"])


def test_a_repeated_query_is_not_encoded_again(client):
    before = client.get("/v1/stats")["search"]
    first = client.search("a very particular query", 4)
    after_first = client.get("/v1/stats")["search"]
    second = client.search("a very particular query", 4)
    after_second = client.get("/v1/stats")["search"]
    assert first == second
    assert after_first["misses"] == before["misses"] + 1
    assert (after_second["misses"], after_second["hits"]) == (after_first["misses"], after_first["hits"] + 1)


def test_search_errors_are_one_line_json(client):
    for path, status, words in (("/v1/search?q=", 400, "empty query"), ("/v1/search?q=a&only=frames", 400, "only"),
                                ("/v1/search?q=a&k=0", 400, "k"), ("/v1/search", 400, "q"),
                                (f"/v1/search?q={'x' * 1001}", 400, "q")):
        with pytest.raises(ServeError) as err:
            client.get(path)
        assert err.value.status == status and words in err.value.message and "\n" not in err.value.message


def test_thumbnails_are_jpegs_of_the_moment(client, server):
    hit = client.search(QUERIES[0], 3, "moments")["results"][0]
    status, headers, body = raw_get(server.port, hit["thumbnail"])
    assert status == 200 and headers["content-type"] == "image/jpeg" and body[:3] == b"\xff\xd8\xff"
    from PIL import Image

    image = Image.open(io.BytesIO(body))
    assert image.size == (64, 48)  # never enlarged past the video's own size
    again = raw_get(server.port, hit["thumbnail"])
    assert again[2] == body
    with pytest.raises(ServeError) as err:
        client.get(f"/v1/thumbnails/{hit['id']}?t=-1")
    assert err.value.status == 400


def test_videos_are_served_with_range_requests(client, server, videos):
    ids = {Path(h["video"]).name: h["id"] for h in client.search(QUERIES[0], 10, "videos")["results"]}
    data = (videos / "walk.mp4").read_bytes()
    status, headers, body = raw_get(server.port, f"/v1/videos/{ids['walk.mp4']}")
    assert status == 200 and body == data and headers["accept-ranges"] == "bytes"
    assert headers["content-type"] == "video/mp4"
    status, headers, body = raw_get(server.port, f"/v1/videos/{ids['walk.mp4']}", {"Range": "bytes=100-299"})
    assert status == 206 and body == data[100:300]
    assert headers["content-range"] == f"bytes 100-299/{len(data)}"
    status, headers, body = raw_get(server.port, f"/v1/videos/{ids['walk.mp4']}", {"Range": "bytes=-50"})
    assert status == 206 and body == data[-50:]
    status, headers, _ = raw_get(server.port, f"/v1/videos/{ids['walk.mp4']}",
                                 {"Range": f"bytes={len(data) + 10}-{len(data) + 20}"})
    assert status == 416 and headers["content-range"] == f"bytes */{len(data)}"


@pytest.mark.parametrize("path", [
    "/v1/videos/../../../../etc/passwd", "/v1/videos/..%2F..%2F..%2Fetc%2Fpasswd", "/v1/videos/%2Fetc%2Fpasswd",
    "/v1/videos//etc/passwd", "/v1/videos/%252e%252e%252fetc%252fpasswd", "/v1/videos/0123456789abcdef",
    "/v1/videos/0123456789ABCDEF", "/v1/videos/..", "/v1/videos/0123456789abcdef/preview",
    "/v1/thumbnails/..%2F..%2Fetc%2Fpasswd?t=1", "/v1/thumbnails/%2e%2e?t=0", "/v1/videos/walk.mp4",
])
def test_nothing_from_a_request_becomes_a_path(server, path):
    status, headers, body = raw_get(server.port, path)
    assert status == 404, (path, status, body[:200])
    assert headers["content-type"] == "application/json" and set(json.loads(body)) == {"error"}


def test_unplayable_videos_get_one_cached_preview(client, server, videos):
    import av

    hits = {Path(h["video"]).name: h for h in client.search(QUERIES[0], 10, "videos")["results"]}
    assert hits["walk.mp4"]["playable"] and hits["walk.mp4"]["media"] == f"/v1/videos/{hits['walk.mp4']['id']}"
    avi = hits["ucf.avi"]
    assert not avi["playable"] and avi["media"] == f"/v1/videos/{avi['id']}/preview"
    made = client.get("/v1/stats")["search"]["previews_made"]
    with cf.ThreadPoolExecutor(3) as pool:  # three players asking at once: one transcode
        answers = list(pool.map(lambda _: raw_get(server.port, avi["media"]), range(3)))
    assert {a[0] for a in answers} == {200} and len({a[2] for a in answers}) == 1
    assert client.get("/v1/stats")["search"]["previews_made"] == made + 1
    preview = answers[0][2]
    status, headers, part = raw_get(server.port, avi["media"], {"Range": "bytes=0-99"})
    assert status == 206 and part == preview[:100] and headers["content-type"] == "video/mp4"
    assert client.get("/v1/stats")["search"]["previews_made"] == made + 1
    with av.open(io.BytesIO(preview)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        times = [frame.time for frame in container.decode(stream)]
    with av.open(str(videos / "ucf.avi")) as original:
        count = sum(1 for _ in original.decode(video=0))
    assert len(times) == count == 30
    assert times[0] == pytest.approx(0.0, abs=0.11) and times[-1] == pytest.approx(2.9, abs=0.11)


def test_preview_of_an_upload(client, extra_files):
    import av

    reply = client.request("POST", "/v1/preview", *_form(extra_files["avi"]))
    assert reply.status == 200 and reply.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(reply.body)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert sum(1 for _ in container.decode(video=0)) == 20
    bad = client.request("POST", "/v1/preview", *_form(extra_files["bad"]))
    assert bad.status == 400 and "broken.mp4" in bad.json()["error"] and "/tmp" not in bad.json()["error"]


def _form(path: Path) -> tuple[bytes, dict[str, str]]:
    from actionclip.serve.client import encode_form

    body, content_type = encode_form([], (path.name, path.read_bytes()))
    return body, {"Content-Type": content_type}


def test_classify_the_whole_index(client, built):
    labels = ["running", "walking", "playing guitar"]
    reply = client.request("POST", "/v1/collection/classify", json.dumps({"labels": labels}).encode(),
                           {"Content-Type": "application/json"})
    assert reply.status == 200, reply.body
    records = reply.json()["records"]
    done = run_cli("classify", "--index", built, "--json", "--device", "cpu", "--dtype", "fp32",
                   *[a for label in labels for a in ("--text", label)])
    assert done.returncode == 0, done.stderr
    cli = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(records) == len(cli) == 3
    for mine, theirs in zip(sorted(records, key=lambda r: r["video"]), sorted(cli, key=lambda r: r["video"])):
        assert set(mine) == set(theirs)
        assert [r["label"] for r in mine["results"]] == [r["label"] for r in theirs["results"]]
        np.testing.assert_allclose([r["prob"] for r in mine["results"]], [r["prob"] for r in theirs["results"]],
                                   atol=1e-6)
    table = client.request("POST", "/v1/collection/classify?format=csv", json.dumps({"labels": labels}).encode(),
                           {"Content-Type": "application/json"})
    assert table.status == 200 and table.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(table.body.decode())))
    assert [r["video"] for r in rows] == [r["video"] for r in records]
    for row, record in zip(rows, records):
        assert row["top"] == record["results"][0]["label"]
        for result in record["results"]:
            assert float(row[result["label"]]) == pytest.approx(result["prob"], abs=1e-6)
    for body, words in ((b"{", "not JSON"), (b"[]", "JSON object"), (b'{"labels": []}', "labels"),
                        (b'{"labels": ["a"], "top_k": 0}', "top_k")):
        bad = client.request("POST", "/v1/collection/classify", body, {"Content-Type": "application/json"})
        assert bad.status == 400 and words in bad.json()["error"]


def test_uploads_are_added_to_the_index(client, built, extra_files):
    before = client.get("/v1/index")["videos"]
    reply = client.request("POST", "/v1/index", *_form(extra_files["new"]))
    assert reply.status == 200, reply.body
    added = reply.json()
    assert (added["video"], added["encoded"], added["index"]["videos"]) == ("new clip.mp4", 1, before + 1)
    assert added["moments"] > 0
    found = {h["id"] for h in client.search(QUERIES[0], 10, "videos")["results"]}
    assert added["id"] in found
    status, _, body = raw_get(client.port, f"/v1/videos/{added['id']}")
    assert status == 200 and body == extra_files["new"].read_bytes()
    again = client.request("POST", "/v1/index", *_form(extra_files["new"])).json()
    assert (again["encoded"], again["unchanged"], again["index"]["videos"]) == (0, 1, before + 1)
    stored = sorted(p.name for p in (built / "uploads").glob("*/*"))
    bad = client.request("POST", "/v1/index", *_form(extra_files["bad"]))
    assert bad.status == 400 and "broken.mp4" in bad.json()["error"] and "\n" not in bad.json()["error"]
    assert client.get("/v1/index")["videos"] == before + 1
    assert sorted(p.name for p in (built / "uploads").glob("*/*")) == stored == ["new_clip.mp4"]
    long = client.request("POST", "/v1/index", *_form(extra_files["long"]))  # the server runs --max-duration 20
    assert long.status == 400 and "long.mp4: 25.0 s long" in long.json()["error"]
    assert client.get("/v1/index")["videos"] == before + 1
    # the CLI sees the server's addition
    assert any(h["video"].endswith("new_clip.mp4") for h in cli_search(built, QUERIES[0], "--only", "videos"))


def test_token_guards_search_and_media(built, cache, tiny_checkpoint):
    with ServerProcess(["--index", built, "--model", tiny_checkpoint, "--dtype", "fp32", "--device", "cpu"],
                       env={"ACTIONCLIP_SERVE_TOKEN": "s3cret", "ACTIONCLIP_CACHE": str(cache)}) as srv:
        anonymous = ServeClient(srv.url, timeout=120)
        with pytest.raises(ServeError) as err:
            anonymous.search("running")
        assert err.value.status == 401
        hit = ServeClient(srv.url, token="s3cret", timeout=120).search("running", 1)["results"][0]
        assert raw_get(srv.port, hit["thumbnail"])[0] == 401
        assert raw_get(srv.port, hit["thumbnail"] + "&token=wrong")[0] == 401
        assert raw_get(srv.port, hit["thumbnail"] + "&token=s3cret")[0] == 200
        assert raw_get(srv.port, hit["media"] + "?token=s3cret", {"Range": "bytes=0-9"})[0] == 206
        assert raw_get(srv.port, f"/v1/videos/{hit['id']}", {"Authorization": "Bearer s3cret"})[0] == 200
    assert "Traceback" not in srv.log, srv.log


def test_serve_index_refuses_another_model(built, tmp_path):
    from actionclip._dev.weights import write_checkpoint

    other = write_checkpoint(tmp_path / "other.pt", seed=3)
    done = run_cli("serve", "--index", built, "--model", other, "--port", "0", "--device", "cpu")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("actionclip: error: ") and "built with" in lines[0], lines
    done = run_cli("serve", "--index", tmp_path, "--port", "0")
    assert done.returncode == 1 and "not an actionclip index" in done.stderr and "Traceback" not in done.stderr


# ----------------------------------------------------------------------------------------------
# The page in Chromium


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)")
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                    "--disable-background-networking", "--disable-component-update"])
        yield b
        b.close()


PLAYING = "(v => v.readyState >= 2 && !v.error && v.videoWidth > 0)(document.querySelector('{}'))"


def test_search_tab_in_chromium(browser, server, client, extra_files):
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.goto(server.url + "/")
    page.wait_for_selector("#search-tab:not([hidden])")  # an index: the Search tab opens first
    assert page.inner_text("#index-info").startswith(f"{client.get('/v1/index')['videos']} videos")

    page.fill("#query", QUERIES[0])
    page.press("#query", "Enter")
    page.wait_for_selector("#hits .hit")
    expected = client.search(QUERIES[0], 12)["results"]
    shown = page.eval_on_selector_all("#hits .hit", "cards => cards.map(c => [c.dataset.video, +c.dataset.score])")
    assert shown == [[h["video"], h["score"]] for h in expected]
    page.wait_for_function("[...document.querySelectorAll('#hits img')].slice(0, 4).every(i => i.naturalWidth > 0)")

    # A moment of an MP4, then one of the AVI (played through the server's preview): the player lands on it.
    for name in ("walk.mp4", "ucf.avi"):
        index, hit = next((i, h) for i, h in enumerate(expected) if h["video"].endswith(name) and (h["start"] or 0) > 0.4)
        page.locator("#hits .hit").nth(index).click()
        page.wait_for_function(PLAYING.format("#search-player"), timeout=60_000)
        page.evaluate("document.querySelector('#search-player').pause()")
        now = page.evaluate("document.querySelector('#search-player').currentTime")
        assert now == pytest.approx(hit["start"], abs=0.25), (name, now, hit["start"])
        assert ("converted by the server" in page.inner_text("#search-note")) == name.endswith(".avi")

    page.fill("#query", "x")
    page.select_option("#search-only", "videos")
    page.click("#search-go")
    videos = client.get("/v1/index")["videos"]
    page.wait_for_function(f"document.querySelectorAll('#hits .hit').length === {videos}")
    assert page.inner_text("#hits .hit-time") == "whole video"

    # The Video tab: an AVI upload plays (through /v1/preview) instead of a black player.
    page.click("button[data-tab=video-tab]")
    page.set_input_files("#file", str(extra_files["avi"]))
    page.wait_for_function(PLAYING.format("#player"), timeout=60_000)
    assert "converted by the server" in page.inner_text("#player-note")
    page.evaluate("document.querySelector('#player').play()")
    page.wait_for_function("document.querySelector('#player').currentTime > 0.3", timeout=30_000)

    # A bad file: its error, and no ranking of the previous video under it.
    page.fill("#labels", "running\nwalking")
    page.set_input_files("#file", str(extra_files["new"]))
    page.click("#classify")
    page.wait_for_selector("#results .bar-row")
    page.set_input_files("#file", str(extra_files["bad"]))
    page.click("#classify")
    page.wait_for_function("document.querySelector('#status').classList.contains('error')", timeout=60_000)
    assert page.locator("#results .bar-row").count() == 0
    assert not problems, problems
    page.close()


@pytest.mark.parametrize("width", [360, 420])
def test_narrow_layout(browser, server, width):
    page = browser.new_page(viewport={"width": width, "height": 800})
    page.goto(server.url + "/")
    page.wait_for_selector("#search-tab:not([hidden])")
    page.fill("#query", QUERIES[1])
    page.press("#query", "Enter")
    page.wait_for_selector("#hits .hit")
    page.locator("#hits .hit").first.click()
    page.wait_for_function(PLAYING.format("#search-player"), timeout=60_000)
    for tab in ("search-tab", "video-tab", "webcam-tab"):
        page.click(f"button[data-tab={tab}]")
        assert page.evaluate("document.documentElement.scrollWidth") <= width, tab
        api = page.locator("header nav a").bounding_box()
        assert api and api["x"] >= 0 and api["x"] + api["width"] <= width, (tab, api)
        player = page.locator("#search-player" if tab == "search-tab" else "#drop").bounding_box()
        assert player is None or player["x"] + player["width"] <= width
    page.close()


# ----------------------------------------------------------------------------------------------
# The benchmark cannot rot


def test_search_benchmark_dry_run(tmp_path):
    import subprocess
    import sys

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_serve_search.py"
    done = subprocess.run([sys.executable, str(script), "--dry-run", "--json", "--workdir", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["rows"] == 600 and set(report["figures"]) == {
        f"{c} clients, {w} queries" for c in (2, 4) for w in ("new", "repeated")}
    for figures in report["figures"].values():
        assert figures["requests"] == 8 and figures["rps"] > 0 and 0 < figures["p50_ms"] <= figures["p95_ms"]
