"""Every command x every bad input, each a real ``actionclip`` process: the house rule for bad input.

A bad input must end the run with a non-zero exit code and exactly one line on stderr, beginning
``actionclip: error:``, with no traceback; nothing may be half-written: the run's output folder
holds nothing afterwards (no output, no temporary file beside where it would have gone), and a file
in the way of an output is left as it was.

``TABLE`` says which bad inputs mean something for each command; a combination that does not (a
command with no such input) is left out of the table rather than skipped at run time. The runs
are independent processes, so they are started together (a few at a time) once per module and each
test checks its own result: the sweep costs about what its slowest processes cost, not their sum.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cli_support import REPO_ROOT, make_video

INPUTS = ("missing file", "empty file", "not a video", "truncated video", "empty label list", "unknown model",
          "unwritable output", "corrupt checkpoint", "malicious checkpoint")
ALL = INPUTS
MODEL_FILE = ("missing file", "empty file", "unknown model", "corrupt checkpoint", "malicious checkpoint")

# command -> the bad inputs it can be given (see each command's notes in _argv)
TABLE: dict[str, tuple[str, ...]] = {
    "classify": ALL,
    "timeline": ALL,
    "watch": tuple(i for i in ALL if i != "unwritable output"),  # writes no file
    "eval": ALL,
    "train": ALL,
    "index": tuple(i for i in ALL if i != "empty label list"),  # takes no labels
    # the index is the input: missing, an empty file, a text file in its place; an empty query
    "search": ("missing file", "empty file", "not a video", "empty label list"),
    "export": (*MODEL_FILE, "unwritable output"),  # the model is its only input
    "serve": (*MODEL_FILE, "unwritable output"),  # start-up: the model and the upload folder
    "download": ("unknown model", "unwritable output"),  # names in, files into the cache
    "bench": ("missing file", "empty file", "not a video", "truncated video", "unwritable output",
              "corrupt checkpoint", "malicious checkpoint"),  # its --clip, --json and --model
    "models": (),  # takes no input at all
    # the ground truth is the input (missing, empty, plain text); the predictions are good
    "detection_map": ("missing file", "empty file", "not a video"),
    # the index is the input, as for search; the captions are good
    "eval_retrieval": ("missing file", "empty file", "not a video"),
    # videos scored against a good ground truth that names every video's stem
    "eval_timeline": tuple(i for i in ALL if i != "empty label list"),  # labels come from the ground truth
    "eval_open_vocab": (*MODEL_FILE, "unwritable output"),  # the dataset list and the model
}
CASES = [(command, bad) for command, bads in TABLE.items() for bad in bads]


class _RunsCode:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_checkpoint) -> dict[str, Path]:
    import pickle

    root = tmp_path_factory.mktemp("bad-inputs")
    good = make_video(root / "good.mp4", seconds=1.0)
    data = good.read_bytes()
    (root / "empty.mp4").write_bytes(b"")
    (root / "notes.mp4").write_text("this is plain text, not a video\n" * 10)
    (root / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (root / "empty-labels.txt").write_text("# no labels here\n\n")
    (root / "labels.txt").write_text("running\nwalking\n")
    ckpt = Path(tiny_checkpoint).read_bytes()
    (root / "corrupt.pt").write_bytes(ckpt[: len(ckpt) // 3])
    (root / "empty.pt").write_bytes(b"")
    (root / "evil.pt").write_bytes(pickle.dumps({"model_state_dict": _RunsCode(str(root / "pwned"))}))
    (root / "blocker").write_text("a file where an output folder would go\n")
    (root / "not-an-index").write_text("notes\n")
    (root / "empty-index").write_bytes(b"")
    import json

    (root / "gt.json").write_text(json.dumps({"version": "1.3", "taxonomy": [], "database": {
        stem: {"subset": "validation", "duration": 1.0, "annotations": [{"segment": [0.0, 0.5], "label": "running"}]}
        for stem in ("good", "missing", "empty", "notes", "truncated")}}))
    (root / "pred.json").write_text(json.dumps({"version": "1.3", "external_data": {}, "results": {
        "good": [{"label": "running", "score": 0.9, "segment": [0.0, 0.5]}]}}))
    (root / "captions.csv").write_text("video_id,sentence\ngood,someone running\n")
    (root / "four-labels.txt").write_text("running\nwalking\njumping\nsitting\n")
    return {"root": root, "good": good, "ckpt": Path(tiny_checkpoint)}


def _argv(command: str, bad: str, f: dict[str, Path], out: Path) -> tuple[list[str], dict[str, str]]:
    """The command line of one case: a good run of ``command`` with the one bad input in it."""
    root = f["root"]
    video = {"missing file": root / "missing.mp4", "empty file": root / "empty.mp4", "not a video": root / "notes.mp4",
             "truncated video": root / "truncated.mp4"}.get(bad, f["good"])
    model = {"unknown model": "no-such-model", "corrupt checkpoint": root / "corrupt.pt",
             "malicious checkpoint": root / "evil.pt"}.get(bad, f["ckpt"])
    if command in ("export", "serve"):
        model = {"missing file": root / "missing.pt", "empty file": root / "empty.pt"}.get(bad, model)
    labels = ["--labels", root / "empty-labels.txt"] if bad == "empty label list" else ["-t", "running", "-t", "walking"]
    dest = root / "blocker" / "out" if bad == "unwritable output" else out
    run = ["--model", model, "--device", "cpu"]
    env: dict[str, str] = {}
    if command == "classify":
        argv = [video, *labels, *run, "-o", dest / "results.jsonl"]
    elif command == "timeline":
        argv = [video, *labels, *run, "--window", "1", "--out", dest / "timeline"]
    elif command == "watch":
        argv = [video, *labels, *run, "--window", "1", "--no-realtime", "--no-reconnect"]
    elif command in ("eval", "train"):
        # The dataset list is the input; its one clip is the bad video.
        data = {"missing file": root / "missing.csv", "empty file": root / "empty.mp4"}.get(bad)
        if data is None:
            data = out.parent / f"{out.name}.csv"
            data.write_text(f"path,label\n{video},running\n")
        classes = root / "empty-labels.txt" if bad == "empty label list" else root / "labels.txt"
        argv = [data, "--labels", classes, *run, "--out", dest / "run"]
        if command == "train":
            argv += ["--epochs", "1", "--batch-size", "1", "--workers", "0", "--val-fraction", "0.5"]
    elif command == "index":
        argv = [video, *run, "-o", dest / "videos.index"]
    elif command == "search":
        index = {"missing file": root / "missing.index", "empty file": root / "empty-index",
                 "not a video": root / "not-an-index"}.get(bad, root / "not-an-index")
        argv = [index, "" if bad == "empty label list" else "someone running", "--device", "cpu"]
    elif command == "export":
        argv = [model, "--onnx", dest / "onnx"]
    elif command == "detection_map":
        gt = {"missing file": root / "missing.json", "empty file": root / "empty-index",
              "not a video": root / "not-an-index"}[bad]
        argv = [gt, root / "pred.json", "--json"]
    elif command == "eval_retrieval":
        index = {"missing file": root / "missing.index", "empty file": root / "empty-index",
                 "not a video": root / "not-an-index"}[bad]
        argv = [index, root / "captions.csv", "--device", "cpu"]
    elif command == "eval_timeline":
        argv = [video, "--ground-truth", root / "gt.json", *run, "--window", "1", "--out", dest / "run"]
    elif command == "eval_open_vocab":
        data = {"missing file": root / "missing.csv", "empty file": root / "empty.mp4"}.get(bad)
        if data is None:
            data = out.parent / f"{out.name}.csv"
            data.write_text("".join(f"path,label\n{f['good']},{c}\n" if i == 0 else f"{f['good']},{c}\n"
                                    for i, c in enumerate(("running", "walking", "jumping", "sitting"))))
        argv = [data, "--labels", root / "four-labels.txt", *run, "--splits", "1", "--out", dest / "run"]
    elif command == "serve":
        argv = [*run, "--port", "0", "--temp-dir", dest if bad == "unwritable output" else out]
    elif command == "download":
        argv = ["no-such-model" if bad == "unknown model" else "vit-b-32-8f"]
        # Online, so that the unwritable cache itself is the cause (offline, "not cached" would be):
        # the cache is checked before any connection is made.
        env = {"ACTIONCLIP_CACHE": str(dest / "cache"), "ACTIONCLIP_OFFLINE": "0", "HF_HUB_OFFLINE": "0"}
    elif command == "bench":
        clip = video if bad in ("missing file", "empty file", "not a video", "truncated video") else f["good"]
        bench_model = model if bad.endswith("checkpoint") else "tiny"
        argv = ["--model", bench_model, "--clip", clip, "--json", dest / "bench.json", "--device", "cpu",
                "--dtypes", "fp32", "--no-hf", "--no-onnx", "--repeats", "1", "--budget", "0.1", "-q"]
    else:
        raise AssertionError(f"no bad input for {command}")
    return [command.replace("_", "-"), *map(str, argv)], env


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    full = {**os.environ, "ACTIONCLIP_OFFLINE": "1", **env}
    try:
        return subprocess.run([sys.executable, "-m", "actionclip", *argv], capture_output=True, text=True,
                              timeout=120, env=full, cwd=REPO_ROOT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        return subprocess.CompletedProcess(argv, -1, exc.stdout or "", f"timed out after 120 s: {exc.stderr or ''}")


@pytest.fixture(scope="module")
def sweep(request, inputs, tmp_path_factory) -> dict[tuple[str, str], tuple[subprocess.CompletedProcess, Path]]:
    """The finished process of every selected case (``-k`` works) and its output folder, run a few at a time."""
    selected = [tuple(item.callspec.params[k] for k in ("command", "bad")) for item in request.session.items
                if item.originalname == "test_bad_input_is_one_error_line_and_nothing_written"]
    cache = tmp_path_factory.mktemp("sweep-cache")
    jobs = {}
    for command, bad in selected:
        out = tmp_path_factory.mktemp(f"{command}-{bad.replace(' ', '-')}") / "out"
        out.mkdir()
        argv, env = _argv(command, bad, inputs, out)
        jobs[(command, bad)] = (argv, {"ACTIONCLIP_CACHE": str(cache), **env}, out)
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = {case: pool.submit(_run, argv, env) for case, (argv, env, _) in jobs.items()}
        return {case: (future.result(), jobs[case][2]) for case, future in futures.items()}


def test_the_table_names_every_command():
    from actionclip.cli import COMMANDS

    assert set(TABLE) == set(COMMANDS)
    assert all(set(bads) <= set(INPUTS) for bads in TABLE.values())


@pytest.mark.parametrize("command, bad", CASES, ids=[f"{c}-{b.replace(' ', '-')}" for c, b in CASES])
@pytest.mark.heavy  # every command x bad input as a real process
def test_bad_input_is_one_error_line_and_nothing_written(sweep, inputs, command, bad):
    done, out = sweep[(command, bad)]
    lines = done.stderr.strip().splitlines()
    shown = f"$ actionclip {' '.join(done.args[3:] if len(done.args) > 3 else done.args)}\n{done.stderr}"
    assert "Traceback" not in done.stderr + done.stdout, shown
    assert done.returncode not in (0, -1), shown
    assert len(lines) == 1 and lines[0].startswith("actionclip: error: "), shown
    assert sorted(p.name for p in out.iterdir()) == [], shown  # no output, no temporary file
    root = inputs["root"]
    assert (root / "blocker").read_text() == "a file where an output folder would go\n"
    assert not (root / "pwned").exists()
