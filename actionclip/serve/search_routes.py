"""The routes of ``actionclip serve --index``: search, thumbnails, the videos (with range requests),
previews of what a browser cannot play, uploads added to the index, the whole index classified.

``GET /v1/index``, ``GET /v1/search``, ``GET /v1/thumbnails/{id}``, ``GET /v1/videos/{id}`` and
``/v1/videos/{id}/preview``, ``POST /v1/index``, ``POST /v1/collection/classify``; and, with or
without an index, ``POST /v1/preview`` (an uploaded video as a playable MP4, for the page's Video tab).
docs/serve.md documents each. Same token, limits, queue and one-line JSON errors as the other
routes; images and videos also take the token as ``?token=`` (an ``<img>`` or ``<video>`` cannot
send a header). Videos are answered by Starlette's ``FileResponse``, which implements range requests
(206 with ``Content-Range``, 416 for a range past the end), so the browser's player can seek.
"""

# No "from __future__ import annotations": FastAPI reads the routes' annotations.

import csv
import io
import json
import mimetypes
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from actionclip.errors import ActionCLIPError
from actionclip.serve.auth import check_token
from actionclip.serve.media import transcode_preview
from actionclip.serve.problems import Problem
from actionclip.serve.uploads import FILE_FIELD, Upload, refuse_playlists

__all__ = ["add_search_routes", "add_preview_route", "MAX_JSON_BYTES"]

MAX_JSON_BYTES = 1 << 20  # a label list of 1,000 labels is ~30 KB


def _file(path: Path, media_type: str | None = None) -> Any:
    from fastapi.responses import FileResponse

    kind = media_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    # private: a token may guard it; max-age: ids are content-stable for the life of the index
    return FileResponse(path, media_type=kind, headers={"Cache-Control": "private, max-age=3600"})


def _checked_upload(upload: Upload) -> tuple[Path, str]:
    if upload.path is None:
        raise Problem(400, f"no video: send the file as the '{FILE_FIELD}' field (curl: -F {FILE_FIELD}=@clip.mp4)")
    name = upload.filename or "upload"
    if upload.size == 0:
        raise Problem(400, f"{name}: empty file (0 bytes)")
    refuse_playlists(upload.path, name)
    return upload.path, name


def _check_duration(path: Path, name: str, limit: float) -> None:
    """400 for a video longer than the server's ``--max-duration`` (0: no limit)."""
    from actionclip.video import probe

    if limit:
        duration = probe(path).duration
        if duration > limit:
            raise Problem(400, f"{name}: {duration:.1f} s long, over this server's limit of {limit:g} s")


def add_preview_route(app: Any, *, engine: Any, settings: Any, admission: Any, guarded: list,
                      uploads: Callable[[Any], Any]) -> None:
    """``POST /v1/preview``: the uploaded video as H.264 MP4 (the page plays it when the browser
    cannot play the file itself: AVI, most MKV)."""
    from fastapi import Request
    from starlette.background import BackgroundTask

    @app.post("/v1/preview", dependencies=guarded,
              summary="an uploaded video as a playable H.264 MP4 (for videos a browser cannot play)")
    async def preview(request: Request) -> Any:
        from fastapi.responses import FileResponse

        with admission.slot():
            async with uploads(request) as upload:
                path, name = await engine.pool.run(_checked_upload, upload)
                fd, out = tempfile.mkstemp(prefix="actionclip-preview-", suffix=".mp4", dir=settings.temp_dir)
                os.close(fd)
                try:
                    await engine.pool.run(transcode_preview, path, out, max_seconds=settings.max_duration or 600.0)
                except Exception as exc:
                    os.unlink(out)
                    if isinstance(exc, ActionCLIPError):
                        raise type(exc)(str(exc).replace(os.fspath(path), name)) from None
                    raise
        return FileResponse(out, media_type="video/mp4", background=BackgroundTask(os.unlink, out))


def add_search_routes(app: Any, service: Any, *, engine: Any, settings: Any, admission: Any, guarded: list,
                      uploads: Callable[[Any], Any]) -> None:
    """The index's routes on ``app`` (see the module notes); with ``service`` None (no ``--index``),
    ``/v1/index`` and ``/v1/search`` answer 404 saying how to serve one."""
    from fastapi import Depends, Query, Request
    from fastapi.responses import Response

    if service is None:
        @app.get("/v1/index", dependencies=guarded, summary="the served index (404: none)")
        @app.get("/v1/search", dependencies=guarded, include_in_schema=False)
        async def no_index() -> Any:
            raise Problem(404, "this server has no index: build one with 'actionclip index' and start the "
                               "server with --index INDEX")
        return

    async def media_token(request: Request) -> None:
        check_token(settings.token, request.headers, request.query_params)

    media_guard = [Depends(media_token)]

    @app.get("/v1/index", dependencies=guarded, summary="the served index: videos, moments, model")
    async def index_info() -> dict[str, Any]:
        return await engine.pool.run(service.info)

    @app.get("/v1/search", dependencies=guarded,
             summary="the videos and moments that best match a text (as search --json)")
    async def search(q: str = Query(..., max_length=1000, description="what to look for, in words"),
                     k: int = Query(10, ge=1, le=1000, description="best k videos and best k moments"),
                     only: str | None = Query(None, description="'videos' or 'moments'")) -> dict[str, Any]:
        with admission.slot():
            results = await engine.pool.run(service.search, q, k, only)
        return {"query": q, "results": results}

    @app.get("/v1/thumbnails/{vid}", dependencies=media_guard, summary="a JPEG frame of an indexed video")
    async def thumbnail(vid: str, t: float = Query(0.0, ge=0.0, le=1e7, description="seconds")) -> Any:
        return _file(await engine.pool.run(service.media.thumbnail, vid, t), "image/jpeg")

    @app.get("/v1/videos/{vid}", dependencies=media_guard, summary="an indexed video (range requests)")
    async def video(vid: str) -> Any:
        return _file(service.media.path(vid))

    @app.get("/v1/videos/{vid}/preview", dependencies=media_guard,
             summary="an indexed video as H.264 MP4, for browsers that cannot play the original")
    async def video_preview(vid: str) -> Any:
        return _file(await engine.pool.run(service.media.preview, vid), "video/mp4")

    @app.post("/v1/index", dependencies=guarded, summary="add an uploaded video to the index (incremental)")
    async def add(request: Request) -> dict[str, Any]:
        with admission.slot():
            async with uploads(request) as upload:
                path, name = await engine.pool.run(_checked_upload, upload)
                try:
                    await engine.pool.run(_check_duration, path, name, settings.max_duration)
                except ActionCLIPError as exc:  # unreadable: named as the client named it
                    raise type(exc)(str(exc).replace(os.fspath(path), name)) from None
                return await engine.pool.run(service.add, path, name)

    @app.post("/v1/collection/classify", dependencies=guarded,
              summary="rank labels for every indexed video (as classify --index --json), or as CSV",
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
                  "type": "object", "required": ["labels"], "properties": {
                      "labels": {"type": "array", "items": {"type": "string"}},
                      "templates": {"type": "array", "items": {"type": "string"}},
                      "top_k": {"type": "integer", "minimum": 1}}}}}}})
    async def classify_all(request: Request,
                           format: str = Query("json", pattern="^(json|csv)$", description="json or csv")) -> Any:
        body = await _json_body(request)
        labels, templates, top_k = body.get("labels"), body.get("templates"), body.get("top_k")
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
            raise Problem(400, "labels: a non-empty list of strings")
        if len(labels) > settings.max_labels:
            raise Problem(400, f"{len(labels)} labels: this server takes at most {settings.max_labels}")
        if templates is not None and (not isinstance(templates, list) or not all(isinstance(x, str) for x in templates)):
            raise Problem(400, "templates: a list of strings with '{}'")
        if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
            raise Problem(400, "top_k: an integer of at least 1")
        wants_csv = format == "csv" or "text/csv" in request.headers.get("accept", "")
        with admission.slot():
            records = await engine.pool.run(service.classify, labels, templates or None,
                                            None if wants_csv else top_k)
        if wants_csv:
            return Response(_csv(records, labels), media_type="text/csv; charset=utf-8")
        return {"records": records}


async def _json_body(request: Any) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_JSON_BYTES:
        raise Problem(413, f"a JSON body of {int(declared)} bytes: at most {MAX_JSON_BYTES}")
    data = b""
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_JSON_BYTES:
            raise Problem(413, f"a JSON body over {MAX_JSON_BYTES} bytes")
    try:
        body = json.loads(data or b"null")
    except ValueError as exc:
        raise Problem(400, f"the body is not JSON ({exc})") from None
    if not isinstance(body, dict):
        raise Problem(400, 'expected a JSON object: {"labels": ["running", ...]}')
    return body


def _csv(records: list[dict[str, Any]], labels: list[str]) -> str:
    """One row per video: its name, its best label, then every label's probability (in the order given)."""
    from actionclip.text.labels import check_labels

    labels = check_labels(labels)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["video", "top", *labels])
    for record in records:
        probs = {r["label"]: r["prob"] for r in record["results"]}
        writer.writerow([record["video"], record["results"][0]["label"] if record["results"] else "",
                         *(f"{probs[label]:.6f}" for label in labels)])
    return out.getvalue()
