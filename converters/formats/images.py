"""Image converter: PNG/JPEG/GIF/BMP/TIFF/WEBP -> WEBP, with the pixel count checked before decoding."""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

from PIL import Image, ImageOps, UnidentifiedImageError

from converters.atomic import atomic_output
from converters.errors import ConversionError
from converters.formats.common import open_source, phase
from converters.limits import check_estimate, reraise_memory_error

#: Largest image accepted, in pixels; checked from the header, before any pixel is decoded.
MAX_PIXELS = 50_000_000
#: WEBP can't store a side longer than this.
MAX_WEBP_SIDE = 16383
#: Formats Pillow may open. Others are refused: fewer decoders, less attack surface (EPS would run Ghostscript).
INPUT_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")
#: Bytes of memory per pixel while an RGB or RGBA image is converted (lossy, lossless): Pillow's
#: decoded image (4 bytes a pixel), libwebp's ARGB copy, its YUV planes and, the part that grows
#: with detail, its token buffer and output. Measured worst (noise) from 2 to 20 megapixels: 25 and
#: 45; a photo-like image takes about 10 and 29.
PIXEL_COST = 26
PIXEL_COST_LOSSLESS = 48
#: Added for any other mode: the image converted to RGB(A) next to the decoded one.
CONVERT_COST = 4
#: Added once: the codecs' own tables and buffers, whatever the size.
FIXED_COST = 16 * 1024 * 1024


def image_to_webp(source: Path, target: Path, **options: Any) -> dict[str, Any]:
    """Convert a PNG, JPEG, GIF, BMP, TIFF or WEBP image to WEBP.

    Options:
      ``quality`` (int 0-100, default 80): lossy quality; with ``lossless``, the compression effort.
      ``lossless`` (bool, default false): encode losslessly.

    The EXIF orientation is applied (the output has no EXIF). Only the first frame of an animation
    is kept. Transparency is kept (RGBA), everything else becomes RGB. Images over 50 megapixels or
    with a side over 16383 pixels, images whose conversion would need more memory than a job may use
    (``PIXEL_COST`` bytes a pixel, ``CONVERTERS_MAX_MEMORY_MB``; checked from the header, before any
    pixel is decoded), files that aren't images of those formats, and truncated or corrupt images
    are errors. Returns the output's ``width``, ``height`` and size in ``bytes``; ``records`` is 1.
    """
    quality, lossless = _options(options)
    with open_source(source) as fh:
        image = _decode(fh, source, lossless)
    phase("encoding WEBP")
    with atomic_output(target, binary=True) as out:
        image.save(out, format="WEBP", quality=quality, lossless=lossless)
    return {
        "target": str(target),
        "records": 1,
        "width": image.width,
        "height": image.height,
        "bytes": target.stat().st_size,
    }


def _options(options: dict[str, Any]) -> tuple[int, bool]:
    unknown = sorted(set(options) - {"quality", "lossless"})
    if unknown:
        raise ConversionError(f"unknown option(s) {', '.join(unknown)}; allowed: lossless, quality")
    quality = options.get("quality", 80)
    if isinstance(quality, bool) or not isinstance(quality, int) or not 0 <= quality <= 100:
        raise ConversionError(f"option quality must be an integer from 0 to 100, got {quality!r}")
    lossless = options.get("lossless", False)
    if not isinstance(lossless, bool):
        raise ConversionError(f"option lossless must be true or false, got {lossless!r}")
    return quality, lossless


def _decode(fh: IO[bytes], source: Path, lossless: bool) -> Image.Image:
    """The first frame, decoded, upright, in RGB or RGBA; any failure is a ConversionError."""
    # Pillow raises an open-ended set of types on bad input (UnidentifiedImageError, OSError for
    # truncated data, SyntaxError from some plugins, ValueError, DecompressionBombError...), so
    # anything it raises while reading is the file's fault.
    try:
        with Image.open(fh, formats=INPUT_FORMATS) as image:
            _check_size(image, source, lossless)
            image.load()
            ImageOps.exif_transpose(image, in_place=True)  # in place: no second copy of the pixels
            if image.mode in ("RGB", "RGBA"):
                return image
            return image.convert("RGBA" if image.has_transparency_data else "RGB")
    except ConversionError:
        raise
    except UnidentifiedImageError as exc:
        formats = ", ".join(INPUT_FORMATS)
        raise ConversionError(f"{source.name} is not an image in a supported format ({formats})") from exc
    except Image.DecompressionBombError as exc:
        raise ConversionError(f"{source.name}: too many pixels ({exc})") from exc
    except Exception as exc:
        reraise_memory_error(exc)
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise ConversionError(f"{source.name}: truncated or corrupt image ({detail})") from exc


def _check_size(image: Image.Image, source: Path, lossless: bool) -> None:
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ConversionError(
            f"{source.name} is {width}x{height} pixels ({width * height / 1e6:.0f} megapixels); "
            f"the limit is {MAX_PIXELS / 1e6:.0f} megapixels"
        )
    if max(width, height) > MAX_WEBP_SIDE:
        raise ConversionError(f"{source.name} is {width}x{height} pixels; WEBP allows at most {MAX_WEBP_SIDE} a side")
    cost = _pixel_cost(image.mode, lossless)
    what = f"{width}x{height} pixels ({image.mode}, {cost} bytes each to convert)"
    check_estimate(source, width * height * cost + FIXED_COST, what)


def _pixel_cost(mode: str, lossless: bool) -> int:
    """Bytes per pixel while converting: decoded, converted to RGB(A), encoded (libwebp's own buffers)."""
    if mode not in ("RGB", "RGBA"):
        return PIXEL_COST_LOSSLESS + CONVERT_COST if lossless else PIXEL_COST + CONVERT_COST
    return PIXEL_COST_LOSSLESS if lossless else PIXEL_COST
