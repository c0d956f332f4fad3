"""image_to_webp: mode conversions and options, and a ConversionError (no output) for bad or oversized images."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from converters.errors import ConversionError
from converters.formats.images import image_to_webp


def encode(image: Image.Image, fmt: str, **params: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def noisy(size: tuple[int, int] = (64, 48)) -> Image.Image:
    channels = [Image.effect_noise(size, sigma) for sigma in (40, 60, 80)]
    return Image.merge("RGB", channels)


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` but which holds no pixel data for it."""
    data = bytearray(encode(Image.new("RGB", (1, 1)), "PNG"))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # IHDR's CRC covers type and data
    return bytes(data)


def assert_fails(source: Path, target: Path, match: str, **options: Any) -> None:
    """The conversion raises ConversionError matching ``match`` and leaves no file behind."""
    before = set(target.parent.iterdir())
    with pytest.raises(ConversionError, match=match):
        image_to_webp(source, target, **options)
    assert set(target.parent.iterdir()) == before, "a failed conversion left a file behind"


def test_image_to_webp__converts_a_png_keeping_transparency(tmp_path: Path) -> None:
    image = Image.new("RGBA", (40, 30), (255, 0, 0, 0))
    image.paste((0, 0, 255, 255), (10, 10, 20, 20))
    source = write(tmp_path / "in.png", encode(image, "PNG"))
    summary = image_to_webp(source, tmp_path / "out.webp")
    target = tmp_path / "out.webp"
    assert summary == {
        "target": str(target),
        "records": 1,
        "width": 40,
        "height": 30,
        "bytes": target.stat().st_size,
    }
    with Image.open(target) as out:
        assert (out.format, out.mode, out.size) == ("WEBP", "RGBA", (40, 30))
        assert out.getpixel((0, 0))[3] == 0
        assert out.getpixel((15, 15))[3] == 255


def p_with_transparency() -> Image.Image:
    image = Image.new("P", (8, 8), 0)
    image.info["transparency"] = 0
    return image


@pytest.mark.parametrize(
    ("make", "fmt", "mode"),
    [
        (p_with_transparency, "PNG", "RGBA"),
        (lambda: Image.new("P", (8, 8), 3), "GIF", "RGB"),
        (lambda: Image.new("LA", (8, 8), (10, 128)), "PNG", "RGBA"),
        (lambda: Image.new("CMYK", (8, 8), (0, 255, 0, 0)), "JPEG", "RGB"),
        (lambda: Image.new("CMYK", (8, 8), (0, 255, 0, 0)), "TIFF", "RGB"),
        (lambda: Image.new("L", (8, 8), 99), "JPEG", "RGB"),
        (lambda: Image.new("1", (8, 8), 1), "BMP", "RGB"),
        (lambda: Image.new("I;16", (8, 8), 3000), "PNG", "RGB"),
        (lambda: Image.new("RGB", (8, 8), "green"), "WEBP", "RGB"),
    ],
    ids=["P-transparent", "P-gif", "LA", "CMYK-jpeg", "CMYK-tiff", "L", "1-bmp", "I16-png", "webp"],
)
def test_image_to_webp__converts_modes(tmp_path: Path, make: Callable[[], Image.Image], fmt: str, mode: str) -> None:
    source = write(tmp_path / f"in.{fmt.lower()}", encode(make(), fmt))
    image_to_webp(source, tmp_path / "out.webp")
    with Image.open(tmp_path / "out.webp") as out:
        assert (out.format, out.mode, out.size) == ("WEBP", mode, (8, 8))


def test_image_to_webp__applies_exif_orientation(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    source = write(tmp_path / "in.jpg", encode(noisy((40, 20)), "JPEG", exif=exif.tobytes()))
    summary = image_to_webp(source, tmp_path / "out.webp")
    assert (summary["width"], summary["height"]) == (20, 40)


def test_image_to_webp__keeps_only_the_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (8, 8), color) for color in ("red", "blue", "green")]
    source = write(tmp_path / "in.gif", encode(frames[0], "GIF", save_all=True, append_images=frames[1:]))
    image_to_webp(source, tmp_path / "out.webp")
    with Image.open(tmp_path / "out.webp") as out:
        assert getattr(out, "n_frames", 1) == 1
        assert out.convert("RGB").getpixel((4, 4))[0] > 200


def test_image_to_webp__quality_and_lossless_options(tmp_path: Path) -> None:
    picture = noisy()
    source = write(tmp_path / "in.png", encode(picture, "PNG"))
    low = image_to_webp(source, tmp_path / "low.webp", quality=10)["bytes"]
    high = image_to_webp(source, tmp_path / "high.webp", quality=95)["bytes"]
    assert low < high
    image_to_webp(source, tmp_path / "exact.webp", lossless=True)
    with Image.open(tmp_path / "exact.webp") as out:
        assert out.convert("RGB").tobytes() == picture.tobytes()


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"quality": 101}, r"option quality must be an integer from 0 to 100, got 101"),
        ({"quality": "80"}, r"option quality must be an integer"),
        ({"quality": True}, r"option quality must be an integer"),
        ({"lossless": "yes"}, r"option lossless must be true or false"),
        ({"method": 6}, r"unknown option\(s\) method; allowed: lossless, quality"),
    ],
)
def test_image_to_webp__rejects_bad_options(tmp_path: Path, options: dict[str, Any], match: str) -> None:
    source = write(tmp_path / "in.png", encode(Image.new("RGB", (4, 4)), "PNG"))
    assert_fails(source, tmp_path / "out.webp", match, **options)


def truncated(fmt: str) -> bytes:
    data = encode(noisy((200, 200)), fmt)
    return data[: len(data) // 2]


def corrupt_png() -> bytes:
    data = bytearray(encode(noisy(), "PNG"))
    start = data.index(b"IDAT") + 40
    data[start : start + 200] = bytes(200)  # garbage inside the compressed stream (CRC now wrong too)
    return bytes(data)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", r"^in\.png is not an image in a supported format \(PNG, JPEG, GIF, BMP, TIFF, WEBP\)$"),
        (b"name,age\nAda,36\n", r"is not an image in a supported format"),
        (encode(Image.new("RGB", (4, 4)), "PPM"), r"is not an image in a supported format"),
        (truncated("PNG"), r"^in\.png: truncated or corrupt image"),
        (truncated("JPEG"), r"^in\.png: truncated or corrupt image"),
        (corrupt_png(), r"^in\.png: truncated or corrupt image"),
        # No pixel data behind the header: only decoding could fail, so this message proves the order.
        (png_claiming(8000, 8000), r"^in\.png is 8000x8000 pixels \(64 megapixels\); the limit is 50 megapixels$"),
        (png_claiming(100_000, 100_000), r"^in\.png: too many pixels"),
        (encode(Image.new("L", (20_000, 4)), "PNG"), r"^in\.png is 20000x4 pixels; WEBP allows at most 16383 a side$"),
    ],
    ids=["empty", "text", "ppm", "truncated-png", "truncated-jpeg", "corrupt-png", "lies-about-size",
         "decompression-bomb", "too-wide"],
)  # fmt: skip
def test_image_to_webp__rejects_bad_images(tmp_path: Path, content: bytes, match: str) -> None:
    assert_fails(write(tmp_path / "in.png", content), tmp_path / "out.webp", match)
