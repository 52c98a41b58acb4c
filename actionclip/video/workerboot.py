"""Imported once by the decode workers' fork server, so that each worker starts warm.

Decode worker processes (:mod:`actionclip.workers`) are forked from a small server process that
Python's ``forkserver`` start method runs. The server imports this module before it forks anyone:
it fixes one thread per process (the numeric libraries read these variables when they start their
pools, which none has done yet here), then imports the decoding stack (PyAV, numpy, the
preprocessing, torch for its resize kernel), about 1.5 s of imports paid once instead of in every
worker. Nothing else imports it: in any other process these settings would be wrong.
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_name] = "1"

import av  # noqa: E402,F401 - imported for its side effect: loaded once, shared by every fork
import numpy  # noqa: E402,F401

import actionclip.video.decode  # noqa: E402,F401
import actionclip.video.views  # noqa: E402,F401

try:
    import torch  # noqa: E402

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover - the ONNX-only install decodes without it
    pass
