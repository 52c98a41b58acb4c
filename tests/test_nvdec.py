"""video/nvdec.py on a machine without a GPU: routing, frame mapping, the session pool, the fallback.

NVDEC itself cannot run here. Its place is taken by :class:`AllFrames`, a decoder that reads every
frame with PyAV in presentation order and answers by position, as NVDEC's batch-by-index call does:
what is checked is everything around the decoder -- that the planned positions, the rotation and the
GPU-side preprocessing give exactly the CPU path's views, that sessions are reused, that unfit files
go to the CPU, and that without the library one line says so. Pixel differences of the real decoder
(its own YUV->RGB conversion) are measured on a device by benchmarks/bench_nvdec.py.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

from actionclip._dev.videos import make_test_video
from actionclip.video import nvdec
from actionclip.video.decode import read_video
from actionclip.video.preprocess import Preprocessing
from actionclip.video.views import VideoViews


class AllFrames:
    """A stand-in decoder session: every frame decoded by PyAV, answered by position."""

    opened: list[str]

    def __init__(self):
        self.opened = []
        self._frames: list[np.ndarray] = []

    def open(self, path: str) -> None:
        import av

        self.opened.append(path)
        with av.open(path) as container:
            frames = sorted(container.decode(video=0), key=lambda f: f.pts)
            # no rotation here: the session applies it, as after NVDEC
            self._frames = [f.to_ndarray(format="rgb24") for f in frames]

    def read(self, positions):
        return torch.from_numpy(np.stack([self._frames[p] for p in positions]))

    def close(self) -> None:
        self._frames = []


@pytest.mark.parametrize("codec, pix_fmt, container, size, why", [
    ("h264", "yuv420p", "mov,mp4,m4a,3gp,3g2,mj2", (340, 256), None),
    ("hevc", "yuv420p", "matroska,webm", (1920, 1080), None),
    ("hevc", "yuv420p10le", "matroska,webm", (1920, 1080), "pixel format yuv420p10le"),
    ("vp9", "yuv420p", "matroska,webm", (640, 360), None),
    ("mpeg4", "yuv420p", "avi", (320, 240), "codec mpeg4"),  # UCF-101 / HMDB51
    ("av1", "yuv420p", "mov,mp4,m4a,3gp,3g2,mj2", (640, 360), "codec av1"),
    ("gif", "bgra", "gif", (224, 224), "codec gif"),
    ("h264", "yuv444p", "mov,mp4,m4a,3gp,3g2,mj2", (640, 360), "pixel format yuv444p"),
    ("h264", "yuv420p", "avi", (640, 360), "container avi"),
    ("h264", "yuv420p", "mov,mp4,m4a,3gp,3g2,mj2", (32, 32), "frame size 32x32"),
])
def test_routing_by_codec_format_container_and_size(codec, pix_fmt, container, size, why):
    reason = nvdec.nvdec_reason(codec, pix_fmt, container, *size)
    assert reason is None if why is None else reason.startswith(why)


def test_frame_positions_follow_the_cpu_readers_rule():
    fps = 25.0
    grid = [k / fps for k in range(10)]
    assert nvdec.frame_positions(grid, fps, [0, 3, 9, 10, 11]) == [0, 3, 9, 9, 9]  # past the end: the last
    assert nvdec.regular(grid, fps)
    # variable rate: frame i is the one on screen at (i + 0.5) / fps
    times = [0.0, 0.02, 0.1, 0.3, 0.32]
    assert nvdec.frame_positions(times, fps, [0, 1, 2, 3, 7, 8]) == [1, 1, 2, 2, 3, 4]
    assert not nvdec.regular(times, fps)


@pytest.mark.parametrize("name, options, clips, mode", [
    ("cfr.mp4", dict(seconds=3.0, size=(96, 64), gop=10), 1, "center"),
    ("bframes.mp4", dict(seconds=2.0, size=(80, 48), options={"bf": "2"}), 2, "center"),
    ("rotated.mp4", dict(seconds=2.0, size=(96, 64), rotation=90), 1, "uniform"),
    ("cfr.mkv", dict(seconds=2.0, size=(64, 48), fps=30), 3, "center"),
])
def test_planned_positions_decode_the_cpu_paths_frames(tmp_path, name, options, clips, mode):
    path = make_test_video(tmp_path / name, **options)
    p = nvdec.plan(path)
    assert p.reason is None, p.reason
    got = nvdec.sample_clips(AllFrames(), p, frames=8, clips=clips, mode=mode)
    want = read_video(path, frames=8, clips=clips, mode=mode)
    assert got.shape == want.shape
    assert np.array_equal(got.numpy(), want)


def test_variable_rate_and_mpeg4_are_left_to_the_cpu(tmp_path):
    vfr = nvdec.plan(make_test_video(tmp_path / "vfr.mkv", seconds=2.0, vfr=True))
    assert vfr.reason and "irregular" in vfr.reason
    avi = nvdec.plan(make_test_video(tmp_path / "x.avi", seconds=1.0, codec="mpeg4"))
    assert avi.reason and avi.reason.startswith("codec mpeg4")


def test_device_views_equal_the_cpu_views_and_uint8_views_normalise_to_them(tmp_path):
    path = make_test_video(tmp_path / "v.mp4", seconds=2.0, size=(120, 90))
    views = VideoViews(Preprocessing(64), frames=4, torch=True)
    for crops in (1, 3):
        want = views(path, crops=crops, clips=2)
        host = torch.from_numpy(views.sample(path, clips=2))
        assert torch.equal(nvdec.views_on_device(host, views.preprocessing, crops), want)
        raw = nvdec.views_on_device(host, views.preprocessing, crops, normalize=False)
        assert raw.dtype == torch.uint8 and raw.shape == want.shape
        from actionclip.video.preprocess import normalize_

        assert torch.allclose(normalize_(raw.float(), views.preprocessing), want, atol=1e-6)


def test_sessions_are_reused_results_match_and_unfit_files_go_to_the_cpu(tmp_path):
    good = [make_test_video(tmp_path / f"g{i}.mp4", seconds=1.0 + 0.2 * i, size=(96, 64)) for i in range(6)]
    vfr = make_test_video(tmp_path / "vfr.mp4", seconds=2.0, vfr=True, gop=12)
    avi = make_test_video(tmp_path / "u.avi", seconds=1.0, codec="mpeg4")
    views = VideoViews(Preprocessing(32), frames=4, torch=True)
    made: list[AllFrames] = []

    def factory():
        made.append(AllFrames())
        return made[-1]

    source = nvdec.NvdecSource(views, sessions=2, source_factory=factory)
    try:
        assert not source.accepts(avi) and source.accepts(good[0]) and not source.accepts(tmp_path / "none.mp4")
        items = good * 2 + [vfr]
        futures = [source.submit(item) for item in items]
        for item, future in zip(items, futures):
            assert torch.equal(future.result(), views(item))
        assert 1 <= source.sessions_open <= 2 and len(made) == source.sessions_open
        assert sum(len(s.opened) for s in made) == 12  # one decoder per session, reopened per file
        assert source.stats == {"nvdec": 12, "cpu": 1}  # the VFR file: decoded on the CPU
        broken = tmp_path / "broken.mp4"
        broken.write_bytes(b"not a video")
        with pytest.raises(Exception, match="broken.mp4"):
            source.submit(broken).result()
    finally:
        source.close()


def test_without_a_gpu_one_line_says_so_and_nothing_is_built(monkeypatch):
    lines: list[str] = []
    monkeypatch.setattr(nvdec, "_said", set())
    views = VideoViews(Preprocessing(32), frames=4)
    assert nvdec.nvdec_source(views, say=lines.append) is None
    assert nvdec.nvdec_source(views, say=lines.append) is None
    assert lines == ["actionclip: decoding on the CPU: NVDEC not used (no CUDA device)"]


def test_a_missing_or_broken_library_is_the_reason(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setitem(sys.modules, "PyNvVideoCodec", None)
    assert nvdec.availability() == 'pynvvideocodec is not installed (pip install "actionclip[nvdec]")'
    monkeypatch.delitem(sys.modules, "PyNvVideoCodec")
    fake = tmp_path / "PyNvVideoCodec"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise RuntimeError('Failed to load NVENC library: libnvidia-encode.so.1')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert nvdec.availability().startswith("pynvvideocodec cannot load (Failed to load NVENC library")
    with pytest.raises(ValueError, match="backend"):
        nvdec.availability("dali")


def test_importing_the_module_needs_neither_library():
    code = "import sys, actionclip.video.nvdec; print('PyNvVideoCodec' in sys.modules, 'torchcodec' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False False", out.stderr


# --- wired into the decode pool: pipeline.sources_for decides, encode_videos uses it -----------------


class _Closable(AllFrames):
    """The stand-in session, remembering that its owner closed it."""

    closed = False

    def close(self) -> None:
        self.closed = True
        super().close()


class _Slow(AllFrames):
    """A stand-in session that takes its time, so that the items after the first find it full."""

    def open(self, path: str) -> None:
        time.sleep(0.5)
        super().open(path)


@pytest.fixture(scope="module")
def cpu_model(tiny_checkpoint):
    """The tiny model on the CPU, also on a GPU host (benchmarks/device_run.sh runs this file there)."""
    import actionclip

    return actionclip.load(tiny_checkpoint, device="cpu", dtype="fp32")


@pytest.fixture
def on_cuda(cpu_model, monkeypatch):
    """The tiny model claiming to run on CUDA (it stays on the CPU); no line said yet this process."""
    monkeypatch.setattr(type(cpu_model), "on_gpu", property(lambda self: True))
    monkeypatch.setattr(nvdec, "_said", set())
    monkeypatch.delenv("ACTIONCLIP_NVDEC", raising=False)
    return cpu_model


@pytest.fixture
def stand_in(monkeypatch):
    """NVDEC 'available', its sessions the PyAV stand-in; returns the sessions and sources made."""
    made: dict[str, list] = {"sessions": [], "sources": []}

    def session():
        made["sessions"].append(_Closable())
        return made["sessions"][-1]

    class Recorded(nvdec.NvdecSource):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made["sources"].append(self)

    monkeypatch.setattr(nvdec, "availability", lambda backend="pynvvideocodec": None)
    monkeypatch.setattr(nvdec, "_source_factory", lambda backend, gpu_id: session)
    monkeypatch.setattr(nvdec, "NvdecSource", Recorded)
    return made


def _features(runs):
    out = [(batch, f) for batch, f in runs]
    assert not [f for _, f in out if isinstance(f, BaseException)], out
    return [item for batch, _ in out for item in batch], torch.cat([f for _, f in out])


def test_a_cpu_model_gets_no_source_and_no_line(cpu_model, monkeypatch, capsys):
    from actionclip.model.scoring import NUMPY
    from actionclip.pipeline import PrepareViews, sources_for

    monkeypatch.setattr(nvdec, "_said", set())
    monkeypatch.setattr(nvdec, "availability", lambda backend="pynvvideocodec": None)  # even with the library
    prepare = PrepareViews(cpu_model.views, 8)
    lines: list[str] = []
    assert not cpu_model.on_gpu and sources_for(cpu_model, prepare, say=lines.append) == []

    class OnnxOnCuda:  # ONNX Runtime on CUDA: numpy arrays, nothing NVDEC's tensors could feed
        on_gpu = True
        ops = NUMPY

    assert sources_for(OnnxOnCuda(), prepare, say=lines.append) == []  # type: ignore[arg-type]
    assert lines == [] and capsys.readouterr().err == ""


def test_a_cuda_model_without_the_library_says_one_line_and_runs_on_the_cpu(on_cuda, tmp_path, monkeypatch):
    from actionclip.pipeline import PrepareViews, encode_videos, sources_for

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setitem(sys.modules, "PyNvVideoCodec", None)
    videos = [make_test_video(tmp_path / f"v{i}.mp4", seconds=1.0) for i in range(2)]
    prepare = PrepareViews(on_cuda.views, 8)
    lines: list[str] = []
    assert sources_for(on_cuda, prepare, say=lines.append) == []
    assert sources_for(on_cuda, prepare, say=lines.append) == []
    assert lines == ['actionclip: decoding on the CPU: NVDEC not used (pynvvideocodec is not installed '
                     '(pip install "actionclip[nvdec]"))']
    default = _features(encode_videos(on_cuda, videos, prepare, batch_size=2, workers=0))
    cpu = _features(encode_videos(on_cuda, videos, prepare, batch_size=2, workers=0, sources=()))
    assert default[0] == cpu[0] == videos and torch.equal(default[1], cpu[1])


def test_the_switch_and_other_preparations_rule_nvdec_out(on_cuda, stand_in, monkeypatch):
    from actionclip.pipeline import PrepareViews, sources_for

    prepare = PrepareViews(on_cuda.views, 8)
    monkeypatch.setenv("ACTIONCLIP_NVDEC", "0")
    assert sources_for(on_cuda, prepare) == []
    monkeypatch.setenv("ACTIONCLIP_NVDEC", "1")
    assert sources_for(on_cuda, lambda item: on_cuda.views(item, normalize=False)) == []  # not PrepareViews
    [source] = sources_for(on_cuda, prepare)
    try:
        assert (source.normalize, source.frames, source.clips, source.crops) == (False, 8, 1, 1)
    finally:
        source.close()


def test_encode_videos_takes_nvdec_for_h264_and_the_workers_for_the_rest(on_cuda, stand_in, tmp_path):
    from actionclip.pipeline import PrepareViews, encode_videos

    h264 = [make_test_video(tmp_path / f"v{i}.mp4", seconds=1.0 + 0.2 * i, size=(96, 64)) for i in range(3)]
    avi = make_test_video(tmp_path / "u.avi", seconds=1.0, codec="mpeg4")
    gif = make_test_video(tmp_path / "g.gif", seconds=0.6)
    items = [h264[0], avi, h264[1], gif, h264[2]]
    prepare = PrepareViews(on_cuda.views, 8, clips=2)
    wired = _features(encode_videos(on_cuda, items, prepare, batch_size=2, workers=2))
    [source] = stand_in["sources"]
    opened = sorted(path for session in stand_in["sessions"] for path in session.opened)
    assert opened == sorted(str(v) for v in h264)  # the MPEG-4 avi and the gif: the worker processes'
    assert source.stats == {"nvdec": 3, "cpu": 0}
    # closed after the run, as encode_videos made it: sessions released, no thread left
    assert stand_in["sessions"] and all(session.closed for session in stand_in["sessions"])
    with pytest.raises(RuntimeError):
        source.submit(h264[0])
    reference = _features(encode_videos(on_cuda, items, prepare, batch_size=2, workers=0, sources=()))
    assert wired[0] == reference[0] == items
    assert torch.equal(wired[1], reference[1])  # bit for bit: the stand-in decodes with PyAV, same crops


def test_the_workers_take_what_a_full_source_has_no_room_for(on_cuda, tmp_path):
    from actionclip.pipeline import PrepareViews, encode_videos

    videos = [make_test_video(tmp_path / f"v{i}.mp4", seconds=1.0, size=(96, 64)) for i in range(6)]
    prepare = PrepareViews(on_cuda.views, 8)
    sessions: list[_Slow] = []

    def session():
        sessions.append(_Slow())
        return sessions[-1]

    source = nvdec.NvdecSource(on_cuda.views, sessions=1, capacity=1, normalize=False, source_factory=session)
    try:
        assert source.accepts(videos[0]) and source.capacity == 1
        wired = _features(encode_videos(on_cuda, videos, prepare, batch_size=2, workers=2, sources=[source]))
        opened = [path for s in sessions for path in s.opened]
        # the first went to NVDEC; the second, offered at once while the first was busy, to the workers
        # (which of the later ones NVDEC gets depends on when it is free again: the pool's start)
        assert opened[0] == str(videos[0]) and str(videos[1]) not in opened and len(opened) < len(videos)
        reference = _features(encode_videos(on_cuda, videos, prepare, batch_size=2, workers=0, sources=()))
        assert wired[0] == reference[0] and torch.equal(wired[1], reference[1])
        # the caller's source outlives the run: still open, nothing left in flight
        assert source.in_flight == 0 and np.array_equal(source.submit(videos[0]).result().numpy(), prepare(videos[0]))
    finally:
        source.close()


def test_in_flight_counts_down_as_futures_finish_and_capacity_refuses(tmp_path):
    path = make_test_video(tmp_path / "v.mp4", seconds=1.0)
    gate = threading.Event()

    class Gated(AllFrames):
        def open(self, path):
            gate.wait(30)
            super().open(path)

    views = VideoViews(Preprocessing(32), frames=4, torch=True)
    source = nvdec.NvdecSource(views, sessions=1, capacity=2, source_factory=Gated)
    try:
        futures = [source.submit(path) for _ in range(2)]
        assert source.in_flight == 2 and not source.accepts(path)  # full: the workers' turn
        futures[1].cancel()  # queued behind the first: cancelled, its place freed
        assert source.in_flight == 1 and source.accepts(path)
        gate.set()
        futures[0].result()
        deadline = time.monotonic() + 10
        while source.in_flight and time.monotonic() < deadline:  # the done callback runs just after
            time.sleep(0.01)
        assert source.in_flight == 0
        assert not source.accepts(tmp_path / "frames") and not nvdec.accepts(object())
    finally:
        gate.set()
        source.close()


def test_eval_and_index_preparations_say_which_items_are_video_files(tmp_path):
    from actionclip.collection.build import Job, Prepare
    from actionclip.pipeline import Prepared
    from actionclip.training.datasets import Sample
    from actionclip.training.evaluate import SampleViews

    video = make_test_video(tmp_path / "v.mp4", seconds=1.0)
    views = VideoViews(Preprocessing(32), frames=4, torch=True)
    samples = SampleViews(views, 4)
    (tmp_path / "frames").mkdir()
    assert samples.video_of(Sample(video, 0, "g")) == str(video)
    assert samples.video_of(Sample(tmp_path / "frames", 0, "g")) is None
    assert samples.video_of(Sample(video, 0, "g", num_frames=25)) is None  # a list file's frame count: its own rule
    job = Job(name=str(video), path=str(video), size=1, mtime_ns=1)
    out = Prepare(views, 4).finish(job, "views")  # what an NVDEC session runs after decoding
    assert isinstance(out, Prepared) and out.views == "views" and out.notes == {"duration": job.duration}
    from actionclip.video.decode import probe

    assert job.duration == float(probe(video).duration)


def test_serve_decodes_one_clip_requests_on_nvdec_and_the_rest_in_its_workers(on_cuda, stand_in, tmp_path):
    import asyncio

    from actionclip.serve.engine import Engine
    from actionclip.serve.settings import ServeSettings

    mp4 = [make_test_video(tmp_path / f"v{i}.mp4", seconds=1.0 + 0.5 * i, size=(96, 64)) for i in range(2)]
    avi = make_test_video(tmp_path / "u.avi", seconds=1.0, codec="mpeg4")
    requests = [(mp4[0], 1), (avi, 1), (mp4[1], 2)]  # (video, clips): 2 clips -> the workers
    labels = ["running", "walking", "jumping"]
    # a batch of 4 views: the three requests' (1 + 1 + 2), NVDEC's tensor beside the workers' numpy
    engine = Engine(on_cuda, ServeSettings(batch_size=4, max_wait=10.0, workers=1), model_name="tiny")

    async def all_at_once():
        return await asyncio.gather(*[engine.classify(v, v.name, labels, clips=c) for v, c in requests])

    try:
        records = asyncio.run(all_at_once())
        [source] = stand_in["sources"]
        assert [path for s in stand_in["sessions"] for path in s.opened] == [str(mp4[0])]
        assert engine.batcher.stats.largest == 3, "the three requests shared one pass"
    finally:
        engine.close()
    assert all(s.closed for s in stand_in["sessions"])
    for record, (video, clips) in zip(records, requests):
        expected = on_cuda.classify(video, labels, clips=clips)
        assert [r["label"] for r in record["results"]] == [label for label, _ in expected]
        np.testing.assert_allclose([r["prob"] for r in record["results"]], [p for _, p in expected], atol=1e-6)


# --- on a GPU host with the library (skipped elsewhere; benchmarks/device_run.sh runs them) ----------

needs_nvdec = pytest.mark.skipif(nvdec.availability() is not None if torch.cuda.is_available() else True,
                                 reason="needs a CUDA device and PyNvVideoCodec")


@needs_nvdec
@pytest.mark.parametrize("name, options", [
    ("gop.mp4", dict(seconds=4.0, size=(320, 240), gop=30)),
    ("bframes.mp4", dict(seconds=3.0, size=(256, 192), options={"bf": "2"})),
    ("rotated.mp4", dict(seconds=2.0, size=(320, 240), rotation=90)),
    ("clip.mkv", dict(seconds=3.0, size=(320, 240), fps=30)),
])
def test_nvdec_decodes_the_cpu_paths_frames(tmp_path, name, options):  # pragma: no cover - GPU only
    from actionclip._dev.videos import frame_index_from_pixels

    path = make_test_video(tmp_path / name, **options)
    p = nvdec.plan(path)
    assert p.reason is None, p.reason
    source = nvdec.PyNvVideoCodecSource()
    try:
        got = nvdec.sample_clips(source, p, frames=8, clips=2).cpu().numpy()
    finally:
        source.close()
    want = read_video(path, frames=8, clips=2)
    assert got.shape == want.shape
    # The same frames (each frame draws its own index), within a few grey levels (NVDEC's colours).
    got_idx = [frame_index_from_pixels(f) for f in got.reshape(-1, *got.shape[-3:])]
    want_idx = [frame_index_from_pixels(f) for f in want.reshape(-1, *want.shape[-3:])]
    assert got_idx == want_idx
    assert np.abs(got.astype(int) - want.astype(int)).mean() < 3


@needs_nvdec
def test_sessions_on_the_gpu_give_views_on_the_gpu(tmp_path):  # pragma: no cover - GPU only
    paths = [make_test_video(tmp_path / f"v{i}.mp4", seconds=2.0, size=(320, 240)) for i in range(6)]
    views = VideoViews(Preprocessing(224), frames=8, torch=True)
    source = nvdec.nvdec_source(views, sessions=3)
    assert source is not None
    try:
        outs = [f.result() for f in [source.submit(p) for p in paths * 2]]
        assert all(o.is_cuda and o.shape == (1, 8, 3, 224, 224) for o in outs)
        assert source.sessions_open <= 3 and source.stats == {"nvdec": 12, "cpu": 0}
        cpu = views(paths[0])
        assert (outs[0].cpu() - cpu).abs().mean() < 0.05  # a few grey levels over the std (~0.27 * 255)
    finally:
        source.close()
