"""Strict JPEG decoding: a file that libjpeg can decode only with a warning counts as corrupt.

OpenCV prints libjpeg's warnings ("Corrupt JPEG data: ...", "Premature end
of JPEG file") on stderr and returns the damaged picture; simplejpeg (the
same libjpeg-turbo) raises instead. The EXIF orientation is applied as
OpenCV applies it, so pictures come out as before.
"""

import numpy as np
import simplejpeg

JPEG_START = b"\xff\xd8"            # the SOI marker every JPEG file begins with
ORIENTATION_TAG = 0x0112
# EXIF orientation -> (quarter turns counter-clockwise, then flip left-right) that show the picture upright
UPRIGHT = {1: (0, False), 2: (0, True), 3: (2, False), 4: (2, True), 5: (3, True), 6: (3, False), 7: (1, True),
           8: (1, False)}


def is_jpeg(data):
    return data.startswith(JPEG_START)


def decode_jpeg(data) -> np.ndarray:
    """RGB uint8 (h, w, 3) of JPEG bytes, upright; ValueError (libjpeg's message) for any damage."""
    image = simplejpeg.decode_jpeg(data, colorspace="RGB", strict=True)
    turns, flip = UPRIGHT[exif_orientation(data)]
    if turns:
        image = np.rot90(image, turns)
    if flip:
        image = image[:, ::-1]
    return np.ascontiguousarray(image)


def exif_orientation(data) -> int:
    """The EXIF orientation (1 to 8) in the headers of JPEG bytes; 1 when there is none."""
    position = len(JPEG_START)
    while position + 4 <= len(data) and data[position] == 0xFF:
        marker = data[position + 1]
        if marker in (0xD9, 0xDA):          # end of image, start of scan: no headers follow
            break
        length = int.from_bytes(data[position + 2:position + 4], "big")
        segment = data[position + 4:position + 2 + length]
        if marker == 0xE1 and segment.startswith(b"Exif\0\0"):
            return _tiff_orientation(segment[6:])
        position += 2 + length
    return 1


def _tiff_orientation(tiff):
    """The orientation entry of the first image directory of an EXIF (TIFF) block; 1 when absent or invalid."""
    order = {b"II": "little", b"MM": "big"}.get(tiff[:2])
    if order is None:
        return 1
    directory = int.from_bytes(tiff[4:8], order)
    count = int.from_bytes(tiff[directory:directory + 2], order)
    for entry in range(directory + 2, directory + 2 + 12 * count, 12):
        if int.from_bytes(tiff[entry:entry + 2], order) == ORIENTATION_TAG:
            value = int.from_bytes(tiff[entry + 8:entry + 10], order)
            return value if value in UPRIGHT else 1
    return 1
