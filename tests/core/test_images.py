"""Decoding by content: unusual but valid inputs just work, bad inputs raise UnreadableImage(reason)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from curate.core.errors import UnreadableImage
from curate.core.images import decode, extension_matches, probe
from curate.sources.samples import load_photo


@pytest.fixture(scope="module")
def photo():
    return load_photo("chelsea")  # 300 x 451 RGB


def save(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def test_rgb_png_roundtrip_is_exact(photo):
    d = decode(save(Image.fromarray(photo), "PNG"))
    assert d.pixels.dtype == np.uint8 and d.pixels.shape == photo.shape
    assert np.array_equal(d.pixels, photo)
    assert (d.width, d.height, d.scale, d.format) == (451, 300, 1.0, "PNG")


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied(photo, orientation):
    op = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = save(Image.fromarray(photo).transpose(op), "JPEG", quality=95, exif=exif)
    d = decode(data)
    assert d.pixels.shape == photo.shape and (d.width, d.height) == (451, 300)
    assert np.abs(d.pixels.astype(int) - photo).mean() < 4  # upright again (JPEG noise only)
    assert (probe(data, verify=False).width, probe(data, verify=False).height) == (451, 300)


def test_cmyk_jpeg(photo):
    d = decode(save(Image.fromarray(photo).convert("CMYK"), "JPEG", quality=95))
    assert d.mode == "CMYK" and d.pixels.shape == photo.shape
    assert np.abs(d.pixels.astype(int) - photo).mean() < 6


def test_16bit_grayscale_png(photo):
    gray = np.asarray(Image.fromarray(photo).convert("L"))
    d = decode(save(Image.fromarray(gray.astype(np.uint16) * 257), "PNG"))
    assert d.pixels.shape == (*gray.shape, 3)
    assert np.array_equal(d.pixels[:, :, 0], gray)


def test_palette_with_transparency_is_composited_on_white():
    im = Image.new("P", (8, 8), 0)
    im.putpalette([255, 0, 0] + [0, 0, 255] * 255)
    im.info["transparency"] = 0
    d = decode(save(im, "PNG", transparency=0))
    assert (d.pixels == 255).all()


def test_rgba_and_grayscale(photo):
    rgba = np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)])
    assert np.array_equal(decode(save(Image.fromarray(rgba), "PNG")).pixels, photo)
    g = decode(save(Image.fromarray(photo).convert("L"), "PNG")).pixels
    assert (g[:, :, 0] == g[:, :, 1]).all()


def test_decode_ignores_the_extension(tmp_path, photo):
    p = tmp_path / "really_a_png.jpg"
    p.write_bytes(save(Image.fromarray(photo), "PNG"))
    d = decode(p)
    assert d.format == "PNG" and not extension_matches(p, d.format)


def test_reduced_decode_is_at_least_the_asked_scale(photo):
    big = np.asarray(Image.fromarray(photo).resize((1804, 1200)))
    data = save(Image.fromarray(big), "JPEG", quality=90)
    d = decode(data, min_scale=0.3)
    assert d.scale == 0.5 and d.pixels.shape == (600, 902, 3)
    assert (d.width, d.height) == (1804, 1200)
    d2 = decode(data, min_scale=lambda w, h: 100 / w)
    assert d2.scale == 0.125


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "CMYK"])
def test_bgr_is_the_same_pixels_in_opencv_order(photo, fmt):
    im = Image.fromarray(photo)
    data = save(im.convert("CMYK"), "JPEG") if fmt == "CMYK" else save(im, fmt)  # OpenCV and Pillow paths
    rgb, bgr = decode(data, min_scale=0.5), decode(data, min_scale=0.5, bgr=True)
    assert bgr.scale == rgb.scale and np.array_equal(bgr.pixels, rgb.pixels[:, :, ::-1])


@pytest.mark.parametrize("kind,reason", [("empty", "empty"), ("text", "not-an-image"),
                                         ("truncated", "truncated"), ("missing", "missing")])
def test_bad_inputs(tmp_path, photo, kind, reason):
    p = tmp_path / "bad.jpg"
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "text":
        p.write_text("<html>404 not found</html>")
    elif kind == "truncated":
        data = save(Image.fromarray(photo), "JPEG", quality=90)
        p.write_bytes(data[: len(data) // 2])
    with pytest.raises(UnreadableImage) as e:
        decode(p)
    assert e.value.reason == reason


def test_decompression_bomb_is_refused_before_decoding():
    data = save(Image.new("L", (4000, 4000)), "PNG")  # tiny file, 16 Mpx
    with pytest.raises(UnreadableImage) as e:
        decode(data, max_pixels=10_000_000)
    assert e.value.reason == "too-large"
    assert decode(data, max_pixels=20_000_000).width == 4000


@pytest.mark.parametrize("error,reason", [(PermissionError(13, "Permission denied"), "permission-denied"),
                                          (OSError(5, "Input/output error"), "io-error")])
def test_unreadable_file_is_a_reason_not_a_crash(tmp_path, monkeypatch, error, reason):
    # Tests run as root, where chmod 000 still reads: the error is raised where the file is read.
    p = tmp_path / "locked.jpg"
    p.write_bytes(b"x")

    def refuse(*args, **kwargs):
        raise error

    import curate.core.images

    monkeypatch.setattr(curate.core.images, "open", refuse, raising=False)  # the module's reads go through it
    with pytest.raises(UnreadableImage) as e:
        decode(p)
    assert e.value.reason == reason


@pytest.mark.parametrize("fmt", ["TIFF", "JPEG", "PNG", "WEBP"])
def test_reported_size_is_upright_like_the_pixels(fmt):
    a = np.zeros((40, 100, 3), np.uint8)
    a[:, :10] = 255
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90: the upright image is 40 wide, 100 high
    buf = io.BytesIO()
    im.save(buf, fmt, exif=exif.tobytes())
    d = decode(buf.getvalue())
    assert d.pixels.shape[:2] == (100, 40) and (d.width, d.height) == (40, 100)
    p = probe(buf.getvalue(), verify=False)
    assert (p.width, p.height) == (40, 100)


def _jpeg(im: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, **kw)
    return buf.getvalue()


def test_jpeg_frame_reads_what_pillow_reads(photo):
    from curate.core.images import jpeg_frame

    im = Image.fromarray(photo).resize((223, 224))
    exif = Image.Exif()
    exif[0x0112] = 6
    cases = {"baseline": _jpeg(im, format="JPEG"), "progressive": _jpeg(im, format="JPEG", progressive=True),
             "gray": _jpeg(im.convert("L"), format="JPEG"), "cmyk": _jpeg(im.convert("CMYK"), format="JPEG"),
             "exif": _jpeg(im, format="JPEG", exif=exif)}
    for name, data in cases.items():
        ref = Image.open(io.BytesIO(data))
        assert jpeg_frame(data) == (*ref.size, len(ref.getbands()), name == "exif"), name
    mpo = _jpeg(im, format="MPO", save_all=True, append_images=[im.rotate(10)])
    png = io.BytesIO()
    im.save(png, format="PNG")
    cut = cases["baseline"][:20]  # the file ends inside its tables
    assert jpeg_frame(mpo) is jpeg_frame(png.getvalue()) is jpeg_frame(cut) is jpeg_frame(b"") is None


def test_png_plain_only_for_what_opencv_decodes_as_pillow(photo):
    from curate.core.images import png_plain

    im = Image.fromarray(photo)
    exif = Image.Exif()
    exif[0x0112] = 6
    plain = {"RGB": _jpeg(im, format="PNG"), "L": _jpeg(im.convert("L"), format="PNG")}
    other = {"RGBA": _jpeg(im.convert("RGBA"), format="PNG"), "P": _jpeg(im.convert("P"), format="PNG"),
             "16-bit": _jpeg(im.convert("I;16"), format="PNG"), "exif": _jpeg(im, format="PNG", exif=exif)}
    assert png_plain(plain["RGB"]) == (*im.size, 3) and png_plain(plain["L"]) == (*im.size, 1)
    for name, data in other.items():
        assert png_plain(data) is None, name
    assert png_plain(plain["RGB"][: len(plain["RGB"]) // 2]) is None  # cut short: decode() names it


def test_pil_gray_is_pillows_gray_for_every_colour_and_a_photo(photo):
    """pil_gray (float32 arithmetic) equals Pillow's convert("L") on all 2**24 colours, RGB and BGR, and on a
    batch of real photo crops (any leading shape)."""
    from curate.core.images import pil_gray

    levels = np.arange(256, dtype=np.uint8)
    every = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(4096, 4096, 3)
    want = np.asarray(Image.fromarray(every).convert("L"))
    assert np.array_equal(pil_gray(every), want)
    assert np.array_equal(pil_gray(np.ascontiguousarray(every[..., ::-1]), bgr=True), want)
    crops = np.stack([photo[k * 20 : k * 20 + 64, :64] for k in range(5)])
    assert np.array_equal(pil_gray(crops), np.stack([np.asarray(Image.fromarray(c).convert("L")) for c in crops]))
