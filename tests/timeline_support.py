"""Helpers shared by the timeline and live test files: a tiny model whose embeddings are arranged so
that a frame's colour names one label, videos made of coloured stretches (the fixtures built on them are in conftest.py).
"""

from __future__ import annotations

import numpy as np
import torch

# The arranged model is a real tiny checkpoint (meanP fusion, so a window's embedding is the mean of
# its frames'; real logit scale 100 and real scoring) whose two encoders are replaced by a documented
# deterministic mapping:
#   * encode_image: undo CLIP's normalisation, take the frame's mean colour, and return the one-hot
#     axis of the nearest PALETTE colour (red -> 0, green -> 1, blue -> 2, grey -> 3);
#   * encode_labels: each label in LABEL_COLOUR gets its colour's axis; every background prompt gets
#     the centroid of the four axes (scaled to unit length), i.e. "some scene" is equally close to
#     everything, the situation the independent score is designed for.
# So a window of red frames matches "juggling" (cos 1 vs 0.5 to the background), a window of grey
# frames matches no label (cos 0 vs 0.5), and a window straddling a cut scores above 0.5 exactly when
# more than half of its frames show the label.

PALETTE = {"red": (200, 40, 40), "green": (40, 180, 60), "blue": (40, 60, 200), "grey": (128, 128, 128)}
AXIS = {name: i for i, name in enumerate(PALETTE)}
LABEL_COLOUR = {"juggling": "red", "swimming": "green", "dancing": "blue"}
LABELS = list(LABEL_COLOUR)
CLIP_MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073])
CLIP_STD = torch.tensor([0.26862954, 0.26130258, 0.27577711])


def arrange(model):
    """Give ``model`` the mapping above; returns a counter of images through encode_image."""
    dim = model.embed_dim
    palette = torch.tensor(list(PALETTE.values()), dtype=torch.float32)
    calls = {"images": 0, "calls": 0}

    def encode_image(images):
        calls["images"] += images.shape[0]
        calls["calls"] += 1
        rgb = (images.float().mean(dim=(2, 3)) * CLIP_STD + CLIP_MEAN) * 255  # [N, 3]
        nearest = torch.cdist(rgb, palette).argmin(dim=1)
        return torch.nn.functional.one_hot(nearest, dim).float()

    def encode_labels(labels, templates=None):
        from actionclip.text.templates import resolve_templates

        rows = []
        for label in labels:
            if label in LABEL_COLOUR:
                rows.append(torch.nn.functional.one_hot(torch.tensor(AXIS[LABEL_COLOUR[label]]), dim).float())
            else:  # a background prompt
                rows.append(torch.zeros(dim).index_fill_(0, torch.arange(len(PALETTE)), 0.5))
        k = len(resolve_templates(templates=templates) if templates is not None else resolve_templates())
        return torch.stack(rows)[None].expand(k, -1, -1).contiguous()

    model.encode_image = encode_image
    model.encode_labels = encode_labels
    return calls


def colour_video(path, segments, fps=10, size=(64, 48), gop=10):
    """Write ``segments`` [(colour, seconds)] back to back, with a little moving texture so the
    codec sees real motion; returns the true cut times."""
    from actionclip._dev.videos import write_video

    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    frames, cuts, t = [], [], 0.0
    for colour, seconds in segments:
        base = np.array(PALETTE[colour], dtype=np.int16)
        for i in range(round(seconds * fps)):
            ripple = (6 * np.sin((xx + 3 * (len(frames) + i)) / 4.0)).astype(np.int16)[..., None]
            frames.append(np.clip(base + ripple, 0, 255).astype(np.uint8))
        t += seconds
        cuts.append(t)
    write_video(path, np.stack(frames), fps=fps, gop=gop)
    return cuts[:-1]
