"""Images for the run page's viewer: their sizes, and downscaled previews of large ones.

A large image (a side over PREVIEW pixels) is first shown from a preview the server makes
with Pillow, as a PNG (lossless: the viewer shows its pixel values), so the page stays
responsive; the viewer loads the full image once the user zooms past the preview's
resolution. Previews are kept in memory (the last CACHED ones, keyed by path, size and
modification time). The same path rules as /files/ apply (web/files.py): only regular
files under the storage folder.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from qaflow.web import files
from qaflow.web.deps import board

router = APIRouter()
PREVIEW = 1600  # pixels of a preview's longer side
CACHED = 32
RASTER = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp"}  # what Pillow reads
_cache: OrderedDict[tuple[str, int, int], bytes] = OrderedDict()
_lock = threading.Lock()


def image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) read from the file's header, None if it is not a raster image."""
    if path.suffix.lower() not in RASTER:
        return None
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, UnidentifiedImageError, ValueError):
        return None


def needs_preview(size: tuple[int, int] | None) -> bool:
    return size is not None and max(size) > PREVIEW


def preview_png(path: Path) -> bytes:
    """The image shrunk to fit PREVIEW×PREVIEW, as a PNG (cached)."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    data = _shrink(path)
    with _lock:
        _cache[key] = data
        while len(_cache) > CACHED:
            _cache.popitem(last=False)
    return data


def _shrink(path: Path) -> bytes:
    from PIL import Image

    with Image.open(path) as image:
        image.draft("RGB", (PREVIEW, PREVIEW))  # JPEG: decode at a reduced scale, much faster
        shown = image.convert("RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB")
        shown.thumbnail((PREVIEW, PREVIEW), Image.Resampling.BOX, reducing_gap=2.0)
    out = io.BytesIO()
    shown.save(out, format="PNG", compress_level=1)
    return out.getvalue()


@dataclass(frozen=True)
class Shown:
    """One side of an image view: the file's URL, its preview's (large images) and size."""

    url: str
    preview: str | None
    width: int | None
    height: int | None


def shown(request: Request, storage: Path, output: files.OutputFile) -> Shown:
    size = image_size(storage.resolve() / unquote(output.url_path))
    url = str(request.url_for("file", path=output.url_path).path)
    small = (
        str(request.url_for("preview", path=output.url_path).path) if needs_preview(size) else None
    )
    return Shown(url, small, *(size or (None, None)))


@router.get("/previews/{path:path}")
def preview(request: Request, path: str) -> Response:
    """A downscaled PNG of a large image under the storage folder."""
    b = board(request)
    try:
        found = files.safe_path(b.project.storage, path)
    except files.Refused as refused:
        return Response(f"{refused}\n", status_code=refused.status, media_type="text/plain")
    if image_size(found) is None:
        return Response("not an image\n", status_code=415, media_type="text/plain")
    try:
        data = preview_png(found)
    except (OSError, ValueError):
        return Response("cannot read this image\n", status_code=415, media_type="text/plain")
    return Response(
        data,
        media_type="image/png",
        headers={"Cache-Control": "private, max-age=60", "Content-Security-Policy": "sandbox"},
    )
