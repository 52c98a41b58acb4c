"""actionclip.video.preprocess: shapes, values, crop placement, closeness to PIL's bicubic resize, and
agreement of its two kernels (numpy for the ONNX backend, torch for the torch model)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from actionclip.errors import UsageError
from actionclip.video import preprocess as P
from actionclip.video.preprocess import (
    CLIP_MEAN,
    CLIP_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    Preprocessing,
    crop_boxes,
    resize_size,
    resize_weights,
)
from actionclip.video.preprocess import preprocess_frames as _preprocess

KERNELS = ("numpy", "torch")


@pytest.fixture(params=KERNELS)
def preprocess_frames(request):
    """preprocess_frames through one kernel (numpy or torch input), always returning a torch tensor."""

    def run(frames, *args, **kwargs):
        frames = np.asarray(frames)
        x = frames if request.param == "numpy" else torch.from_numpy(frames)
        out = _preprocess(x, *args, **kwargs)
        assert isinstance(out, np.ndarray) == (request.param == "numpy")  # the input's library comes back
        return torch.as_tensor(out)

    return run

# Documented in docs/video.md: torch's antialiased bicubic vs PIL's, in 8-bit levels (0..255).
# PIL rounds to 8 bits between its horizontal and vertical passes, torch does not; that only shows
# where the bicubic overshoot is clipped at sharp edges.
PIL_MEAN_TOLERANCE = 0.25
PIL_MAX_TOLERANCE = 16
PIL_FRACTION_OVER_1 = 1e-3


def _normalised(value_rgb):
    return [(v / 255 - m) / s for v, m, s in zip(value_rgb, CLIP_MEAN, CLIP_STD)]


def test_shapes(preprocess_frames):
    frames = np.zeros((8, 240, 320, 3), np.uint8)
    assert preprocess_frames(frames).shape == (8, 3, 224, 224)
    assert preprocess_frames(frames[None].repeat(2, 0)).shape == (2, 8, 3, 224, 224)
    assert preprocess_frames(frames, crops=3).shape == (3, 8, 3, 224, 224)
    assert preprocess_frames(frames[0], 336).shape == (3, 336, 336)
    assert preprocess_frames(np.zeros((2, 3, 50, 40, 3), np.uint8), crops=3).shape == (3, 2, 3, 3, 224, 224)
    out = preprocess_frames(frames)
    assert out.dtype == torch.float32 and out.is_contiguous()


def test_constant_frame_values_and_rgb_order(preprocess_frames):
    frame = np.empty((100, 150, 3), np.uint8)
    frame[...] = (200, 30, 90)
    out = preprocess_frames(frame)
    for channel, want in enumerate(_normalised((200, 30, 90))):
        torch.testing.assert_close(out[channel], torch.full((224, 224), want), atol=1e-5, rtol=0)


def test_resize_sizes():
    assert resize_size(240, 320, 256) == (256, 341)
    assert resize_size(320, 240, 256) == (341, 256)
    assert resize_size(256, 340, 256) == (256, 340)
    assert resize_size(1, 5000, 256) == (256, 1280000)  # extreme aspect kept
    assert resize_size(100, 100, 256) == (256, 256)


def test_centre_crop_is_centred(preprocess_frames):
    """A horizontal ramp: the centre crop's mean equals the frame's mean, the 3 crops go left->right."""
    w = 640
    ramp = np.tile(np.linspace(0, 255, w).round().astype(np.uint8)[None, :, None], (360, 1, 3))
    centre = preprocess_frames(ramp)[0]
    left_right = centre[:, :20].mean() + centre[:, -20:].mean()
    assert abs(left_right / 2 - centre.mean()) < 0.02  # symmetric about the middle
    crops = preprocess_frames(ramp, crops=3)[:, 0]
    means = [c.mean().item() for c in crops]
    assert means[0] < means[1] < means[2]
    assert crops[0, :, 0].mean() < -1.7  # the left crop starts at the black edge
    assert crops[2, :, -1].mean() > 1.8  # the right crop ends at the white edge


def test_three_crops_portrait_and_boxes(preprocess_frames):
    assert crop_boxes(224, 400, 224, 3) == [(0, 0), (0, 88), (0, 176)]
    assert crop_boxes(400, 224, 224, 3) == [(0, 0), (88, 0), (176, 0)]
    assert crop_boxes(256, 341, 224, 1) == [(16, 58)]
    ramp = np.tile(np.linspace(0, 255, 500).round().astype(np.uint8)[:, None, None], (1, 300, 3))
    crops = preprocess_frames(ramp, crops=3)
    assert crops[0].mean() < crops[1].mean() < crops[2].mean()  # top, centre, bottom


def test_model_mean_std_and_resolution(preprocess_frames):
    frame = np.full((60, 80, 3), (10, 128, 250), np.uint8)
    prep = Preprocessing(resolution=48, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    out = preprocess_frames(frame, prep)
    assert out.shape == (3, 48, 48)
    for channel, value in enumerate((10, 128, 250)):
        want = (value / 255 - IMAGENET_MEAN[channel]) / IMAGENET_STD[channel]
        torch.testing.assert_close(out[channel], torch.full((48, 48), want), atol=1e-5, rtol=0)
    with pytest.raises(UsageError, match="interpolation"):
        Preprocessing(interpolation="nearest")


@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
@pytest.mark.parametrize("shape,crops", [((2, 240, 320), 1), ((2, 480, 270), 3), ((1, 100, 90), 1),
                                         ((1, 720, 1280), 1), ((2, 224, 224), 3)])
def test_numpy_and_torch_kernels_agree(shape, crops, interpolation):
    frames = np.random.default_rng(1).integers(0, 256, (*shape, 3), dtype=np.uint8)
    for resolution in (224, 32):
        prep = Preprocessing(resolution=resolution, interpolation=interpolation)
        ref = _preprocess(torch.from_numpy(frames), prep, crops).numpy()
        out = _preprocess(frames, prep, crops)
        assert out.shape == ref.shape and out.dtype == np.float32
        diff = np.abs(out - ref)
        # rounding to 8 bits may land on the other side of .5: at most one grey level, rarely
        assert diff.max() <= 1.0001 / (255 * min(CLIP_STD))
        assert (diff > 1e-4).mean() < 2e-3


def test_bad_input():
    for library in (np.asarray, torch.as_tensor):
        with pytest.raises(UsageError, match="uint8"):
            _preprocess(library(np.zeros((4, 10, 10, 3), np.float32)))
        with pytest.raises(UsageError, match="uint8"):
            _preprocess(library(np.zeros((4, 10, 10), np.uint8)))
        with pytest.raises(UsageError, match="crops"):
            _preprocess(library(np.zeros((4, 10, 10, 3), np.uint8)), crops=2)


def test_chunked_resize_matches_one_batch(monkeypatch):
    rng = np.random.default_rng(0)
    frames = torch.from_numpy(rng.integers(0, 256, (5, 60, 90, 3), dtype=np.uint8))
    whole = _preprocess(frames)
    monkeypatch.setattr(P, "_MAX_CHUNK_PIXELS", 60 * 90 * 3 * 2)  # two frames per call
    torch.testing.assert_close(_preprocess(frames), whole, atol=0, rtol=0)


def _resize(frame: np.ndarray, size: tuple[int, int], kernel: str) -> np.ndarray:
    """One kernel's whole-frame bicubic resize, float ``[h, w, 3]`` in 0..255."""
    if kernel == "torch":
        x = torch.from_numpy(frame).permute(2, 0, 1)[None].float()
        return P.resize_to(x, size)[0].permute(1, 2, 0).numpy()
    x = frame.transpose(2, 0, 1).astype(np.float32)
    rows, cols = resize_weights(frame.shape[0], size[0]), resize_weights(frame.shape[1], size[1])
    return np.clip(np.round(rows @ x @ cols.T), 0, 255).transpose(1, 2, 0)


def _pil_differences(frames: np.ndarray, kernel: str) -> tuple[float, float, float]:
    """max, mean and fraction > 1 level of |ours - PIL| for the short-side-256 resize."""
    diffs = []
    for frame in frames:
        h, w = frame.shape[:2]
        nh, nw = resize_size(h, w, 256)
        pil = np.asarray(Image.fromarray(frame).resize((nw, nh), Image.BICUBIC), np.float32)
        diffs.append(np.abs(_resize(frame, (nh, nw), kernel) - pil).ravel())
    d = np.concatenate(diffs)
    return float(d.max()), float(d.mean()), float((d > 1).mean())


def _smooth_texture(rng, h, w):
    """Natural-image-like content: blurred noise plus a few sharp edges."""
    small = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3)).astype(np.uint8)
    img = np.asarray(Image.fromarray(small).resize((w, h), Image.BILINEAR))
    img = img.copy()
    img[h // 3 : h // 2, w // 4 : w // 2] = 255
    return img


@pytest.mark.parametrize("kernel", KERNELS)
def test_close_to_pil_bicubic_on_synthetic_images(kernel):
    rng = np.random.default_rng(1)
    frames = [_smooth_texture(rng, h, w) for h, w in [(240, 320), (120, 160), (480, 360), (241, 321)]]
    for frame in frames:
        mx, mean, frac = _pil_differences(frame[None], kernel)
        assert mx <= PIL_MAX_TOLERANCE and mean <= PIL_MEAN_TOLERANCE and frac <= PIL_FRACTION_OVER_1


@pytest.mark.parametrize("kernel", KERNELS)
def test_close_to_pil_bicubic_on_shared_clips(shared_data, kernel):
    from actionclip.video import read_video

    clips = shared_data / "clips"
    rows = list(csv.DictReader(open(clips / "manifest.csv", newline="")))
    frames = [f for row in rows[::4] for f in read_video(clips / row["path"], 1)[0]]
    mx, mean, frac = _pil_differences(frames, kernel)
    assert mx <= PIL_MAX_TOLERANCE and mean <= PIL_MEAN_TOLERANCE and frac <= PIL_FRACTION_OVER_1
    assert mean > 0  # it is a different implementation; the tolerance is what is documented
