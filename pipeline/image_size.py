"""Image sizes read from file headers, before decoding: a small file can claim a huge picture.

A 28 KB JPEG whose header says 65000 x 65000 decodes into 12 GB. Readers
refuse files whose header claims more than MAX_IMAGE_PIXELS, or a side
longer than MAX_IMAGE_SIDE (docs/reliability.md), before decoding them. JPEG (simplejpeg's header
reader), PNG, BMP and WebP headers are read here; other formats are left
to OpenCV's own limit (2**30 pixels).
"""

import struct

import simplejpeg

MAX_IMAGE_PIXELS = 100_000_000     # 100 megapixels: 300 MB decoded, above any camera photo in common use
MAX_IMAGE_SIDE = 65_500            # the largest side a JPEG may have: the pictures written of an image are JPEGs


def header_size(data) -> tuple | None:
    """(width, height) in pixels claimed by the header of image file bytes; None for other formats or
    headers too short or damaged to say (the decoder then decides)."""
    try:
        if data[:2] == b"\xff\xd8":
            height, width, _, _ = simplejpeg.decode_jpeg_header(data)
            return int(width), int(height)
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if data[:2] == b"BM":
            width, height = struct.unpack("<ii", data[18:26])
            return abs(width), abs(height)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp_size(data)
    except (ValueError, struct.error):
        return None
    return None


def _webp_size(data):
    chunk = data[12:16]
    if chunk == b"VP8X":
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None


def too_large(width, height) -> str | None:
    """Why a width x height picture is refused, or None when it may be decoded."""
    if width * height > MAX_IMAGE_PIXELS:
        return (f"its header says {width} x {height} pixels, more than the {MAX_IMAGE_PIXELS // 1_000_000} "
                "megapixels an image may have")
    if max(width, height) > MAX_IMAGE_SIDE:
        return f"it is {width} x {height} pixels, a side longer than the {MAX_IMAGE_SIDE} pixels an image may have"
    return None
