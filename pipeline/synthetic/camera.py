"""Camera and file effects on a synthetic photo: what a real camera and a web upload do to a picture.

Each effect is drawn with its own probability from the sample's random
stream: exposure and gamma, a colour cast, greyscale, defocus or motion blur,
a low-resolution capture, sensor noise and a first JPEG compression at a
lower quality than the file's own.
"""

import cv2
import numpy as np


def _defocus(image, rng):
    sigma = rng.uniform(0.6, 2.5)
    return cv2.GaussianBlur(image, (0, 0), sigma)


def _motion_blur(image, rng):
    length = int(rng.integers(3, 14))
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2] = 1.0 / length
    turn = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), rng.uniform(0.0, 180.0), 1.0)
    kernel = cv2.warpAffine(kernel, turn, (length, length))
    return cv2.filter2D(image, -1, kernel / max(kernel.sum(), 1e-6))


def _low_resolution(image, rng):
    height, width = image.shape[:2]
    factor = rng.uniform(2.0, 5.0)
    small = cv2.resize(image, (max(8, int(width / factor)), max(8, int(height / factor))),
                       interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def _jpeg(image, rng):
    quality = int(rng.integers(15, 70))
    ok, encoded = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok, "OpenCV could not encode a JPEG in memory"
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1]


def photograph(image, rng) -> np.ndarray:
    """image (h, w, 3) uint8 RGB -> the same as a camera and a web upload might leave it, uint8 RGB."""
    out = image.astype(np.float32) / 255.0
    out = out ** rng.uniform(0.7, 1.4) * rng.uniform(0.7, 1.25)
    if rng.random() < 0.4:
        out = out * rng.uniform(0.85, 1.15, 3)
    if rng.random() < 0.12:
        out = np.repeat(out @ np.array([0.299, 0.587, 0.114], np.float32)[:, None], 3, axis=-1)
    out = np.clip(out * 255.0, 0, 255).astype(np.uint8)
    blur = rng.random()
    if blur < 0.25:
        out = _defocus(out, rng)
    elif blur < 0.35:
        out = _motion_blur(out, rng)
    if rng.random() < 0.2:
        out = _low_resolution(out, rng)
    if rng.random() < 0.35:
        noise = rng.normal(0.0, rng.uniform(2.0, 10.0), out.shape[:2] + (1 if rng.random() < 0.5 else 3,))
        out = np.clip(out + noise, 0, 255).astype(np.uint8)
    if rng.random() < 0.4:
        out = _jpeg(np.ascontiguousarray(out), rng)
    return np.ascontiguousarray(out)
