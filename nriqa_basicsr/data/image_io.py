"""Decoding image bytes the same way for every GT variant, with errors that name the file."""

from __future__ import annotations

import os

import cv2
import numpy as np

__all__ = ['IMAGE_EXTENSIONS', 'ImageReadError', 'decode_image', 'is_image_file', 'list_images']

# Files every tool reads as images (lower-case; OpenCV decodes all of them).
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')


def is_image_file(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def list_images(folder: str) -> list[str]:
    """Sorted file names of the images directly in ``folder`` (no sub-folders)."""
    return sorted(n for n in os.listdir(folder) if is_image_file(n) and os.path.isfile(os.path.join(folder, n)))


class ImageReadError(ValueError):
    """An image cannot be decoded, or has a channel layout we do not accept."""


def decode_image(buf: bytes | None, source: str) -> np.ndarray:
    """PNG/JPEG bytes → float32 BGR ``(H, W, 3)`` in [0, 1].

    Conversions (applied identically to every variant): grey → three equal channels; 16-bit → scaled by
    1/65535 (full precision kept); RGBA/BGRA → alpha dropped when fully opaque, refused otherwise (there is no
    right background to composite on).
    """
    if buf is None:
        raise ImageReadError(f'{source}: no data (missing file or LMDB key).')
    img = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ImageReadError(f'{source}: cannot be decoded (corrupt or truncated image).')
    if img.dtype == np.uint8:
        scale = 255.0
    elif img.dtype == np.uint16:
        scale = 65535.0
    else:
        raise ImageReadError(f'{source}: unsupported pixel type {img.dtype}; use 8- or 16-bit PNG.')
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    elif img.shape[2] == 4:
        if img[..., 3].min() < (255 if scale == 255.0 else 65535):
            raise ImageReadError(f'{source}: has a non-opaque alpha channel; flatten it to RGB first.')
        img = img[..., :3]
    elif img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    elif img.shape[2] != 3:
        raise ImageReadError(f'{source}: {img.shape[2]} channels; expected 1 (grey), 3 (RGB) or 4 (RGBA).')
    return img.astype(np.float32) / scale
