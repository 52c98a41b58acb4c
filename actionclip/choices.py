"""The closed sets of values that options take, defined once and importable for free.

The library validates against these, and the CLI offers them as ``choices`` at parser build time
(without importing numpy, torch or PyAV, so that ``actionclip --help`` answers at once).
"""

#: test-time and training frame sampling (:mod:`actionclip.video.sampling`)
SAMPLING_MODES = ("center", "random", "uniform")
#: spatial views per clip (:mod:`actionclip.video.preprocess`)
CROPS = (1, 3)
#: resize kernels (:mod:`actionclip.video.preprocess`)
INTERPOLATIONS = ("bicubic", "bilinear")
#: decision scores over time: per label against background prompts, or the softmax over the labels
SCORE_KINDS = ("independent", "softmax")
#: where and in which precision a model runs (:mod:`actionclip.runtime`)
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "fp32", "bf16", "fp16")
#: training precision (autocast)
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: inference backends of ``classify``
BACKENDS = ("torch", "onnx")
#: which graphs of an ONNX export run (:mod:`actionclip.onnx.backend`): auto is fp32 when the export
#: holds them, else its int8 ones
ONNX_PRECISIONS = ("auto", "fp32", "int8")
