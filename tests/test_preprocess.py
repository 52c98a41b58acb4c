"""actionclip.preprocess: shapes, values, crop placement, and closeness to PIL's bicubic resize."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from actionclip import preprocess as P
from actionclip.errors import UsageError
from actionclip.preprocess import CLIP_MEAN, CLIP_STD, crop_boxes, preprocess_frames, resize_size

# Documented in docs/video.md: torch's antialiased bicubic vs PIL's, in 8-bit levels (0..255).
# PIL rounds to 8 bits between its horizontal and vertical passes, torch does not; that only shows
# where the bicubic overshoot is clipped at sharp edges.
PIL_MEAN_TOLERANCE = 0.25
PIL_MAX_TOLERANCE = 16
PIL_FRACTION_OVER_1 = 1e-3


def _normalised(value_rgb):
    return [(v / 255 - m) / s for v, m, s in zip(value_rgb, CLIP_MEAN, CLIP_STD)]


def test_shapes():
    frames = np.zeros((8, 240, 320, 3), np.uint8)
    assert preprocess_frames(frames).shape == (8, 3, 224, 224)
    assert preprocess_frames(frames[None].repeat(2, 0)).shape == (2, 8, 3, 224, 224)
    assert preprocess_frames(frames, crops=3).shape == (3, 8, 3, 224, 224)
    assert preprocess_frames(frames[0], resolution=336).shape == (3, 336, 336)
    assert preprocess_frames(torch.zeros(2, 3, 50, 40, 3, dtype=torch.uint8), crops=3).shape == (
        3, 2, 3, 3, 224, 224)
    out = preprocess_frames(frames)
    assert out.dtype == torch.float32 and out.is_contiguous()


def test_constant_frame_values_and_rgb_order():
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


def test_centre_crop_is_centred():
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


def test_three_crops_portrait_and_boxes():
    assert crop_boxes(224, 400, 224, 3) == [(0, 0), (0, 88), (0, 176)]
    assert crop_boxes(400, 224, 224, 3) == [(0, 0), (88, 0), (176, 0)]
    assert crop_boxes(256, 341, 224, 1) == [(16, 58)]
    ramp = np.tile(np.linspace(0, 255, 500).round().astype(np.uint8)[:, None, None], (1, 300, 3))
    crops = preprocess_frames(ramp, crops=3)
    assert crops[0].mean() < crops[1].mean() < crops[2].mean()  # top, centre, bottom


def test_bad_input():
    with pytest.raises(UsageError, match="uint8"):
        preprocess_frames(np.zeros((4, 10, 10, 3), np.float32))
    with pytest.raises(UsageError, match="uint8"):
        preprocess_frames(np.zeros((4, 10, 10), np.uint8))
    with pytest.raises(UsageError, match="crops"):
        preprocess_frames(np.zeros((4, 10, 10, 3), np.uint8), crops=2)


def test_chunked_resize_matches_one_batch(monkeypatch):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (5, 60, 90, 3), dtype=np.uint8)
    whole = preprocess_frames(frames)
    monkeypatch.setattr(P, "_MAX_CHUNK_PIXELS", 60 * 90 * 3 * 2)  # two frames per call
    torch.testing.assert_close(preprocess_frames(frames), whole, atol=0, rtol=0)


def _pil_differences(frames: np.ndarray) -> tuple[float, float, float]:
    """max, mean and fraction > 1 level of |ours - PIL| for the short-side-256 resize."""
    diffs = []
    for frame in frames:
        h, w = frame.shape[:2]
        nh, nw = resize_size(h, w, 256)
        pil = np.asarray(Image.fromarray(frame).resize((nw, nh), Image.BICUBIC), np.float32)
        x = torch.from_numpy(frame).permute(2, 0, 1)[None].float()
        ours = P.resize_short_side(x, 256)[0].permute(1, 2, 0).numpy()
        diffs.append(np.abs(ours - pil).ravel())
    d = np.concatenate(diffs)
    return float(d.max()), float(d.mean()), float((d > 1).mean())


def _smooth_texture(rng, h, w):
    """Natural-image-like content: blurred noise plus a few sharp edges."""
    small = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3)).astype(np.uint8)
    img = np.asarray(Image.fromarray(small).resize((w, h), Image.BILINEAR))
    img = img.copy()
    img[h // 3 : h // 2, w // 4 : w // 2] = 255
    return img


def test_close_to_pil_bicubic_on_synthetic_images():
    rng = np.random.default_rng(1)
    frames = [_smooth_texture(rng, h, w) for h, w in [(240, 320), (120, 160), (480, 360), (241, 321)]]
    for frame in frames:
        mx, mean, frac = _pil_differences(frame[None])
        assert mx <= PIL_MAX_TOLERANCE and mean <= PIL_MEAN_TOLERANCE and frac <= PIL_FRACTION_OVER_1


def test_close_to_pil_bicubic_on_shared_clips(shared_data):
    from actionclip.video import read_video

    clips = shared_data / "clips"
    rows = list(csv.DictReader(open(clips / "manifest.csv", newline="")))
    frames = [f for row in rows[::4] for f in read_video(clips / row["path"], 1)[0]]
    mx, mean, frac = _pil_differences(frames)
    assert mx <= PIL_MAX_TOLERANCE and mean <= PIL_MEAN_TOLERANCE and frac <= PIL_FRACTION_OVER_1
    assert mean > 0  # it is a different implementation; the tolerance is what is documented
