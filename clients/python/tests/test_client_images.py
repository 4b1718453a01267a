"""Image inputs (PIL, bytes, paths, URIs) to encoded bytes, and returned images back to PIL."""

from __future__ import annotations

import base64
import hashlib
import io

import pytest
from PIL import Image

from toolplane import ImageRef, ToolImage
from toolplane._proto import common_pb2
from toolplane.images import sniff_mime_type, to_image_bytes, to_proto_image


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.fixture
def picture() -> Image.Image:
    image = Image.new("RGB", (40, 30), (10, 20, 30))
    image.putpixel((5, 7), (250, 0, 125))
    return image


def test_pil_image_is_encoded_losslessly_as_png(picture):
    data, mime_type = to_image_bytes(picture)
    assert mime_type == "image/png"
    decoded = Image.open(io.BytesIO(data))
    assert decoded.format == "PNG"
    assert decoded.size == (40, 30)
    assert decoded.convert("RGB").getpixel((5, 7)) == (250, 0, 125)


@pytest.mark.parametrize(("mode", "expected_mode"), [("CMYK", "RGB"), ("RGBA", "RGBA"), ("L", "L"), ("F", "RGB")])
def test_modes_png_cannot_store_are_converted(mode, expected_mode):
    data, _ = to_image_bytes(Image.new(mode, (8, 8)))
    assert Image.open(io.BytesIO(data)).mode == expected_mode


@pytest.mark.parametrize(
    ("fmt", "mime_type"),
    [
        ("JPEG", "image/jpeg"),
        ("PNG", "image/png"),
        ("WEBP", "image/webp"),
        ("GIF", "image/gif"),
        ("TIFF", "image/tiff"),
    ],
)
def test_encoded_bytes_the_server_reads_are_sent_unchanged(picture, fmt, mime_type):
    original = encoded(picture, fmt)
    assert sniff_mime_type(original) == mime_type
    for form in (original, bytearray(original), memoryview(original)):
        data, sniffed = to_image_bytes(form)
        assert data == original
        assert sniffed == mime_type


def test_other_formats_pillow_reads_are_reencoded_as_png(picture):
    data, mime_type = to_image_bytes(encoded(picture, "BMP"))
    assert mime_type == "image/png"
    assert Image.open(io.BytesIO(data)).convert("RGB").getpixel((5, 7)) == (250, 0, 125)


def test_paths_and_uris_are_read(tmp_path, picture):
    original = encoded(picture, "JPEG", quality=90)
    path = tmp_path / "input image.jpg"
    path.write_bytes(original)
    data_uri = "data:image/jpeg;base64," + base64.b64encode(original).decode()
    for source in (path, str(path), path.as_uri(), data_uri):
        assert to_image_bytes(source) == (original, "image/jpeg"), source


def test_bad_inputs_name_what_is_accepted(tmp_path):
    with pytest.raises(ValueError, match="not a readable image.*accepted: PNG, JPEG"):
        to_image_bytes(b"certainly not an image")
    with pytest.raises(ValueError, match="image is empty"):
        to_image_bytes(b"")
    with pytest.raises(TypeError, match="unsupported image type int"):
        to_image_bytes(42)
    with pytest.raises(ValueError, match="scheme 'https' is not supported"):
        to_image_bytes("https://example.com/cat.png")
    with pytest.raises(ValueError, match="must be base64"):
        to_image_bytes("data:image/png,rawbytes")
    with pytest.raises(FileNotFoundError):
        to_image_bytes(tmp_path / "missing.png")


def test_references_travel_as_sha256():
    digest = "ab" * 32
    assert to_proto_image(ImageRef(digest)).WhichOneof("source") == "sha256"
    assert to_proto_image(ToolImage(digest)).sha256 == digest


def test_returned_inline_image_decodes_and_knows_its_digest(picture):
    data = encoded(picture, "PNG")
    image = ToolImage.from_proto(common_pb2.Image(data=data, mime_type="image/png", width=40, height=30))
    assert image.sha256 == hashlib.sha256(data).hexdigest()
    assert (image.width, image.height, image.mime_type) == (40, 30, "image/png")
    assert image.to_pil().getpixel((5, 7)) == (250, 0, 125)
    # An image returned inline can be sent back as it is.
    assert to_proto_image(image).data == data


def test_returned_reference_must_be_fetched_before_decoding():
    image = ToolImage.from_proto(common_pb2.Image(sha256="cd" * 32, mime_type="image/png", width=4, height=4))
    assert image.data is None
    with pytest.raises(ValueError, match="returned by reference"):
        image.to_pil()
