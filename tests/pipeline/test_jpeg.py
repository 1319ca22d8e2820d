"""Strict JPEG decoding: OpenCV's pictures for sound files, an error for the ones libjpeg only warns about."""

import cv2
import numpy as np
import pytest
from conftest import real_path

from prn.pipeline.datasets import SampleError, read_image
from prn.pipeline.jpeg import decode_jpeg, exif_orientation


def picture():
    """(48, 80, 3) uint8 with distinct corners, so that any turn or flip shows."""
    image = np.zeros((48, 80, 3), np.uint8)
    image[:16, :24] = 255
    image[30:, 60:, 1] = 200
    image[:10, 70:, 2] = 120
    return image


def encode(image):
    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(image[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return data.tobytes()


def with_orientation(data, value, order="big"):
    """JPEG bytes with an EXIF block holding only the orientation, in either TIFF byte order."""
    mark = b"MM" if order == "big" else b"II"
    entry = ((0x0112).to_bytes(2, order) + (3).to_bytes(2, order) + (1).to_bytes(4, order)
             + value.to_bytes(2, order) + b"\0\0")
    tiff = mark + (42).to_bytes(2, order) + (8).to_bytes(4, order) + (1).to_bytes(2, order) + entry + b"\0" * 4
    segment = b"Exif\0\0" + tiff
    return data[:2] + b"\xff\xe1" + (len(segment) + 2).to_bytes(2, "big") + segment + data[2:]


def opencv(data):
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@pytest.mark.parametrize("order", ["big", "little"])
@pytest.mark.parametrize("value", range(1, 9))
def test_pictures_are_opencvs_upright_ones(value, order):
    data = with_orientation(encode(picture()), value, order)
    assert exif_orientation(data) == value
    expected = opencv(data)
    assert expected.shape == ((48, 80, 3) if value <= 4 else (80, 48, 3))
    np.testing.assert_array_equal(decode_jpeg(data), expected)


def test_the_real_datasets_decode_as_opencv_decodes_them():
    for path in sorted(real_path().rglob("*.jpg")):
        np.testing.assert_array_equal(read_image(path), opencv(path.read_bytes()))


@pytest.mark.parametrize("how", ["garbage", "truncated", "not a jpeg"])
def test_damaged_jpeg_data_is_an_error_not_a_picture(tmp_path, how):
    data = bytearray(encode(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)))
    middle = len(data) // 2
    if how == "garbage":
        data[middle:middle + 64] = bytes(range(64))
        assert cv2.imdecode(np.frombuffer(bytes(data), np.uint8), cv2.IMREAD_COLOR) is not None  # OpenCV only warns
    elif how == "truncated":
        del data[middle:]
    else:
        data[2:] = b" not a JPEG after all"
    path = tmp_path / "damaged.jpg"
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError):
        decode_jpeg(bytes(data))
    with pytest.raises(SampleError, match=f"^{path}: not a readable image \\(corrupt JPEG: .+\\)$"):
        read_image(path)


def test_png_goes_through_opencv(tmp_path):
    image = picture()
    ok, data = cv2.imencode(".png", image[..., ::-1])
    (tmp_path / "picture.png").write_bytes(data.tobytes())
    np.testing.assert_array_equal(read_image(tmp_path / "picture.png"), image)
    assert exif_orientation(encode(image)) == 1


def claiming(data, width, height):
    """JPEG or PNG bytes whose header claims width x height, the rest unchanged."""
    data = bytearray(data)
    if data[:2] == b"\xff\xd8":
        at = data.index(b"\xff\xc0") + 5
        data[at:at + 4] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    else:
        data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    return bytes(data)


def test_an_image_too_long_for_a_jpeg_picture_is_refused_and_one_that_fits_is_read(tmp_path):
    from prn.pipeline.image_size import MAX_IMAGE_SIDE

    ok, encoded = cv2.imencode(".png", np.full((4, MAX_IMAGE_SIDE + 1, 3), 90, np.uint8))
    (tmp_path / "long.png").write_bytes(encoded.tobytes())
    with pytest.raises(SampleError, match=f"a side longer than the {MAX_IMAGE_SIDE} pixels"):
        read_image(tmp_path / "long.png")
    ok, encoded = cv2.imencode(".png", np.full((4, MAX_IMAGE_SIDE, 3), 90, np.uint8))
    (tmp_path / "fits.png").write_bytes(encoded.tobytes())
    assert read_image(tmp_path / "fits.png").shape == (4, MAX_IMAGE_SIDE, 3)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_a_decompression_bomb_is_refused_before_decoding(tmp_path, suffix, monkeypatch):
    """A small file whose header claims 65000 x 65000 pixels (12 GB decoded) is refused from its header."""
    import prn.pipeline.datasets as datasets
    from prn.pipeline.image_size import MAX_IMAGE_PIXELS, header_size

    ok, encoded = cv2.imencode(suffix, np.full((40, 30, 3), 90, np.uint8))
    bomb = tmp_path / f"bomb{suffix}"
    bomb.write_bytes(claiming(encoded.tobytes(), 65000, 65000))
    assert header_size(bomb.read_bytes()) == (65000, 65000)
    monkeypatch.setattr(datasets, "decode_jpeg", lambda data: pytest.fail("decoded"))
    monkeypatch.setattr(datasets.cv2, "imdecode", lambda *args: pytest.fail("decoded"))
    with pytest.raises(SampleError, match=rf"{bomb}: not read: its header says 65000 x 65000 pixels, more than "
                                          rf"the {MAX_IMAGE_PIXELS // 1_000_000} megapixels"):
        read_image(bomb)
    fine = tmp_path / f"fine{suffix}"
    fine.write_bytes(claiming(encoded.tobytes(), 30, 40))
    assert header_size(fine.read_bytes()) == (30, 40)
