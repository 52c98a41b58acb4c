"""Bad checkpoints give one clear error naming the file; nothing pickled is ever executed."""

from __future__ import annotations

import os
import pickle
import re
import zipfile

import numpy as np
import pytest
import torch

import actionclip
from actionclip.loading.checkpoints import read_checkpoint, save_actionclip_checkpoint
from actionclip.errors import CheckpointError
from actionclip._dev.weights import write_checkpoint


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("good") / "good.pt", "actionclip")


class _RunsCode:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _bad_files(root, good) -> dict:
    """name -> (path, the whole cause after 'PATH: ', as a regex). Each names what the file really is."""
    import random

    data = good.read_bytes()
    files = {
        "random bytes": (b"\x17" + random.Random(0).randbytes(5000),
                         r"not a checkpoint: no weight format begins with these bytes \(17 [0-9a-f ]+\); "
                         r"corrupt, or a different kind of file"),
        "truncated .pt": (data[: len(data) // 2],
                          r"a truncated or corrupt zip archive \(its central directory is missing or damaged\); "
                          r"download or copy the file again"),
        "text file": (b"epoch 3, loss 0.12\nepoch 4, loss 0.10\n", r"a text file, not a checkpoint \(it begins 'epoch 3, loss 0.12'\)"),
        "empty file": (b"", r"file is empty, not a checkpoint"),
        "git lfs pointer": (b"version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 9\n",
                            r"a Git LFS pointer, not the weights \(fetch the file itself: git lfs pull\)"),
        "malicious pickle": (pickle.dumps({"model_state_dict": _RunsCode(str(root / "pwned"))}),
                             r"a pickle that references code \((posix|os|nt)\.system\): refused, nothing was executed"),
        "truncated legacy pickle": (None, r"a truncated pickle \(the file ends early\); download or copy it again"),
        "zip, not torch": (None, r"a zip archive, but not a PyTorch checkpoint \(no data\.pkl inside\)"),
        "safetensors, bad header": (b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}",
                                    r"a safetensors file with a bad header or data \(.+\)"),
    }
    out = {}
    for name, (content, cause) in files.items():
        path = root / (name.replace(" ", "_").replace(",", "") + (".safetensors" if "safetensors" in name else ".pt"))
        if name == "truncated legacy pickle":
            torch.save({"w": torch.ones(64)}, path, _use_new_zipfile_serialization=False)
            content = path.read_bytes()[:-30]
        if name == "zip, not torch":
            with zipfile.ZipFile(path, "w") as z:
                z.writestr("notes/readme.txt", "hello")
        else:
            path.write_bytes(content)
        out[name] = (path, cause)
    return out


BAD_FILES = ["random bytes", "truncated .pt", "text file", "empty file", "git lfs pointer", "malicious pickle",
             "truncated legacy pickle", "zip, not torch", "safetensors, bad header"]


@pytest.mark.parametrize("case", BAD_FILES)
def test_each_bad_file_gets_its_true_cause_in_one_line(tmp_path, good, case):
    path, cause = _bad_files(tmp_path, good)[case]
    with pytest.raises(CheckpointError) as err:
        actionclip.load(path, dtype="fp32")
    message = str(err.value)
    assert "\n" not in message
    assert re.fullmatch(re.escape(f"{path}: ") + cause, message), message
    assert not (tmp_path / "pwned").exists()


def test_missing_and_folder(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        read_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "folder").mkdir()
    with pytest.raises(CheckpointError, match="no config.json"):
        actionclip.load(tmp_path / "folder", dtype="fp32")


def test_wrong_shapes(tmp_path, good):
    ckpt = torch.load(good, weights_only=True)
    ckpt["model_state_dict"]["visual.ln_post.weight"] = torch.ones(7)
    torch.save(ckpt, tmp_path / "shapes.pt")
    with pytest.raises(CheckpointError, match=r"shapes\.pt: CLIP weight 'visual\.ln_post\.weight' has shape \(7,\)"):
        actionclip.load(tmp_path / "shapes.pt", dtype="fp32")


def test_unknown_and_missing_keys(tmp_path, good):
    ckpt = torch.load(good, weights_only=True)
    ckpt["model_state_dict"]["visual.extra_adapter.weight"] = torch.ones(3)
    torch.save(ckpt, tmp_path / "unknown.pt")
    with pytest.raises(CheckpointError, match=r"unknown\.pt: .*unexpected 1 key.*visual\.extra_adapter\.weight"):
        actionclip.load(tmp_path / "unknown.pt", dtype="fp32")
    ckpt = torch.load(good, weights_only=True)
    del ckpt["fusion_model_state_dict"]["module.transformer.resblocks.0.ln_1.bias"]
    torch.save(ckpt, tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match=r"missing\.pt: Transf fusion .*missing 1 key"):
        actionclip.load(tmp_path / "missing.pt", dtype="fp32")


def test_unrecognised_dict(tmp_path):
    torch.save({"weights": {"a": torch.ones(1)}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=r"other\.pt: unrecognised checkpoint .*expected an ActionCLIP"):
        actionclip.load(tmp_path / "other.pt", dtype="fp32")


@pytest.mark.parametrize("wrapper", ["plain-pickle", "torch-zip"])
def test_pickle_that_runs_code_is_refused_and_not_executed(tmp_path, good, wrapper):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    if wrapper == "plain-pickle":
        path.write_bytes(pickle.dumps({"model_state_dict": _RunsCode(str(marker))}))
    else:
        ckpt = torch.load(good, weights_only=True)
        ckpt["hook"] = _RunsCode(str(marker))
        torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=r"evil\.pt: a pickle that references code \((posix|os|nt)\.system\): refused, nothing was executed$"):
        actionclip.load(path, dtype="fp32")
    assert not marker.exists()


def test_mmaction2_metadata_with_numpy_objects_is_tolerated(tmp_path):
    path = write_checkpoint(tmp_path / "mm.pth", "mmaction2")
    ckpt = torch.load(path, weights_only=True)
    ckpt["meta"]["hook_msgs"] = {"best_score": np.float64(0.776), "arr": np.arange(3)}
    torch.save(ckpt, path)
    with pytest.raises(Exception):
        torch.load(path, weights_only=True)  # the safe loader alone refuses this file
    model = actionclip.load(path, dtype="fp32")
    assert model.fusion_type == "Transf" and model.num_frames == 8


@pytest.mark.parametrize("kind", ["meanP", "Conv_1D", "LSTM", "Transf", "Transf_cls"])
def test_save_in_original_format_round_trips(tmp_path, kind):
    source = write_checkpoint(tmp_path / "src.pt", "actionclip", fusion=kind, frames=8, seed=3)
    model = actionclip.load(source, dtype="fp32")
    out = save_actionclip_checkpoint(model, tmp_path / "out" / "saved.pt", epoch=4)
    raw = torch.load(out, weights_only=True)
    assert set(raw) >= {"epoch", "model_state_dict", "fusion_model_state_dict"} and raw["epoch"] == 4
    assert all(k.startswith("module.") for k in raw["fusion_model_state_dict"])
    again = actionclip.load(out, dtype="fp32")
    x = torch.randn(2, 8, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.encode_video(x), again.encode_video(x))
    assert [p.name for p in out.parent.iterdir()] == ["saved.pt"]  # no temp files left


def test_mmaction2_model_saved_in_original_format_keeps_its_numbers(tmp_path):
    model = actionclip.load(write_checkpoint(tmp_path / "m.pth", "mmaction2", frames=8), dtype="fp32")
    out = save_actionclip_checkpoint(model, tmp_path / "orig.pt")
    table = torch.load(out, weights_only=True)["fusion_model_state_dict"]["module.frame_position_embeddings.weight"]
    assert table.shape[0] == 77  # the original code's nn.Embedding(77, D) can load it
    again = actionclip.load(out, dtype="fp32")
    x = torch.randn(1, 8, 3, 32, 32)
    with torch.no_grad():
        assert (model.encode_video(x) - again.encode_video(x)).abs().max() < 1e-6


def test_safetensors_state_dict(tmp_path):
    from safetensors.torch import save_file

    from actionclip._dev.weights import random_clip_state_dict

    save_file(random_clip_state_dict(), str(tmp_path / "clip.safetensors"))
    model = actionclip.load(tmp_path / "clip.safetensors", dtype="fp32")
    assert model.fusion_type == "meanP"
    (tmp_path / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(CheckpointError, match=r"bad\.safetensors"):
        actionclip.load(tmp_path / "bad.safetensors", dtype="fp32")


def test_hf_folder_with_pytorch_model_bin(tmp_path):
    folder = write_checkpoint(tmp_path / "hf", "hf")
    from safetensors.torch import load_file

    sd = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    torch.save(sd, folder / "pytorch_model.bin")
    model = actionclip.load(folder, dtype="fp32")
    assert model.fusion_type == "meanP" and model.clip.config.text_heads == 2


def test_zip_that_is_not_torchscript_is_not_sent_to_jit(tmp_path):
    path = tmp_path / "archive.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x/readme.txt", "hello")
    with pytest.raises(CheckpointError, match=r"archive\.pt"):
        actionclip.load(path, dtype="fp32")
