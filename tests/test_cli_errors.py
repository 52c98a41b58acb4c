"""Every error a user can cause gives one line naming the input and the cause, and a non-zero exit.

Video errors are checked alone and together in one batch with a good video (which must still be
reported). Model and label errors are checked on their own.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from cli_support import error_lines, json_lines, make_video, run_cli

from actionclip.cli import main

LABELS = ["--text", "running", "--text", "walking"]


def _garbage_packets(src: Path, dst: Path) -> Path:
    """A well-formed container whose video packets hold zeros: nothing decodes."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        in_stream = inp.streams.video[0]
        out_stream = out.add_stream_from_template(in_stream)
        for packet in inp.demux(in_stream):
            if packet.size == 0:
                continue
            bad = av.Packet(bytes(packet.size))
            bad.pts, bad.dts, bad.time_base = packet.pts, packet.dts, packet.time_base
            bad.is_keyframe = packet.is_keyframe
            bad.stream = out_stream
            out.mux(bad)
    return dst


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    """name -> (input, regex the cause must match)."""
    from actionclip._dev.videos import write_audio

    root = tmp_path_factory.mktemp("bad")
    good = make_video(root / "good" / "good.mp4", seconds=2)
    (root / "no_videos").mkdir()
    (root / "no_videos" / "readme.txt").write_text("nothing to see\n")
    (root / "notes.txt").write_text("this is plain text, not a video\n" * 20)
    (root / "random.mp4").write_bytes(os.urandom(20000))
    data = good.read_bytes()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (root / "zero.mp4").write_bytes(b"")
    write_audio(root / "tone.m4a", seconds=0.5)
    _garbage_packets(make_video(root / "src.mkv"), root / "undecodable.mkv")
    return {
        "missing file": (root / "missing.mp4", r"no such file"),
        "directory without videos": (root / "no_videos", r"no video"),
        "not a video": (root / "notes.txt", r"a text file, not a video"),
        "corrupt": (root / "random.mp4", r"not a video FFmpeg can read, or corrupt \(Invalid data"),
        # MP4 keeps its index at the end here: half a file reads as corrupt, not as a short video
        "truncated": (root / "truncated.mp4", r"corrupt|truncated"),
        "zero bytes": (root / "zero.mp4", r"empty|0 bytes"),
        "audio only": (root / "tone.m4a", r"audio|no video"),
        "no decodable frames": (root / "undecodable.mkv", r"decod"),
        "good": (good, ""),
    }


def _run(capsys, argv: list) -> tuple[int, list[str], str, str]:
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return code, error_lines(out.err), out.out, out.err


def _single_error(capsys, argv: list) -> str:
    """Run, expect exit 1 and exactly one error line on stderr; return that line."""
    code, errors, _, err = _run(capsys, argv)
    assert code == 1, err
    assert len(errors) == 1, err
    return errors[0]


BAD = ["missing file", "directory without videos", "not a video", "corrupt", "truncated", "zero bytes",
       "audio only", "no decodable frames"]


@pytest.mark.parametrize("case", BAD)
def test_bad_video_alone(ckpt, bad_inputs, capsys, case):
    path, cause = bad_inputs[case]
    line = _single_error(capsys, ["classify", path, *LABELS, "--model", ckpt])
    prefix = f"actionclip: error: {path}: "
    assert line.startswith(prefix), line
    assert re.search(cause, line[len(prefix):], re.I), line
    assert "\n" not in line


def test_all_bad_videos_in_one_batch_with_a_good_one(ckpt, bad_inputs, capsys):
    """The good video is still classified; each bad input gets its own line; exit code 1."""
    inputs = [bad_inputs[case][0] for case in BAD]
    good = bad_inputs["good"][0]
    inputs.insert(3, good)
    code, errors, out, err = _run(capsys, ["classify", *inputs, *LABELS, "--model", ckpt, "--json"])
    assert code == 1
    assert [r["video"] for r in json_lines(out)] == [str(good)]
    assert len(errors) == len(BAD), err
    for case in BAD:
        assert any(str(bad_inputs[case][0]) in line for line in errors), case


def test_missing_file_exit_code_in_a_real_process(tmp_path):
    """Missing inputs are found before the model loads: fast, and exit status 1."""
    proc = run_cli("classify", tmp_path / "nope.mp4", *LABELS, "--model", tmp_path / "never-loaded.pt")
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"actionclip: error: {tmp_path / 'nope.mp4'}: no such file or directory"


# ----------------------------------------------------------------------------------------------
# Labels, templates


@pytest.mark.parametrize(
    "labels, cause",
    [
        (["--text", ""], r"--text: .*empty"),
        (["--text", "running", "--text", "   "], r"--text: .*empty"),
        (["--text", "running", "--text", "running"], r"--text: duplicate label 'running'"),
        (["--text", "Running", "--text", "running  "], r"duplicate label 'running'.*'Running'"),
    ],
)
def test_bad_labels(ckpt, bad_inputs, capsys, labels, cause):
    line = _single_error(capsys, ["classify", bad_inputs["good"][0], *labels, "--model", ckpt])
    assert re.search(cause, line), line


def test_labels_file_errors(bad_inputs, capsys, tmp_path):
    video = bad_inputs["good"][0]
    missing = tmp_path / "labels.txt"
    line = _single_error(capsys, ["classify", video, "--labels", missing])
    assert str(missing) in line and "labels file" in line
    missing.write_text("# only a comment\n\n")
    line = _single_error(capsys, ["classify", video, "--labels", missing])
    assert str(missing) in line and "no labels" in line
    missing.write_text("running\nwalking\nrunning\n")
    line = _single_error(capsys, ["classify", video, "--labels", missing])
    assert str(missing) in line and "duplicate label 'running'" in line


def test_bad_template(ckpt, bad_inputs, capsys):
    line = _single_error(capsys, ["classify", bad_inputs["good"][0], *LABELS, "--template", "no slot"])
    assert "'no slot'" in line and "{}" in line


def test_labels_and_text_together_is_a_usage_error(bad_inputs, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["classify", str(bad_inputs["good"][0]), "--text", "a", "--labels", str(tmp_path / "x.txt")])
    assert exc.value.code == 2
    assert "not allowed with" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# Models


def test_unknown_model_name(bad_inputs, capsys):
    line = _single_error(capsys, ["classify", bad_inputs["good"][0], *LABELS, "--model", "vit-b-32-9f"])
    assert "unknown model 'vit-b-32-9f'" in line and "did you mean 'vit-b-32-8f'" in line


def test_missing_checkpoint_path(bad_inputs, capsys, tmp_path):
    path = tmp_path / "missing.pt"
    line = _single_error(capsys, ["classify", bad_inputs["good"][0], *LABELS, "--model", path])
    assert str(path) in line and "no such file" in line


def test_not_a_checkpoint(bad_inputs, capsys, tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(os.urandom(4096))
    line = _single_error(capsys, ["classify", bad_inputs["good"][0], *LABELS, "--model", path])
    assert str(path) in line


def test_model_not_cached_while_offline(bad_inputs, capsys, monkeypatch):
    monkeypatch.setenv("ACTIONCLIP_OFFLINE", "1")
    line = _single_error(capsys, ["classify", bad_inputs["good"][0], *LABELS])  # default model
    assert "vit-b-32-8f" in line and "offline" in line and "not in the cache" in line


def test_cuda_requested_without_cuda(ckpt, bad_inputs, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    line = _single_error(capsys, ["classify", bad_inputs["good"][0], *LABELS, "--model", ckpt, "--device", "cuda"])
    assert "device 'cuda'" in line and "CUDA" in line


def test_onnx_backend_needs_an_export_folder(ckpt, bad_inputs, capsys):
    pytest.importorskip("onnxruntime")
    line = _single_error(capsys, ["classify", bad_inputs["good"][0], *LABELS, "--backend", "onnx"])
    assert "--backend onnx" in line and "vit-b-32-8f" in line and "actionclip export" in line
    line = _single_error(capsys, ["classify", bad_inputs["good"][0], *LABELS, "--model", ckpt, "--backend", "onnx"])
    assert str(ckpt) in line  # a torch checkpoint is not an ONNX export
