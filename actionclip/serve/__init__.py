"""``actionclip serve``: the models as an HTTP service, a web page and a live WebSocket, for teams.

One module per concept, so each can be read (and tested) on its own:

* :mod:`~actionclip.serve.settings`: every limit and knob of a running server, in one frozen object;
* :mod:`~actionclip.serve.engine`: the model as a service: classify, timeline, watch sessions
  (HTTP-free), built on the library's own calls;
* :mod:`~actionclip.serve.batching`: requests from many clients encoded in one pass (dynamic batching);
* :mod:`~actionclip.serve.labels`: label embeddings cached (LRU) by model, labels and templates;
* :mod:`~actionclip.serve.pool`: the worker threads that decode, so the event loop never does;
* :mod:`~actionclip.serve.uploads`: a streamed multipart upload into a temporary file, size-limited
  while it streams, always deleted;
* :mod:`~actionclip.serve.admission`: the bounded queue (503 + Retry-After) and draining on SIGTERM;
* :mod:`~actionclip.serve.auth`: the optional Bearer token;
* :mod:`~actionclip.serve.problems`: every error as ``{"error": "<one line>"}`` with its status;
* :mod:`~actionclip.serve.params`: form fields to checked options;
* :mod:`~actionclip.serve.watch`: the ``/v1/watch`` WebSocket (webcam frames in, live scores out);
* :mod:`~actionclip.serve.search`: an index served (``--index``): search, uploads added, classification;
* :mod:`~actionclip.serve.media`: the indexed videos by id: thumbnails, playable previews, a cache;
* :mod:`~actionclip.serve.search_routes`: the routes of those two, and ``/v1/preview``;
* :mod:`~actionclip.serve.app`: the routes; :mod:`~actionclip.serve.server`: the process (socket,
  uvicorn, signals); ``static/``: the page, served by the package itself (no CDN);
* :mod:`~actionclip.serve.client`: a standard-library client of the API (scripts, tests, benchmarks).

FastAPI, uvicorn, python-multipart and websockets are the optional extra ``serve``; nothing here imports
them at package import, and :func:`require` turns their absence into one line telling what to install.
"""

from __future__ import annotations

from actionclip.extras import install_hint
from actionclip.extras import require as _require

__all__ = ["require", "INSTALL_HINT"]

INSTALL_HINT = install_hint("serve")


def require() -> None:
    """Raise a one-line :class:`UsageError` naming the install command when a server dependency is missing."""
    _require("serve", "serving")
