"""Images in and out: PIL images, encoded bytes, paths and data: URIs to bytes; results back to PIL.

Input images travel as encoded bytes (the server decodes them). A PIL image is
encoded losslessly as PNG; bytes and files are sent as they are when they are a
format the server reads (PNG, JPEG, WebP, GIF, TIFF), and re-encoded as PNG
otherwise (e.g. BMP), which needs Pillow.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union
from urllib.parse import unquote, urlparse

try:
    from PIL import Image as _PIL
except ImportError:  # Pillow is optional: bytes and paths work without it.
    _PIL = None

from ._proto import common_pb2

_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)

# PNG stores these modes as they are; any other mode (CMYK, YCbCr, F, ...) is converted first.
_PNG_MODES = {"1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"}


def sniff_mime_type(data: bytes) -> Optional[str]:
    """MIME type of encoded image bytes from their magic number, or None for formats the server does not read."""
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    for signature, mime_type in _SIGNATURES:
        if data.startswith(signature):
            return mime_type
    return None


@dataclass(frozen=True)
class ImageRef:
    """An image already in the gateway's store, named by the sha256 PutImage returned."""

    sha256: str


def _require_pillow(purpose: str) -> Any:
    if _PIL is None:
        raise ImportError(f"Pillow is needed to {purpose} (Debian: python3-pil; pip: pillow)")
    return _PIL


def _encode_pil(image: Any) -> bytes:
    if image.mode not in _PNG_MODES:
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _read_source(source: Union[str, "os.PathLike[str]"]) -> bytes:
    if isinstance(source, str) and source.startswith("data:"):
        header, _, payload = source.partition(",")
        if not header.endswith(";base64"):
            raise ValueError("image data: URI must be base64-encoded (data:image/png;base64,...)")
        return base64.b64decode(payload, validate=True)
    if isinstance(source, str) and "://" in source:
        url = urlparse(source)
        if url.scheme != "file":
            raise ValueError(
                f"image URL scheme {url.scheme!r} is not supported: pass bytes, a path, a file:// or data: URI"
            )
        source = unquote(url.path)
    return Path(source).read_bytes()


def to_image_bytes(image: Any) -> "tuple[bytes, str]":
    """Encoded bytes and their MIME type for a PIL image, bytes, a path, file:// or data: URI."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
    elif isinstance(image, (str, os.PathLike)):
        data = _read_source(image)
    elif _PIL is not None and isinstance(image, _PIL.Image):
        return _encode_pil(image), "image/png"
    else:
        raise TypeError(
            f"unsupported image type {type(image).__name__}: pass a PIL.Image.Image, bytes, a path, "
            "a file:// or data: URI, or an ImageRef"
        )
    if not data:
        raise ValueError("image is empty (0 bytes)")
    mime_type = sniff_mime_type(data)
    if mime_type is not None:
        return data, mime_type
    pil = _require_pillow("convert an image that is not PNG/JPEG/WebP/GIF/TIFF")
    try:
        decoded = pil.open(io.BytesIO(data))
        decoded.load()
    except Exception as error:
        raise ValueError(
            f"image bytes are not a readable image (first bytes {data[:8]!r}); "
            "accepted: PNG, JPEG, WebP, GIF, TIFF, or anything Pillow can decode"
        ) from error
    return _encode_pil(decoded), "image/png"


def to_proto_image(image: Any) -> Any:
    """A common.v1.Image for any accepted input; ImageRef and stored ToolImages travel as a reference."""
    if isinstance(image, ImageRef):
        return common_pb2.Image(sha256=image.sha256)
    if isinstance(image, ToolImage):
        if image.data is None:
            return common_pb2.Image(sha256=image.sha256)
        return common_pb2.Image(data=image.data, mime_type=image.mime_type)
    data, mime_type = to_image_bytes(image)
    return common_pb2.Image(data=data, mime_type=mime_type)


@dataclass(frozen=True)
class ToolImage:
    """An image returned by the gateway.

    data is None when it was returned by reference (ImageDelivery 'reference'):
    fetch it with client.get_image(image.sha256).
    """

    sha256: str
    mime_type: str = ""
    width: int = 0
    height: int = 0
    data: Optional[bytes] = field(default=None, repr=False)

    @classmethod
    def from_proto(cls, message: Any) -> "ToolImage":
        source = message.WhichOneof("source")
        if source == "data":
            data = bytes(message.data)
            return cls(hashlib.sha256(data).hexdigest(), message.mime_type, message.width, message.height, data)
        return cls(message.sha256, message.mime_type, message.width, message.height, None)

    def to_pil(self) -> Any:
        """The image as a loaded PIL.Image.Image."""
        if self.data is None:
            raise ValueError(f"image {self.sha256} was returned by reference; fetch it with client.get_image()")
        image = _require_pillow("decode returned images").open(io.BytesIO(self.data))
        image.load()
        return image
