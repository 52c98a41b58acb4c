"""Decode worker processes (actionclip.workers, pipeline.prefetch/encode_videos with processes): real
processes, input order, bounded memory, errors per item, early close and Ctrl-C, identical pixels
whatever the worker count, uint8 crops normalised on the model's side, the NVDEC seam."""

from __future__ import annotations

import concurrent.futures as cf
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from actionclip.pipeline import Prepared, PrepareViews, encode_videos, model_input, prefetch
from actionclip.video.preprocess import Preprocessing, normalize_, normalize_uint8, preprocess_frames
from actionclip.video.views import VideoViews
from actionclip.workers import DecodeSource, available_cores, resolve_workers

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "clips"


# --- functions the workers run (module level: they travel by reference) -------------------------------


def _slow_square(x: int) -> int:
    time.sleep(random.random() * 0.02)  # completion order differs from input order
    if x % 5 == 2:
        raise ValueError(f"bad item {x}")
    return x * x


def _whoami(_: object) -> tuple[int, str | None, int]:
    from actionclip.video import decode

    return os.getpid(), os.environ.get("OMP_NUM_THREADS"), decode._decoder_threads


def _pid_after(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def _gone(pid: int, timeout: float = 10.0) -> bool:
    """The process has exited (a zombie not yet reaped by its parent counts as exited)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> list[Path]:
    from actionclip._dev.videos import make_test_video

    root = tmp_path_factory.mktemp("workers")
    sizes = [(64, 48), (48, 64), (80, 60), (96, 54), (64, 64)]
    return [Path(make_test_video(root / f"v{i}.{'mp4' if i % 2 else 'avi'}", seconds=1 + 0.3 * i, size=size))
            for i, size in enumerate(sizes)]


# --- the pool ---------------------------------------------------------------------------------------


def test_processes_keep_input_order_and_return_errors():
    items = list(range(30))
    pooled = list(prefetch(_slow_square, items, workers=3, processes=True, ahead=4))
    assert [i for i, _ in pooled] == items
    for i, result in pooled:
        if i % 5 == 2:
            assert isinstance(result, ValueError) and str(result) == f"bad item {i}"
        else:
            assert result == i * i


def test_workers_are_other_processes_with_one_thread_each():
    results = [r for _, r in prefetch(_whoami, range(6), workers=2, processes=True)]
    pids = {pid for pid, _, _ in results}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    assert {(omp, ffmpeg) for _, omp, ffmpeg in results} == {("1", 1)}


def test_a_single_item_is_prepared_in_the_calling_process():
    [(_, (pid, _, _))] = list(prefetch(_whoami, ["only"], workers=4, processes=True))
    assert pid == os.getpid()


def test_bounded_in_flight_with_processes():
    pulled = 0

    def source():
        nonlocal pulled
        for i in range(200):
            pulled += 1
            yield i

    gen = prefetch(_slow_square, source(), workers=2, processes=True, ahead=3)
    for consumed, _ in enumerate(gen, start=1):
        assert pulled - consumed <= 3
        if consumed == 8:
            break
    gen.close()
    assert pulled <= 11


def test_early_close_leaves_no_worker_running():
    gen = prefetch(_pid_after, [0.05] + [0.5] * 20, workers=2, processes=True, ahead=4)
    _, first = next(gen)
    started = time.monotonic()
    gen.close()  # waits for the clip each worker is on, cancels the rest
    assert time.monotonic() - started < 5
    assert _gone(first)


_INTERRUPTED = """
import sys, time
from actionclip.pipeline import prefetch
sys.path.insert(0, {tests!r})
from test_workers import _pid_after
if __name__ == "__main__":
    for _, pid in prefetch(_pid_after, [0.01] * 2 + [0.3] * 200, workers=2, processes=True):
        print(pid, flush=True)
"""


def test_ctrl_c_stops_the_run_and_its_workers(tmp_path):
    script = tmp_path / "interrupted.py"
    script.write_text(_INTERRUPTED.format(tests=str(Path(__file__).parent)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parents[1]),
                                                                    os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, start_new_session=True)
    pids = {int(proc.stdout.readline()) for _ in range(3)}
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole process group
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:  # pragma: no cover - the failure this test exists for
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    assert all(_gone(pid) for pid in pids)


def test_other_decode_sources_take_what_they_accept_in_order():
    class EvenOnGpu:
        """A stand-in for NVDEC: takes the even items, decodes them in a thread of its own."""

        capacity = 1

        def __init__(self):
            self.pool = cf.ThreadPoolExecutor(1)
            self.taken = []

        def accepts(self, item):
            return item % 2 == 0

        def submit(self, item):
            self.taken.append(item)
            return self.pool.submit(lambda: ("gpu", item * item))

        def close(self):
            self.pool.shutdown()

    gpu = EvenOnGpu()
    assert isinstance(gpu, DecodeSource)
    try:
        for workers in (0, 2):
            gpu.taken.clear()
            out = list(prefetch(_slow_square, range(10), workers=workers, processes=True, sources=[gpu]))
            assert [i for i, _ in out] == list(range(10))
            assert gpu.taken == [0, 2, 4, 6, 8]
            for i, r in out:
                if i % 2 == 0:
                    assert r == ("gpu", i * i)
                elif i % 5 == 2:
                    assert isinstance(r, ValueError)
                else:
                    assert r == i * i
    finally:
        gpu.close()


def test_the_workers_rule():
    assert resolve_workers(None) == available_cores() >= 1
    assert resolve_workers(0) == 0 and resolve_workers(3) == 3
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError):
            resolve_workers(bad)


# --- pixels: identical whatever the worker count; uint8 then normalise = the float path ---------------


@pytest.mark.parametrize("kernel_torch", [True, False])
@pytest.mark.parametrize("crops", [1, 3])
def test_uint8_then_normalise_equals_the_float_path(kernel_torch, crops):
    import torch

    rng = np.random.default_rng(crops)
    frames = rng.integers(0, 256, size=(2, 4, 90, 120, 3), dtype=np.uint8)
    prep = Preprocessing(resolution=32, mean=(0.4, 0.5, 0.6), std=(0.2, 0.3, 0.25))
    src = torch.from_numpy(frames) if kernel_torch else frames
    reference = preprocess_frames(src, prep, crops)
    crops_u8 = preprocess_frames(src, prep, crops, normalize=False)
    assert str(crops_u8.dtype) in ("uint8", "torch.uint8")
    for moved in (crops_u8, torch.as_tensor(np.asarray(crops_u8))):  # numpy (ONNX) and torch (any device)
        out = normalize_uint8(moved, prep)
        assert np.array_equal(np.asarray(out), np.asarray(reference))
    already = normalize_uint8(reference, prep)  # floats pass through
    assert already is reference


@pytest.mark.parametrize("torch_kernel", [True, False])
def test_zero_and_n_workers_give_identical_crops(videos, torch_kernel):
    prepare = PrepareViews(VideoViews(Preprocessing(resolution=32), 4, torch=torch_kernel), 4, clips=2, crops=3)
    sequential = [r for _, r in prefetch(prepare, videos, workers=0)]
    pooled = [r for _, r in prefetch(prepare, videos, workers=2, processes=True)]
    for a, b in zip(sequential, pooled):
        assert a.dtype == np.uint8 and a.shape == (6, 4, 3, 32, 32)
        assert np.array_equal(a, b)
    # and the normalised views are the float path's, bit for bit
    views = VideoViews(Preprocessing(resolution=32), 4, torch=torch_kernel)
    direct = views(str(videos[0]), clips=2, crops=3)
    assert np.array_equal(np.asarray(normalize_uint8(sequential[0], views.preprocessing)), np.asarray(direct))


@pytest.mark.skipif(not SHARED.is_dir(), reason="the shared clips are not here")
def test_shared_clips_identical_in_workers():
    found = sorted(p for p in SHARED.rglob("*") if p.suffix in (".mp4", ".avi", ".mkv", ".gif"))
    picked = [p for p in found if p.suffix == ".mp4"][:2] + [p for p in found if p.suffix == ".avi"][:2] + \
        [p for p in found if p.suffix in (".mkv", ".gif")]
    prepare = PrepareViews(VideoViews(Preprocessing(), 8, torch=True), 8)
    sequential = [r for _, r in prefetch(prepare, picked, workers=0)]
    pooled = [r for _, r in prefetch(prepare, picked, workers=2, processes=True)]
    assert all(np.array_equal(a, b) for a, b in zip(sequential, pooled))


# --- encode_videos: errors name the file, notes come back from the workers -----------------------------


class _Clip:
    """An item as classify makes them: ``name`` is what the user typed."""

    def __init__(self, name: str):
        self.name = name
        self.duration = None


def _numpy_model():
    from actionclip.model.base import VideoTextModel
    from actionclip.model.config import ModelConfig

    class Mean(VideoTextModel):
        """numpy backend: a clip's 'embedding' is the mean of its normalised pixels."""

        def __init__(self):
            self.config = ModelConfig(frames=4, preprocessing=Preprocessing(resolution=32))

        def encode_video(self, pixels):
            assert pixels.dtype == np.float32  # normalised before the model sees it
            return pixels.reshape(pixels.shape[0], -1).mean(axis=1, keepdims=True)

    return Mean()


class _WithDuration(PrepareViews):
    """Learns something about its item in the worker, as the index's preparation learns the duration."""

    def __call__(self, item):
        return Prepared(super().__call__(item), {"duration": float(len(item.name))})


def test_encode_videos_in_workers_errors_and_notes(videos, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(os.urandom(3000))
    model = _numpy_model()
    prepare = _WithDuration(VideoViews(model.config.preprocessing, 4), 4)
    runs = {}
    for workers in (0, 2):
        items = [_Clip(str(v)) for v in videos[:2]] + [_Clip(str(broken))] + [_Clip(str(v)) for v in videos[2:]]
        out = list(encode_videos(model, items, prepare, batch_size=2, workers=workers))
        failed = [(batch, r) for batch, r in out if isinstance(r, BaseException)]
        assert [(b[0].name, str(r).split(":")[0]) for b, r in failed] == [(str(broken), str(broken))]
        assert all(i.duration == float(len(i.name)) for i in items if i.name != str(broken))
        runs[workers] = np.concatenate([r for _, r in out if not isinstance(r, BaseException)])
    assert runs[0].shape == (len(videos), 1, 1) and np.array_equal(runs[0], runs[2])


def test_model_input_normalises_on_the_model_side():
    model = _numpy_model()
    prep = model.config.preprocessing
    u8 = [np.random.default_rng(i).integers(0, 256, (1, 4, 3, 32, 32), dtype=np.uint8) for i in range(3)]
    batch = model_input(model, u8)
    assert batch.shape == (3, 1, 4, 3, 32, 32) and batch.dtype == np.float32
    assert np.array_equal(batch[1], normalize_(u8[1].astype(np.float32), prep))


# --- the one --workers rule on the commands ------------------------------------------------------------


@pytest.mark.parametrize("command", ["classify", "eval", "index", "serve", "eval-open-vocab"])
def test_every_many_video_command_takes_the_workers_rule(command, capsys):
    from actionclip.cli import main

    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--workers N decode worker processes (0: decode in this process; default: one per CPU core" in text


def test_eval_still_accepts_processes(capsys):
    from actionclip.cli import build_parser

    args = build_parser().parse_args(["eval", "data", "--processes", "--workers", "3"])
    assert args.workers == 3


def test_classify_folder_identical_with_zero_and_two_workers(ckpt, videos, capsys):
    from actionclip.cli import main

    runs = {}
    for workers in ("0", "2"):
        code = main(["classify", str(videos[0].parent), "--text", "run", "--text", "jump", "--text", "wave",
                     "--model", str(ckpt), "--json", "--workers", workers])
        out = capsys.readouterr().out
        assert code == 0
        runs[workers] = [(r["video"], [(x["label"], x["prob"]) for x in r["results"]])
                         for r in map(__import__("json").loads, out.splitlines())]
    assert len(runs["0"]) == len(videos) and runs["0"] == runs["2"]  # bit for bit, not approximately


def test_serve_follows_the_same_rule():
    from actionclip.serve.settings import ServeSettings

    assert ServeSettings().for_device("cpu").workers == available_cores()
    assert ServeSettings().for_device("cuda").workers == available_cores()
    assert ServeSettings().for_device("cuda", workers=0).workers == 0


def _die_on_three(x: int) -> int:
    if x == 3:
        os._exit(1)  # as a decoder crashing on one file takes its whole process with it
    time.sleep(0.01)
    return x


def test_a_worker_that_dies_fails_only_its_own_item():
    out = list(prefetch(_die_on_three, range(10), workers=2, processes=True, ahead=4))
    assert [i for i, _ in out] == list(range(10))
    for i, result in out:
        if i == 3:
            assert "decode worker process died" in str(result)
        else:
            assert result == i


def test_a_script_without_a_main_guard_is_not_run_again_in_the_workers(videos, tmp_path):
    # A user's script calling the library at its top level, without `if __name__ == "__main__":`:
    # decode workers must not re-run it (it would run twice more, then fail as it starts a pool).
    script = tmp_path / "user_script.py"
    script.write_text(
        "from actionclip.pipeline import PrepareViews, prefetch\n"
        "from actionclip.video.preprocess import Preprocessing\n"
        "from actionclip.video.views import VideoViews\n"
        "print('top level ran', flush=True)\n"
        "prepare = PrepareViews(VideoViews(Preprocessing(32), 4), 4)\n"
        f"videos = {[str(v) for v in videos[:3]]!r}\n"
        "results = [r for _, r in prefetch(prepare, videos, workers=2, processes=True)]\n"
        "print('decoded', [tuple(r.shape) if hasattr(r, 'shape') else repr(r) for r in results], flush=True)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("top level ran") == 1, done.stdout
    assert "Error" not in done.stdout and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "decoded [(1, 4, 3, 32, 32), (1, 4, 3, 32, 32), (1, 4, 3, 32, 32)]" in done.stdout


def test_a_function_from_the_main_script_still_reaches_the_workers(tmp_path):
    # The other way round: prefetch(fn) with fn defined in a guarded __main__ script keeps working.
    script = tmp_path / "guarded.py"
    script.write_text(
        "from actionclip.pipeline import prefetch\n"
        "def plus_one(x):\n"
        "    return x + 1\n"
        "if __name__ == '__main__':\n"
        "    print([r for _, r in prefetch(plus_one, range(5), workers=2, processes=True)], flush=True)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[1, 2, 3, 4, 5]", (done.stdout, done.stderr[-2000:])
