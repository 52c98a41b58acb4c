"""X-CLIP registry entries: Hugging Face Hub downloads through huggingface_hub, its cache, offline mode.

A local HTTP server answers as the hub does (``/<repo>/resolve/<revision>/<file>``, ``X-Repo-Commit``,
``ETag``, ``EntryNotFound``) with a tiny random X-CLIP folder, and ``huggingface_hub`` itself
downloads from it (``HF_ENDPOINT``) into a per-test hub cache (``HF_HUB_CACHE``): the cache is then
laid out exactly as the real hub leaves it, which ``huggingface_hub.scan_cache_dir`` confirms.
"""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import pytest

import actionclip
from actionclip.errors import DownloadError
from actionclip.loading.download import cached_path, download, is_cached, resolve
from actionclip.loading.registry import MODELS, get_spec

from cli_support import make_video, run_cli

pytest.importorskip("huggingface_hub")

COMMIT = "a2e27a78a2b5d802e894b8a1ef14f3a8ce490963"


class _Hub(http.server.ThreadingHTTPServer):
    """Serves ``repos``: {repo id: {file name: bytes}} at the hub's resolve URLs."""

    def __init__(self, repos: dict[str, dict[str, bytes]]):
        self.repos = repos
        self.requests: list[tuple[str, str]] = []
        self.refuse_get: set[str] = set()  # file names whose GET is refused (403) after HEAD answered
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Hub

    def log_message(self, *args) -> None:
        pass

    def _answer(self, body: bool) -> None:
        self.server.requests.append((self.command, self.path))
        parts = self.path.split("?")[0].strip("/").split("/")
        repo, filename = "/".join(parts[:2]), "/".join(parts[4:])
        files = self.server.repos.get(repo)
        if files is None or parts[2:3] != ["resolve"]:
            self.send_response(404)
            self.send_header("X-Error-Code", "RepoNotFound")
            self.end_headers()
            return
        if filename not in files:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("X-Error-Message", "Entry not found")
            self.end_headers()
            return
        data = files[filename]
        if body and filename in self.server.refuse_get:
            self.send_response(403)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        self._answer(body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(body=True)


@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory) -> dict[str, Path]:
    from actionclip._dev.xclip_weights import write_xclip_checkpoint

    root = tmp_path_factory.mktemp("hub-src")
    return {"safetensors": write_xclip_checkpoint(root / "st", "hf-xclip", size="tiny", frames=8),
            "bin": write_xclip_checkpoint(root / "bin", "hf-xclip-bin", size="tiny-16", frames=8, seed=3)}


@pytest.fixture
def hub(tiny_folders, tmp_path, monkeypatch):
    def files(folder: Path) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in folder.iterdir()}

    server = _Hub({"microsoft/xclip-base-patch32": files(tiny_folders["safetensors"]),
                   "microsoft/xclip-base-patch16": files(tiny_folders["bin"])})  # a 2022 upload: .bin only
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    for var in ("ACTIONCLIP_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    yield server
    server.shutdown()
    server.server_close()


def test_every_xclip_entry_names_its_hub_repository_and_facts():
    xclip = [s for s in MODELS.values() if s.family == "xclip"]
    assert len(xclip) == 18
    for spec in xclip:
        assert spec.hub_id.startswith("microsoft/xclip-") and spec.licence == "MIT"
        assert spec.frames in (8, 16, 32) and spec.arch in ("ViT-B/32", "ViT-B/16", "ViT-L/14")
        if spec.url:
            assert spec.url.startswith("https://github.com/nbl97/X-CLIP_Model_Zoo/releases/download/v1.0/")
            assert spec.filename == "xclip-" + spec.url.rsplit("/", 1)[1]
    zero = get_spec("xclip-b-16-zero-shot")
    assert zero.frames == 32 and dict(zero.zero_shot) == {"ucf101": 72.0, "hmdb51": 44.6, "k600": 65.2}
    assert zero.url.endswith("/zero.pth") and zero.hub_id == "microsoft/xclip-base-patch16-zero-shot"
    assert get_spec("microsoft/xclip-base-patch32").name == "xclip-b-32-8f"  # a hub id finds its entry
    assert get_spec("xclip-b-32-8f").k400_top1 == 80.4


def test_download_goes_through_huggingface_hub_into_its_cache(hub, tmp_path):
    from huggingface_hub import scan_cache_dir

    folder = download("xclip-b-32-8f", progress=False)
    assert folder.parent.name == "snapshots" or folder.parent.parent.name.startswith("models--")
    assert folder.name == COMMIT and {p.name for p in folder.iterdir()} == {"config.json", "model.safetensors"}
    info = scan_cache_dir(tmp_path / "hf-cache")  # huggingface_hub recognises what it wrote
    assert [r.repo_id for r in info.repos] == ["microsoft/xclip-base-patch32"]
    assert is_cached("xclip-b-32-8f") and cached_path("xclip-b-32-8f") == folder
    # A cached model is found again without a single request.
    before = len(hub.requests)
    assert resolve("xclip-b-32-8f") == folder and len(hub.requests) == before


def test_repository_without_safetensors_falls_back_to_pytorch_model_bin(hub):
    folder = download("microsoft/xclip-base-patch16", progress=False)  # the hub id works as a name
    assert {p.name for p in folder.iterdir()} == {"config.json", "pytorch_model.bin"}
    assert ("HEAD", "/microsoft/xclip-base-patch16/resolve/main/model.safetensors") in hub.requests


def test_load_by_name_then_offline_from_the_cache(hub, tiny_folders, monkeypatch):
    model = actionclip.load("xclip-b-32-8f", dtype="fp32")
    assert model.name == "xclip-b-32-8f" and model.family == "xclip" and model.num_frames == 8
    reference = actionclip.load(tiny_folders["safetensors"], dtype="fp32")
    labels = model.encode_labels(["running", "swimming"])
    assert float((labels - reference.encode_labels(["running", "swimming"])).abs().max()) == 0.0
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.requests.clear()
    again = actionclip.load("microsoft/xclip-base-patch32", dtype="fp32")
    assert again.name == "xclip-b-32-8f" and hub.requests == []


@pytest.mark.parametrize("switch", ["ACTIONCLIP_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_and_not_cached_says_what_to_fetch_and_where(hub, monkeypatch, tmp_path, switch):
    monkeypatch.setenv(switch, "1")
    with pytest.raises(DownloadError) as err:
        download("xclip-b-16-zero-shot")
    message = str(err.value)
    assert "\n" not in message and hub.requests == []
    assert "hf download microsoft/xclip-base-patch16-zero-shot" in message
    assert str(tmp_path / "hf-cache") in message
    assert "https://github.com/nbl97/X-CLIP_Model_Zoo/releases/download/v1.0/zero.pth" in message


def test_cli_classify_offline_names_the_fetch_command(tmp_path):
    video = make_video(tmp_path / "clip.mp4")
    env = {"ACTIONCLIP_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "empty-hub-cache")}
    done = run_cli("classify", video, "--model", "xclip-b-16-zero-shot", "-t", "running", "-t", "swimming", env=env)
    assert done.returncode == 1 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("actionclip: error: ")
    assert "hf download microsoft/xclip-base-patch16-zero-shot" in lines[0]


def _unused_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens there once closed: connection refused


def _leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.name.endswith((".lock", ".incomplete", ".part")))


def test_cli_unreachable_hub_fails_at_once_in_one_line(tmp_path):
    """Not offline by switch, but no network (the hub's address refuses connections): one
    ``actionclip: error:`` line naming the model and how to fetch it, none of huggingface_hub's retry
    warnings (it retries an unreachable hub for ~25 s, one line per attempt), and nothing left in either
    cache. No time bound is asserted (the machine's load would decide it); no retry line means no
    retry loop."""
    video = make_video(tmp_path / "clip.mp4")
    env = {"HF_ENDPOINT": f"http://127.0.0.1:{_unused_port()}", "HF_HUB_CACHE": str(tmp_path / "hub-cache"),
           "ACTIONCLIP_CACHE": str(tmp_path / "cache"), "ACTIONCLIP_OFFLINE": "", "HF_HUB_OFFLINE": ""}
    done = run_cli("classify", video, "--model", "xclip-b-16-zero-shot", "-t", "running", "-t", "swimming", env=env)
    assert done.returncode == 1 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr  # before: 11 lines of "... thrown while requesting HEAD" / "Retrying in"
    assert lines[0].startswith("actionclip: error: cannot download model 'xclip-b-16-zero-shot'")
    assert "cannot reach http://127.0.0.1:" in lines[0] and "hf download microsoft/xclip-base-patch16-zero-shot" in lines[0]
    for cache in (tmp_path / "hub-cache", tmp_path / "cache"):
        assert not cache.exists() or _leftovers(cache) == []


def test_failed_hub_download_leaves_no_lock_files(hub, tmp_path):
    """The hub answers, then refuses the weights: huggingface_hub has taken a lock file per file by
    then; the failed download removes them (and huggingface_hub its partial files)."""
    hub.refuse_get.add("model.safetensors")
    with pytest.raises(DownloadError) as err:
        download("xclip-b-32-8f", progress=False)
    assert "\n" not in str(err.value) and "xclip-b-32-8f" in str(err.value)
    assert ("GET", "/microsoft/xclip-base-patch32/resolve/main/model.safetensors") in hub.requests
    assert (tmp_path / "hf-cache").is_dir() and _leftovers(tmp_path / "hf-cache") == []
    hub.refuse_get.clear()  # and the next run downloads it
    assert {p.name for p in download("xclip-b-32-8f", progress=False).iterdir()} == {"config.json", "model.safetensors"}


def test_hub_error_is_one_line_with_the_offline_recipe(hub):
    """A repository the hub does not have (404, not retried by huggingface_hub)."""
    with pytest.raises(DownloadError) as err:
        download("xclip-l-14-8f", progress=False)
    message = str(err.value)
    assert "\n" not in message and message.startswith("cannot download model 'xclip-l-14-8f'")
    assert "hf download microsoft/xclip-large-patch14" in message
    assert "load that file by path" not in message  # no release file: the L/14 originals are on Drive


def test_without_huggingface_hub_release_files_come_through_our_downloader(tmp_path):
    """huggingface_hub is optional: without it a B/16 name falls back to its GitHub release file, and a
    name with no release file (L/14) asks for the extra. Run where the package cannot be imported."""
    import os
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['huggingface_hub'] = None\n"
        "from actionclip.loading.download import download, cached_path\n"
        "from actionclip.errors import ActionCLIPError\n"
        "for name in ('xclip-b-16-zero-shot', 'xclip-l-14-8f'):\n"
        "    try:\n"
        "        download(name)\n"
        "    except ActionCLIPError as exc:\n"
        "        print(type(exc).__name__, exc)\n"
        "print(cached_path('xclip-b-16-zero-shot'))\n"
    )
    env = {**os.environ, "ACTIONCLIP_OFFLINE": "1", "ACTIONCLIP_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    zero, large, path = done.stdout.strip().splitlines()
    assert zero.startswith("DownloadError model 'xclip-b-16-zero-shot': it is not in the cache")
    assert f"download https://github.com/nbl97/X-CLIP_Model_Zoo/releases/download/v1.0/zero.pth and save it as " \
           f"{tmp_path / 'cache' / 'xclip-zero.pth'}" in zero
    assert large.startswith("UsageError") and "pip install \"actionclip[hub]\"" in large
    assert path == str(tmp_path / "cache" / "xclip-zero.pth")
