"""Dataset layouts, class lists, splits and the training augmentations."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from actionclip.errors import UsageError
from actionclip.training import augment
from actionclip.training.datasets import (
    builtin_classes,
    few_shot,
    group_of,
    humanize,
    load_classes,
    load_dataset,
    split_classes,
    split_dataset,
)
from actionclip.video.preprocess import Preprocessing


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


@pytest.fixture
def ucf_tree(tmp_path) -> Path:
    root = tmp_path / "ucf"
    for cls in ("ApplyEyeMakeup", "Archery", "YoYo"):
        for g in range(1, 6):
            for c in range(1, 3):
                _touch(root / cls / f"v_{cls}_g{g:02d}_c{c:02d}.avi")
    _touch(root / "Archery" / "notes.txt")  # not a video: ignored
    return root


def test_humanize_names():
    assert humanize("ApplyEyeMakeup") == "apply eye makeup"
    assert humanize("brush_hair") == "brush hair"
    assert humanize("YoYo") == "yo yo"
    assert humanize("abseiling") == "abseiling"
    assert humanize("passing American football (in game)") == "passing American football (in game)"


def test_builtin_lists_ship_with_the_package():
    assert len(builtin_classes("ucf101")) == 101 and builtin_classes("ucf101")[0] == "ApplyEyeMakeup"
    assert len(builtin_classes("hmdb51")) == 51
    assert len(load_classes("k400")) == 400 and len(load_classes("Kinetics-600")) == 600
    with pytest.raises(UsageError, match="nope"):
        builtin_classes("nope")


def test_folder_per_class(ucf_tree):
    ds = load_dataset(ucf_tree)
    assert ds.class_names == ["ApplyEyeMakeup", "Archery", "YoYo"]
    assert ds.classes == ["apply eye makeup", "archery", "yo yo"]
    assert len(ds) == 30 and ds.counts() == [10, 10, 10]
    assert ds[0].group == "g01"


def test_folder_with_builtin_class_list_keeps_all_candidates(ucf_tree):
    ds = load_dataset(ucf_tree, classes="ucf101")
    assert len(ds.classes) == 101
    assert {ds.class_names[s.label] for s in ds} == {"ApplyEyeMakeup", "Archery", "YoYo"}


def test_csv_tsv_and_original_list(tmp_path, ucf_tree):
    files = sorted(ucf_tree.rglob("*.avi"))
    csv_path = tmp_path / "list.csv"
    csv_path.write_text("path,extra,label\n" + "".join(f"{f},x,{f.parent.name}\n" for f in files))
    tsv_path = tmp_path / "list.tsv"
    tsv_path.write_text("".join(f"{f.relative_to(tmp_path)}\t{humanize(f.parent.name)}\n" for f in files))
    a, b = load_dataset(csv_path), load_dataset(tsv_path)
    assert [s.path for s in a] == [s.path for s in b] == files
    assert a.classes == b.classes == ["apply eye makeup", "archery", "yo yo"]
    names = tmp_path / "labels.csv"
    names.write_text("id,name\n0,Archery\n1,YoYo\n2,ApplyEyeMakeup\n")
    orig = tmp_path / "train.txt"
    idx = {"Archery": 0, "YoYo": 1, "ApplyEyeMakeup": 2}
    orig.write_text("".join(f"{f} 75 {idx[f.parent.name]}\n" for f in files))
    c = load_dataset(orig, classes=names)
    assert c.class_names == ["Archery", "YoYo", "ApplyEyeMakeup"]
    assert [c.class_names[s.label] for s in c] == [f.parent.name for f in files]
    assert all(s.num_frames == 75 for s in c)


def test_errors_name_the_input(tmp_path, ucf_tree):
    with pytest.raises(UsageError, match="missing"):
        load_dataset(tmp_path / "missing")
    bad = tmp_path / "bad.txt"
    bad.write_text("a.avi 10 0\n")
    with pytest.raises(UsageError, match="numeric labels need a list of class names"):
        load_dataset(bad, check_files=False)
    lst = tmp_path / "l.csv"
    lst.write_text(f"{next(ucf_tree.rglob('*.avi'))},Dancing\n")
    with pytest.raises(UsageError, match=r"l.csv:1.*Dancing"):
        load_dataset(lst, classes="ucf101")
    gone = tmp_path / "gone.csv"
    gone.write_text("nowhere.avi,run\n")
    with pytest.raises(UsageError, match="does not exist"):
        load_dataset(gone)


def test_group_split_never_leaks_a_group(ucf_tree):
    ds = load_dataset(ucf_tree)
    train, val = split_dataset(ds, val_fraction=0.4, seed=3)
    assert len(train) + len(val) == len(ds) and len(val) >= 0.4 * len(ds)
    assert not {s.group for s in train} & {s.group for s in val}
    again = split_dataset(ds, val_fraction=0.4, seed=3)[1]
    assert [s.path for s in again] == [s.path for s in val]
    other = split_dataset(ds, val_fraction=0.4, seed=4)[1]
    assert group_of("v_Archery_g07_c03.avi") == "g07"
    assert group_of("clip_actor12_take3.mp4", r"actor(\d+)") == "12"
    assert {s.group for s in other} != {s.group for s in val} or len({s.group for s in ds}) < 3


def test_singleton_groups_split_stratified(tmp_path):
    for cls in ("run", "walk"):
        for i in range(5):
            _touch(tmp_path / cls / f"{cls}{i}.mp4")
    train, val = split_dataset(load_dataset(tmp_path), val_fraction=0.2, seed=0)
    assert sorted(s.label for s in val) == [0, 1] and len(train) == 8


def test_split_by_list(ucf_tree, tmp_path):
    ds = load_dataset(ucf_tree)
    lst = tmp_path / "testlist01.txt"
    lst.write_text("Archery/v_Archery_g01_c01.avi\nYoYo/v_YoYo_g02_c02.avi 3\n")
    train, val = split_dataset(ds, val_list=lst)
    assert sorted(s.path.name for s in val) == ["v_Archery_g01_c01.avi", "v_YoYo_g02_c02.avi"]
    assert len(train) == len(ds) - 2


def test_few_shot_and_base_to_novel(ucf_tree):
    ds = load_dataset(ucf_tree)
    fs = few_shot(ds, 2, seed=1)
    assert fs.counts() == [2, 2, 2]
    base, novel = split_classes(ds, novel=["yo yo"])
    assert base.classes == ["apply eye makeup", "archery"] and novel.classes == ["yo yo"]
    assert {s.label for s in novel} == {0} and len(novel) == 10
    assert {s.path.parent.name for s in novel} == {"YoYo"}


# --- augmentations -----------------------------------------------------------------------------

def test_multi_scale_crop_boxes_follow_the_original():
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(300):
        top, left, h, w = augment.multi_scale_crop_box(256, 340, 224, generator=g)
        assert (h, w) in {(256, 256), (256, 224), (224, 256), (224, 224), (224, 192), (192, 224),
                          (192, 192), (192, 168), (168, 192), (168, 168)}
        assert 0 <= top <= 256 - h and 0 <= left <= 340 - w
        assert top % max(1, (256 - h) // 4) == 0
        seen.add((h, w))
    assert len(seen) == 10


def test_train_augment_shapes_and_determinism():
    aug = augment.TrainAugment(Preprocessing(32))
    frames = torch.randint(0, 256, (4, 48, 64, 3), dtype=torch.uint8)
    a = aug.geometry(frames, torch.Generator().manual_seed(1))
    b = aug.geometry(frames, torch.Generator().manual_seed(1))
    assert a.shape == (4, 3, 32, 32) and torch.equal(a, b) and 0 <= a.min() and a.max() <= 1
    batch = torch.stack([a, a, a])
    out = aug.colour(batch, torch.Generator().manual_seed(2))
    assert out.shape == batch.shape and torch.isfinite(out).all()


def test_flip_grayscale_are_per_clip():
    x = torch.rand(64, 2, 3, 4, 5)
    g = torch.Generator().manual_seed(0)
    y = augment.random_flip(x, 0.5, g)
    flipped = [torch.equal(y[i], x[i].flip(-1)) for i in range(64)]
    assert 10 < sum(flipped) < 54 and all(f or torch.equal(y[i], x[i]) for i, f in enumerate(flipped))
    z = augment.random_grayscale(x, 0.2, g)
    gray = [bool((z[i, :, 0] == z[i, :, 1]).all()) for i in range(64)]
    assert 2 < sum(gray) < 30


def test_color_jitter_hue_roundtrip_and_effect():
    x = torch.rand(3, 2, 3, 8, 8)
    hsv = augment._hsv_to_rgb(augment._rgb_to_hsv(x))
    assert torch.allclose(hsv, x, atol=1e-5)
    import colorsys

    r, g, b = (float(v) for v in x[0, 0, :, 0, 0])
    assert torch.allclose(augment._rgb_to_hsv(x)[0, 0, :, 0, 0], torch.tensor(colorsys.rgb_to_hsv(r, g, b)),
                          atol=1e-5)
    same = augment.color_jitter(x, p=0.0)
    assert torch.allclose(same, x, atol=1e-5)
    moved = augment.color_jitter(x, p=1.0, generator=torch.Generator().manual_seed(0))
    assert (moved - x).abs().mean() > 0.01 and moved.min() >= 0 and moved.max() <= 1
