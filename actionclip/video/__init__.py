"""Media: video files and live streams in, normalised pixel views out, annotated videos back.

``decode`` reads files with PyAV (probe, seek-based TSN sampling, streaming decode); ``sampling``
says which frames make a clip; ``stream`` follows live sources (webcams, URLs, pipes); ``preprocess``
turns RGB frames into a model's normalised views (resize, crops, mean/std; torch-free); ``write``
encodes frames into a video file.

The names most users need are importable from here::

    from actionclip.video import read_video, probe
    frames = read_video("video.mp4", frames=8)        # uint8 [C, T, H, W, 3] RGB
"""

from actionclip.video.decode import VIDEO_EXTENSIONS, VideoInfo, iter_frames, probe, read_frames, read_video
from actionclip.video.sampling import SAMPLING_MODES, clip_indices, sample_indices

__all__ = ["VIDEO_EXTENSIONS", "VideoInfo", "iter_frames", "probe", "read_frames", "read_video",
           "SAMPLING_MODES", "clip_indices", "sample_indices"]
