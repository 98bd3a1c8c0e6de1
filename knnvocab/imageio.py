"""Safe image decoding: every photo becomes (H, W, 3) uint8 RGB, or a clear ImageError.

Handles EXIF orientation, greyscale, palette, CMYK, 16-bit and alpha images; refuses
truncated files and images above a pixel limit (no decompression bombs).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from knnvocab.errors import ImageError
from knnvocab.types import ImageArray

DEFAULT_MAX_PIXELS = 64_000_000


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit or float greyscale: stretch the actual range to 8 bits
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = np.zeros_like(arr) if hi <= lo else (arr - lo) * (255.0 / (hi - lo))
        img = Image.fromarray(np.round(scaled).astype(np.uint8), mode="L")
    if img.mode in ("P", "PA") or img.mode in ("LA", "RGBA") or "transparency" in img.info:
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    return img.convert("RGB")


def read_bytes(path: Path) -> bytes:
    """Read a whole file, turning OS errors into an ImageError naming it."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ImageError(path, "file not found") from None
    except IsADirectoryError:
        raise ImageError(path, "is a directory, not an image") from None
    except OSError as exc:
        raise ImageError(path, f"cannot read ({exc.strerror or exc})") from None


def open_image(data: bytes, name: str | Path, max_pixels: int) -> Image.Image:
    """Open and fully decode an image, refusing bombs and truncated data."""
    source = io.BytesIO(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(source)
            width, height = img.size
            if width * height > max_pixels:
                raise ImageError(
                    name,
                    f"image is {width}x{height} = {width * height:,} pixels, above the limit "
                    f"of {max_pixels:,} (KNNVOCAB_MAX_IMAGE_PIXELS)",
                )
            img.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(name, f"refused as a possible decompression bomb ({exc})") from None
    except UnidentifiedImageError:
        raise ImageError(name, "not an image (unknown or unsupported format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(name, f"cannot decode image ({exc})") from None
    return img


def load_rgb(
    path: Path | str, max_pixels: int = DEFAULT_MAX_PIXELS, data: bytes | None = None
) -> ImageArray:
    """Decode ``path`` (or its already-read ``data``) into (H, W, 3) uint8 RGB.

    EXIF orientation is applied, so the array is the photo as a viewer shows it.
    """
    img = open_image(data if data is not None else read_bytes(Path(path)), path, max_pixels)
    try:
        img = ImageOps.exif_transpose(img) or img
        rgb = _to_rgb(img)
    except (OSError, ValueError) as exc:
        raise ImageError(path, f"cannot convert image to RGB ({exc})") from None
    return np.asarray(rgb, dtype=np.uint8).copy()


def load_label_png(
    path: Path | str, max_pixels: int = DEFAULT_MAX_PIXELS, data: bytes | None = None
) -> np.ndarray:
    """Decode a single-channel label image (index, palette or 16-bit) at ``path`` (or its
    already-read ``data``) into (H, W) int64.

    Palette PNGs give their palette indices, not colours; RGB images are refused.
    """
    img = open_image(data if data is not None else read_bytes(Path(path)), path, max_pixels)
    if img.mode in ("RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV"):
        raise ImageError(path, f"expected a single-channel index mask, got a {img.mode} image")
    return np.asarray(img).astype(np.int64)
