"""Images out of a request: the body read up to a size limit, multipart files or raw bytes, each decoded
with a pixel limit. Nothing here ever opens a path: a request can only bring bytes."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import PurePosixPath

from PIL import Image


class UploadError(Exception):
    """A request the client must fix: an HTTP status and one line."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class Upload:
    name: str  # what the client called it (its base name only), echoed as "image" in the answer
    data: bytes


def mb(n: int) -> str:
    return f"{n / 1e6:g} MB"


async def read_body(request, max_bytes: int) -> bytes:
    """The request body, refused with 413 as soon as it passes max_bytes (before it is all in memory)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise UploadError(413, f"upload of {mb(int(declared))} is over the limit of {mb(max_bytes)} (--max-upload-mb)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise UploadError(413, f"upload is over the limit of {mb(max_bytes)} (--max-upload-mb)")
        chunks.append(chunk)
    return b"".join(chunks)


def base_name(filename: str | None, fallback: str) -> str:
    name = PurePosixPath((filename or "").replace("\\", "/")).name
    return name or fallback


async def read_uploads(request, max_bytes: int, max_files: int) -> list[Upload]:
    """Multipart form files (any field name), or the whole body as one image."""
    body = await read_body(request, max_bytes)
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        return [Upload(base_name(request.headers.get("x-filename"), "body"), body)]
    from starlette.datastructures import UploadFile
    from starlette.formparsers import MultiPartException, MultiPartParser

    async def stream():
        yield body

    try:
        form = await MultiPartParser(request.headers, stream(), max_files=max_files, max_fields=100).parse()
    except MultiPartException as e:
        raise UploadError(400, f"bad multipart upload: {e.message}") from None
    uploads = []
    try:
        for i, (_, value) in enumerate(form.multi_items()):
            if isinstance(value, UploadFile):
                uploads.append(Upload(base_name(value.filename, f"upload-{i}"), await value.read()))
    finally:
        await form.close()
    if not uploads:
        raise UploadError(400, "no image in the upload: send files in a multipart form, or the image bytes as the body")
    return uploads


def decode(upload: Upload, max_pixels: int) -> Image.Image:
    """The image, fully decoded, or an UploadError saying what is wrong with it."""
    if not upload.data:
        raise UploadError(400, f"{upload.name}: empty upload (0 bytes)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # EXIF, palette and PIL's own bomb warnings: the limit below decides
        try:
            image = Image.open(io.BytesIO(upload.data))  # reads the header only
        except Image.DecompressionBombError:
            raise UploadError(413, f"{upload.name}: too many pixels (limit {max_pixels:,}, --max-pixels)") from None
        except Exception:
            raise UploadError(415, f"{upload.name}: not an image PIL can read") from None
        if image.width * image.height > max_pixels:
            raise UploadError(413, f"{upload.name}: {image.width}x{image.height} is too many pixels "
                                   f"(limit {max_pixels:,}, --max-pixels)")
        if image.width < 1 or image.height < 1:
            raise UploadError(400, f"{upload.name}: image has no pixels")
        try:
            image.load()
        except Exception as e:
            raise UploadError(400, f"{upload.name}: cannot decode the image, truncated or corrupt ({type(e).__name__})") from None
    return image
