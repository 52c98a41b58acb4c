"""End-to-end tests of ``actionclip classify / models / download`` on a tiny random checkpoint.

Each behaviour is checked through ``python -m actionclip`` subprocesses where the process boundary
matters (seed form, exit codes, being killed) and through ``main([...])`` elsewhere (faster).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_support import REPO_ROOT, error_lines, json_lines, make_video, run_cli

from actionclip.cli import main

LABELS = ["running", "walking", "playing guitar"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """Three small videos in a folder tree, plus a non-video file that folder search must skip."""
    root = tmp_path_factory.mktemp("clips")
    paths = {
        "a": make_video(root / "a.mp4"),
        "b": make_video(root / "b.avi", seconds=1.5),
        "c": make_video(root / "sub" / "c.mkv", seconds=0.5, size=(48, 64)),
    }
    (root / "notes.txt").write_text("not a video\n")
    paths["root"] = root
    return paths


def _text_args(labels=LABELS) -> list[str]:
    return [arg for label in labels for arg in ("--text", label)]


def _classify_json(capsys, *args) -> tuple[int, list[dict], str]:
    # fp32 unless a test says otherwise: results are compared with the Python API's fp32 default, and
    # --dtype auto picks bf16 on CPUs with AMX/AVX512-BF16.
    dtype = [] if "--dtype" in map(str, args) else ["--dtype", "fp32"]
    code = main(["classify", *map(str, args), *dtype, "--json"])
    out = capsys.readouterr()
    return code, json_lines(out.out), out.err


def _parse_human(stdout: str) -> dict[str, dict[str, float]]:
    """{video: {label: percent}} from the human table."""
    table: dict[str, dict[str, float]] = {}
    current = None
    for line in stdout.splitlines():
        if line and not line.startswith(" "):
            current = line.rstrip(":")
            table[current] = {}
        elif line.strip():
            label, percent = re.match(r"\s+(.*?)\s+([\d.]+)%$", line).groups()
            table[current][label] = float(percent)
    return table


# ----------------------------------------------------------------------------------------------
# Forms of the command


@pytest.mark.heavy
def test_seed_form_subprocess_ranks_every_label(ckpt, clips):
    proc = run_cli("--video", clips["a"], "--text", "running", "--text", "walking", "--model", ckpt)
    assert proc.returncode == 0, proc.stderr
    table = _parse_human(proc.stdout)
    assert list(table) == [str(clips["a"])]
    probs = table[str(clips["a"])]
    assert set(probs) == {"running", "walking"}
    assert sum(probs.values()) == pytest.approx(100, abs=0.02)
    assert list(probs.values()) == sorted(probs.values(), reverse=True)
    assert "Traceback" not in proc.stderr


def test_seed_short_flags_and_subcommand_agree(ckpt, clips, capsys):
    assert main(["-v", str(clips["a"]), "-t", "running", "-t", "walking", "--model", str(ckpt)]) == 0
    seed = capsys.readouterr().out
    assert main(["classify", str(clips["a"]), "--text", "running", "--text", "walking", "--model", str(ckpt)]) == 0
    assert capsys.readouterr().out == seed


def test_json_matches_python_api(ckpt, clips, capsys):
    import actionclip

    code, records, _ = _classify_json(capsys, clips["a"], *_text_args(), "--model", ckpt)
    assert code == 0
    [record] = records
    assert record["video"] == str(clips["a"])
    assert record["frames"] == 8
    assert isinstance(record["model"], str) and record["model"]
    probs = [r["prob"] for r in record["results"]]
    assert probs == sorted(probs, reverse=True)
    assert sum(probs) == pytest.approx(1, abs=1e-5)
    assert {r["label"] for r in record["results"]} == set(LABELS)
    # The CLI is a thin layer: the same numbers as the Python API.
    expected = actionclip.load(str(ckpt), dtype="fp32").classify(str(clips["a"]), LABELS)
    got = {r["label"]: r["prob"] for r in record["results"]}
    for label, prob in expected:
        assert got[label] == pytest.approx(prob, abs=1e-5)


def test_top_k_limits_only_the_display(ckpt, clips, capsys, tmp_path):
    out = tmp_path / "r.jsonl"
    code, [record], _ = _classify_json(capsys, clips["a"], *_text_args(), "--model", ckpt, "--top-k", "2",
                                       "--output", out)
    assert code == 0 and len(record["results"]) == 2
    [saved] = json_lines(out.read_text())
    assert len(saved["results"]) == 3  # the file keeps the full distribution
    assert saved["results"][:2] == record["results"]


def test_label_file_and_template_file(ckpt, clips, capsys, tmp_path):
    import actionclip

    labels_file = tmp_path / "labels.txt"
    labels_file.write_text("# my classes\nrunning\n\n  walking  \nplaying guitar\n")
    templates_file = tmp_path / "templates.txt"
    templates_file.write_text("a video of a person {}\n# comment\n{} in slow motion\n")
    code, [record], _ = _classify_json(capsys, clips["b"], "--labels", labels_file, "--templates", templates_file,
                                       "--model", ckpt)
    assert code == 0
    got = {r["label"]: r["prob"] for r in record["results"]}
    assert set(got) == set(LABELS)
    model = actionclip.load(str(ckpt), dtype="fp32")
    templates = ["a video of a person {}", "{} in slow motion"]
    for label, prob in model.classify(str(clips["b"]), LABELS, templates=templates):
        assert got[label] == pytest.approx(prob, abs=1e-5)
    # ... and they are not the default-template numbers (the file was really used).
    default = dict(model.classify(str(clips["b"]), LABELS))
    assert any(abs(default[label] - got[label]) > 1e-4 for label in LABELS)


def test_single_template_option(ckpt, clips, capsys):
    import actionclip

    code, [record], _ = _classify_json(capsys, clips["a"], *_text_args(), "--template", "a clip of {}",
                                       "--model", ckpt)
    assert code == 0
    expected = dict(actionclip.load(str(ckpt), dtype="fp32").classify(str(clips["a"]), LABELS, templates=["a clip of {}"]))
    for r in record["results"]:
        assert r["prob"] == pytest.approx(expected[r["label"]], abs=1e-5)


def test_multi_view_clips_and_crops(ckpt, clips, capsys):
    import actionclip

    code, [record], _ = _classify_json(capsys, clips["b"], *_text_args(), "--clips", "2", "--crops", "3",
                                       "--frames", "4", "--model", ckpt)
    assert code == 0 and (record["frames"], record["clips"], record["crops"]) == (4, 2, 3)
    expected = dict(actionclip.load(str(ckpt), dtype="fp32").classify(str(clips["b"]), LABELS, frames=4, clips=2, crops=3))
    for r in record["results"]:
        assert r["prob"] == pytest.approx(expected[r["label"]], abs=1e-5)


# ----------------------------------------------------------------------------------------------
# Batches


def test_folder_glob_and_dedup(ckpt, clips, capsys):
    root = clips["root"]
    code, records, err = _classify_json(capsys, root, root / "a.mp4", f"{root}/**/*.mkv", *_text_args(),
                                        "--model", ckpt)
    assert code == 0, err
    # folder search is sorted and recursive, skips notes.txt; a.mp4 and c.mkv are not repeated
    assert [Path(r["video"]).name for r in records] == ["a.mp4", "b.avi", "c.mkv"]


def test_folder_with_broken_file_reports_others_and_fails(ckpt, clips, capsys, tmp_path):
    folder = tmp_path / "batch"
    folder.mkdir()
    for name in ("a.mp4", "b.avi"):
        (folder / name).write_bytes(clips["a" if name == "a.mp4" else "b"].read_bytes())
    (folder / "broken.mp4").write_bytes(os.urandom(5000))
    code, records, err = _classify_json(capsys, folder, *_text_args(), "--model", ckpt)
    assert code == 1
    assert [Path(r["video"]).name for r in records] == ["a.mp4", "b.avi"]
    [error] = error_lines(err)
    assert error.startswith(f"actionclip: error: {folder / 'broken.mp4'}: ")


def test_labels_embedded_once_per_run(ckpt, clips, capsys, monkeypatch):
    from actionclip.model.actionclip import ActionCLIP

    calls = []
    real = ActionCLIP.encode_labels

    def counting(self, *args, **kwargs):
        calls.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ActionCLIP, "encode_labels", counting)
    code, records, _ = _classify_json(capsys, clips["root"], *_text_args(), "--model", ckpt)
    assert code == 0 and len(records) == 3
    assert len(calls) == 1


@pytest.mark.parametrize("extra", [["--workers", "0"], ["--workers", "3", "--batch-size", "2"]])
def test_prefetch_and_batching_do_not_change_results(ckpt, clips, capsys, extra):
    _, reference, _ = _classify_json(capsys, clips["root"], *_text_args(), "--model", ckpt, "--workers", "1")
    _, other, _ = _classify_json(capsys, clips["root"], *_text_args(), "--model", ckpt, *extra)
    assert [r["video"] for r in other] == [r["video"] for r in reference]
    for a, b in zip(reference, other):
        assert [x["label"] for x in a["results"]] == [x["label"] for x in b["results"]]
        for x, y in zip(a["results"], b["results"]):
            assert x["prob"] == pytest.approx(y["prob"], abs=1e-5)


@pytest.mark.heavy
def test_onnx_backend_matches_torch_without_importing_torch(ckpt, clips, capsys, tmp_path):
    pytest.importorskip("onnxruntime")
    export = tmp_path / "onnx"
    assert main(["export", str(ckpt), "--onnx", str(export)]) == 0
    capsys.readouterr()
    code, torch_records, _ = _classify_json(capsys, clips["a"], clips["c"], *_text_args(), "--model", ckpt)
    assert code == 0
    script = (
        "import json, sys\n"
        "from actionclip.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "print('TORCH', 'torch' in sys.modules, 'EXIT', code)\n"
    )
    args = ["classify", clips["a"], clips["c"], *_text_args(), "--backend", "onnx", "--model", export, "--json"]
    proc = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "TORCH False EXIT 0" in proc.stdout
    onnx_records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [r["video"] for r in onnx_records] == [r["video"] for r in torch_records]
    for a, b in zip(torch_records, onnx_records):
        probs = {r["label"]: r["prob"] for r in b["results"]}
        for r in a["results"]:
            assert probs[r["label"]] == pytest.approx(r["prob"], abs=1e-4)


# ----------------------------------------------------------------------------------------------
# --output and resuming

# Runs the CLI with read_video stalling forever on files named "*stall*": the run writes the videos
# before it, then waits, and the test kills it at that point: a deterministic "killed mid-run".
_STALLING_DRIVER = """
import sys, time
import actionclip.video.decode as video
real = video.read_video
def read_video(path, *args, **kwargs):
    if "stall" in str(path):
        time.sleep(3600)
    return real(path, *args, **kwargs)
video.read_video = read_video
from actionclip.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _records(path: Path) -> list[dict]:
    return json_lines(path.read_text())


@pytest.mark.heavy
def test_resume_after_kill_loses_and_duplicates_nothing(ckpt, clips, capsys, tmp_path):
    folder = tmp_path / "v"
    videos = [folder / "1_first.mp4", folder / "2_stall.mp4", folder / "3_last.mp4"]
    for video in videos:
        folder.mkdir(exist_ok=True)
        video.write_bytes(clips["a"].read_bytes())
    out = tmp_path / "results.jsonl"
    args = ["classify", *videos, *_text_args(), "--model", ckpt, "--output", out]
    # --workers 0: the stall is patched into this process; decode worker processes would not see it
    proc = subprocess.Popen([sys.executable, "-c", _STALLING_DRIVER, *map(str, args), "--workers", "0"],
                            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        while not (out.exists() and out.read_text().count("\n") >= 1):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the first result never arrived"
            time.sleep(0.05)
        time.sleep(0.5)  # the run is stuck on the second video: nothing more gets written
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    before = _records(out)
    assert [Path(r["video"]).name for r in before] == ["1_first.mp4"]

    capsys.readouterr()
    assert main(list(map(str, args))) == 0  # the same command again
    rerun = capsys.readouterr()
    assert "skipping 1 video" in rerun.err
    after = _records(out)
    assert after[0] == before[0]  # untouched
    assert sorted(Path(r["video"]).name for r in after) == ["1_first.mp4", "2_stall.mp4", "3_last.mp4"]
    # the rerun printed only what it computed
    assert [Path(r).name for r in re.findall(r"^(\S+):$", rerun.out, re.M)] == ["2_stall.mp4", "3_last.mp4"]

    assert main(list(map(str, args))) == 0
    assert capsys.readouterr().out == ""
    assert _records(out) == after


def test_resume_repairs_truncated_last_line(ckpt, clips, capsys, tmp_path):
    out = tmp_path / "results.jsonl"
    base = [*_text_args(), "--model", str(ckpt), "--output", str(out)]
    assert main(["classify", str(clips["a"]), *base]) == 0
    with out.open("ab") as f:  # a run killed in the middle of writing the next line
        f.write(b'{"video": "' + str(clips["b"]).encode() + b'", "model": "ti')
    capsys.readouterr()
    assert main(["classify", str(clips["a"]), str(clips["b"]), *base]) == 0
    err = capsys.readouterr().err
    assert "incomplete last line" in err
    text = out.read_text()
    assert text.endswith("\n")
    records = [json.loads(line) for line in text.splitlines()]  # every line is whole JSON
    assert [r["video"] for r in records] == [str(clips["a"]), str(clips["b"])]


def test_resume_key_changes_with_labels_frames_and_model(ckpt, clips, capsys, tmp_path):
    out = tmp_path / "results.jsonl"
    common = [str(clips["a"]), "--model", str(ckpt), "--output", str(out), "--json"]
    assert main(["classify", *common, *_text_args()]) == 0
    # label order and case-insensitive spacing do not matter ...
    assert main(["classify", *common, *_text_args(list(reversed(LABELS)))]) == 0
    assert len(_records(out)) == 1
    # ... but another label set, frame count or model does
    assert main(["classify", *common, *_text_args(LABELS[:2])]) == 0
    assert main(["classify", *common, *_text_args(), "--frames", "4"]) == 0
    other = tmp_path / "other.pt"
    other.write_bytes(Path(ckpt).read_bytes())
    assert main(["classify", str(clips["a"]), "--model", str(other), "--output", str(out), *_text_args()]) == 0
    records = _records(out)
    assert len(records) == 4
    assert len({r["key"] for r in records}) == 4
    assert {r["path"] for r in records} == {str(clips["a"].resolve())}


def test_failed_videos_are_retried_not_recorded(ckpt, clips, capsys, tmp_path):
    out = tmp_path / "results.jsonl"
    bad = tmp_path / "later.mp4"
    bad.write_bytes(b"")
    args = ["classify", str(clips["a"]), str(bad), *_text_args(), "--model", str(ckpt), "--output", str(out)]
    assert main(args) == 1
    assert len(_records(out)) == 1
    bad.write_bytes(clips["b"].read_bytes())  # fixed: the rerun does it
    assert main(args) == 0
    assert [Path(r["video"]).name for r in _records(out)] == ["a.mp4", "later.mp4"]


def test_output_file_is_locked_against_a_second_run(ckpt, clips, tmp_path):
    from actionclip.errors import UsageError
    from actionclip.results import ResultsFile

    out = tmp_path / "results.jsonl"
    with ResultsFile(out):
        with pytest.raises(UsageError, match="another actionclip run"):
            ResultsFile(out)
    ResultsFile(out).close()  # released


def test_a_results_file_that_got_no_record_is_not_left_behind(tmp_path):
    from actionclip.results import ResultsFile

    out = tmp_path / "new" / "deeper" / "results.jsonl"
    ResultsFile(out).close()  # the run failed before its first video (a bad model, say)
    assert not (tmp_path / "new").exists()
    kept = tmp_path / "kept.jsonl"
    kept.write_text("")
    ResultsFile(kept).close()  # the user's own file stays, even empty
    assert kept.exists()
    with ResultsFile(out) as results:
        results.append({"path": "a.mp4", "key": "k"})
    assert out.read_text().count("\n") == 1


def test_output_file_write_failure_is_one_line(ckpt, clips, tmp_path, monkeypatch, capsys):
    import errno

    from actionclip import results

    def disk_full(fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(results.os, "write", disk_full)
    out = tmp_path / "results.jsonl"
    args = ["classify", str(clips["a"]), *_text_args(), "--model", str(ckpt), "--output", str(out)]
    assert main(args) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"actionclip: error: {out}: cannot write results file: No space left on device"
    assert "Traceback" not in "\n".join(err)


# ----------------------------------------------------------------------------------------------
# models, download, --help


def test_help_does_not_import_torch():
    code = (
        "import sys\n"
        "from actionclip.cli import main\n"
        "for argv in (['--help'], ['classify', '--help'], ['models', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = [m for m in ('torch', 'av', 'numpy', 'matplotlib', 'onnxruntime') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout
    for command in ("classify", "models", "download"):
        assert command in proc.stdout


def test_models_table_and_json(capsys):
    from actionclip.loading.registry import DEFAULT_MODEL, list_models

    assert main(["models"]) == 0
    table = capsys.readouterr().out
    default_row = next(line for line in table.splitlines() if DEFAULT_MODEL in line)
    assert default_row.startswith("*")
    for spec in list_models():
        assert spec.name in table
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == [s.name for s in list_models()]
    assert all(r["cached"] is False for r in rows)  # the test cache is empty
    assert [r["name"] for r in rows if r["default"]] == [DEFAULT_MODEL]


def test_cached_model_is_listed_and_used_offline(ckpt, clips, capsys, monkeypatch):
    """A checkpoint placed by hand in the cache shows as cached and classifies with no network."""
    from actionclip.loading.download import cached_path
    from actionclip.loading.registry import DEFAULT_MODEL

    target = cached_path(DEFAULT_MODEL)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(Path(ckpt).read_bytes())
    assert main(["models", "--json"]) == 0
    [row] = [r for r in json.loads(capsys.readouterr().out) if r["name"] == DEFAULT_MODEL]
    assert row["cached"] is True and row["size_bytes"] == target.stat().st_size
    monkeypatch.setenv("ACTIONCLIP_OFFLINE", "1")
    code, [record], _ = _classify_json(capsys, clips["a"], *_text_args())  # default model
    assert code == 0 and len(record["results"]) == 3


def test_download_offline_is_a_clear_error():
    proc = run_cli("download", "vit-b-32-8f", env={"ACTIONCLIP_OFFLINE": "1"}, timeout=30)
    assert proc.returncode == 1
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("actionclip: error: ") and "vit-b-32-8f" in line and "offline" in line


def test_download_unknown_name(capsys):
    assert main(["download", "vit-b-99"]) == 1
    err = capsys.readouterr().err
    assert "unknown model 'vit-b-99'" in err


# ----------------------------------------------------------------------------------------------
# The README's commands stay true


def _readme_commands() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_readme_sample_command_runs(ckpt, capsys):
    """The README's first command classifies the shipped sample (with the tiny model instead of the default)."""
    import shlex

    install_and_run = _readme_commands()[0]
    command = shlex.split(install_and_run.split("&&", 1)[1])
    assert command[:2] == ["actionclip", "classify"]
    sample = REPO_ROOT / command[2]
    assert sample.is_file() and sample.stat().st_size < 300_000
    code, [record], _ = _classify_json(capsys, sample, *command[3:], "--model", ckpt)
    assert code == 0
    assert {r["label"] for r in record["results"]} == {command[i + 1] for i, a in enumerate(command) if a == "--text"}


def test_ci_runs_the_readme_test_command():
    test_command = _readme_commands()[1]
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert "set -euo pipefail" in ci
    lines = [line.strip() for line in ci.splitlines() if line.strip() and not line.strip().startswith("#")]
    # CI runs each step of the README's test command, in order, torch pinned first.
    steps = [step.strip() for step in test_command.split("&&")]
    positions = [lines.index(step) for step in steps]
    assert positions == sorted(positions)
    assert steps[0] == "python3 -m pip install torch==2.13.0"
