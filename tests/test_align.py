"""Face alignment on real photos with the real dlib models: no mocks.

The example photos are the public-domain portraits in assets/faces; the CelebA check
reads the shared data set beside the repository.
"""

from __future__ import annotations

import io
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from glow_demo.align import (
    LEFT_EYE,
    RIGHT_EYE,
    STABLE,
    AlignedFace,
    FaceTooSmallError,
    NoFaceError,
    align_face,
    detect_face,
    feather_mask,
    load_template,
    paste_back,
)
from glow_demo.photo import (
    MAX_PIXELS,
    NotAnImageError,
    PhotoError,
    PhotoSizeError,
    load_photo,
)

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "faces"
PHOTOS = sorted(p for p in ASSETS.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
CELEBA = Path(__file__).resolve().parents[2] / "shared/data/celeba"


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return load_photo(ASSETS / "astronaut.png")


@pytest.fixture(scope="module")
def hopper() -> Image.Image:
    return load_photo(ASSETS / "grace_hopper.jpg")


@pytest.fixture(scope="module")
def aligned(astronaut: Image.Image) -> AlignedFace:
    return align_face(astronaut)


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **params)
    return buf.getvalue()


def to_crop_units(face: AlignedFace, points: np.ndarray) -> np.ndarray:
    """Photo pixels -> normalised crop coordinates (0..1 across the crop)."""
    m = face.matrix
    return (points @ m[:, :2].T + m[:, 2] + 0.5) / face.size


def eye_centres(points: np.ndarray) -> np.ndarray:
    return np.stack([points[LEFT_EYE].mean(axis=0), points[RIGHT_EYE].mean(axis=0)])


def assert_readable(err: pytest.ExceptionInfo) -> None:
    message = str(err.value)
    assert isinstance(err.value, PhotoError) and isinstance(err.value, ValueError)
    assert message[0].isupper() and message.endswith("."), message
    assert "Traceback" not in message and len(message) < 200


# ----- the example photos ----------------------------------------------------------------

def test_assets_are_small_and_have_sources() -> None:
    sources = (ASSETS / "SOURCES.md").read_text()
    assert len(PHOTOS) >= 2
    for photo in PHOTOS:
        assert photo.stat().st_size < 500_000, photo
        assert f"`{photo.name}`" in sources, f"{photo.name} is not listed in SOURCES.md"


@pytest.mark.parametrize("path", PHOTOS, ids=lambda p: p.name)
def test_each_example_photo_aligns_onto_the_template(path: Path) -> None:
    face = align_face(path)
    template = load_template().landmarks
    assert face.n_faces == 1
    s = face.size
    assert face.crop.shape == (s, s, 3) and face.crop.dtype == np.uint8 and 64 <= s <= 1024
    assert face.matrix.shape == (2, 3) and face.landmarks.shape == (68, 2)
    # "Native resolution": the crop keeps about the photo's pixels per face (scale ~1).
    assert 0.8 < np.sqrt(abs(np.linalg.det(face.matrix[:, :2]))) < 1.25
    # Via the transform: the photo's eyes land on the template's, within 1.5 px of 64.
    eyes = eye_centres(to_crop_units(face, face.landmarks))
    assert np.abs(eyes - eye_centres(template)).max() * 64 < 1.5
    # And for real: detect again on the 64 px model input (upscaled for the detector).
    model_input = face.model_input(64)
    assert model_input.size == (64, 64) and model_input.mode == "RGB"
    again = detect_face(np.asarray(model_input.resize((256, 256), Image.LANCZOS)))
    redetected = (again.landmarks + 0.5) / 256
    assert np.abs(eye_centres(redetected) - eye_centres(template)).max() * 64 < 2.0


@pytest.mark.needs_data(CELEBA)
def test_celeba_training_crop_comes_back_as_the_identity() -> None:
    """The template and the training crop agree: aligning a CelebA crop changes little."""
    from glow_demo.data import celeba_crop

    corners = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=float)
    offsets = []
    for index in range(9001, 9011):  # validation images: not used to fit the template
        with Image.open(CELEBA / "images" / f"{index:06d}.jpg") as im:
            crop = celeba_crop(im, 256)
        try:
            face = align_face(crop)
        except NoFaceError:  # a few CelebA faces are turned too far for dlib
            continue
        # Where the aligned crop's corners lie in the CelebA crop, in 64-px pixels.
        inverse = np.linalg.inv(np.vstack([face.matrix, [0, 0, 1]]))[:2]
        inside = (corners * face.size - 0.5) @ inverse[:, :2].T + inverse[:, 2]
        offset = ((inside + 0.5) / 256 - corners) * 64
        assert np.linalg.norm(offset, axis=1).max() < 8, (index, offset)  # one face: loose
        offsets.append(offset)
    assert len(offsets) >= 8
    # On average the alignment is the identity: no systematic shift, scale or turn.
    assert np.linalg.norm(np.mean(offsets, axis=0), axis=1).max() < 2.0


def test_landmarks_track_the_photo_not_its_resolution(astronaut: Image.Image,
                                                      aligned: AlignedFace) -> None:
    """A 12 MP copy of a photo: found and aligned the same way, in well under seconds."""
    big = astronaut.resize((4000, 4000), Image.BICUBIC).crop((0, 0, 4000, 3000))
    data = encode(big, "JPEG", quality=90)
    start = time.perf_counter()
    photo = load_photo(data)
    face = align_face(photo)
    elapsed = time.perf_counter() - start
    assert photo.size == (4000, 3000) and face.n_faces == 1
    assert face.size == 1024  # clamped: this face is ~1,200 px across
    assert np.abs((face.landmarks + 0.5) * 512 / 4000 - 0.5 - aligned.landmarks).mean() < 1
    assert elapsed < 10, f"12 MP load + align took {elapsed:.1f} s"
    array = np.asarray(photo)
    start = time.perf_counter()
    assert np.array_equal(paste_back(array, face, np.zeros((1024, 1024, 3), np.float32)), array)
    edited = paste_back(array, face, np.full((1024, 1024, 3), 30, np.float32))
    assert time.perf_counter() - start < 5
    nose = face.landmarks[30].round().astype(int)
    assert (edited[nose[1], nose[0]].astype(int) - array[nose[1], nose[0]]).max() == 30


# ----- paste back ------------------------------------------------------------------------

def test_paste_back_zero_delta_is_the_photo_byte_for_byte(astronaut: Image.Image,
                                                          aligned: AlignedFace) -> None:
    photo = np.asarray(astronaut)
    out = paste_back(photo, aligned, np.zeros((aligned.size,) * 2 + (3,), np.float32))
    assert out.dtype == np.uint8 and np.array_equal(out, photo) and out is not photo


def test_paste_back_changes_only_the_face(astronaut: Image.Image, aligned: AlignedFace) -> None:
    photo = np.asarray(astronaut)
    rng = np.random.default_rng(0)
    s = aligned.size
    delta = np.full((s, s, 3), -40, np.float32) + rng.normal(0, 5, (s, s, 3)).astype(np.float32)
    out = paste_back(photo, aligned, delta)
    change = np.abs(out.astype(int) - photo).max(axis=-1)
    # Strongest in the middle of the face, where the mask is 1.
    nose = aligned.landmarks[30].round().astype(int)
    assert change[nose[1], nose[0]] > 25
    # Every changed pixel lies inside the crop's footprint in the photo.
    ys, xs = np.nonzero(change)
    inside = to_crop_units(aligned, np.stack([xs, ys], axis=1).astype(float))
    assert inside.min() > -0.01 and inside.max() < 1.01
    # Far from the face nothing changes at all (the photo's corners, its bottom half).
    assert not change[photo.shape[0] // 2 + 60:].any()
    assert not change[:20, :20].any() and not change[:20, -20:].any()
    # No seam: just inside the crop's edge the change has faded to (almost) nothing.
    near_edge = np.minimum(inside, 1 - inside).min(axis=1) < 0.02
    assert change[ys[near_edge], xs[near_edge]].max() <= 2


def test_feather_mask_is_smooth_and_zero_at_the_edge() -> None:
    mask = feather_mask(200)
    assert mask.shape == (200, 200) and mask.dtype == np.float32
    assert mask[100, 100] == 1.0 and mask[0, 0] < 1e-3 and mask[0, 100] < 0.01
    assert np.abs(np.diff(mask, axis=0)).max() < 0.05  # no step anywhere


def test_paste_back_checks_its_inputs(astronaut: Image.Image, aligned: AlignedFace) -> None:
    photo = np.asarray(astronaut)
    with pytest.raises(ValueError, match="delta"):
        paste_back(photo, aligned, np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ValueError, match="aligned in a 512 x 512 photo"):
        paste_back(photo[:100], aligned, np.zeros((aligned.size,) * 2 + (3,), np.float32))


# ----- every kind of input -----------------------------------------------------------------

def test_not_an_image() -> None:
    with pytest.raises(NotAnImageError, match="not an image") as err:
        load_photo(b"%PDF-1.4 this is a document, not a photo")
    assert_readable(err)


def test_damaged_image(astronaut: Image.Image) -> None:
    data = encode(astronaut, "JPEG")
    with pytest.raises(NotAnImageError, match="damaged") as err:
        load_photo(data[: len(data) // 3])
    assert_readable(err)


@pytest.mark.parametrize("kind", ["flat", "gradient"])
def test_no_face(kind: str) -> None:
    if kind == "flat":
        image = np.full((300, 400, 3), 128, np.uint8)
    else:
        image = np.repeat(np.linspace(0, 255, 400, dtype=np.uint8)[None, :, None], 300, 0)
        image = np.repeat(image, 3, 2)
    with pytest.raises(NoFaceError, match="No face found") as err:
        align_face(image)
    assert_readable(err)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_transparency_is_composited_on_white(astronaut: Image.Image, mode: str) -> None:
    alpha = Image.new("L", astronaut.size, 255)
    alpha.paste(0, (0, 0, 60, 60))  # a fully transparent corner
    image = (astronaut if mode == "RGBA" else astronaut.convert("L")).convert(mode)
    image.putalpha(alpha)
    photo = load_photo(encode(image, "PNG"))
    assert photo.mode == "RGB" and photo.getpixel((10, 10)) == (255, 255, 255)
    assert align_face(photo).n_faces == 1


@pytest.mark.parametrize("mode", ["P", "L", "1"])
def test_palette_grey_and_bilevel_photos(hopper: Image.Image, mode: str) -> None:
    image = hopper.convert(mode) if mode != "P" else hopper.quantize(64)
    photo = load_photo(image)
    assert photo.mode == "RGB" and photo.size == hopper.size
    if mode == "1":  # dithered black and white: an image, but no detectable face
        return
    assert align_face(encode(image, "PNG")).n_faces == 1


def test_sixteen_bit_photos_are_scaled_to_eight_bits(hopper: Image.Image) -> None:
    grey = np.asarray(hopper.convert("L"))
    sixteen = grey.astype(np.uint16) * 257  # full 16-bit range
    as_png = encode(Image.fromarray(sixteen), "PNG")
    assert Image.open(io.BytesIO(as_png)).mode.startswith("I")
    for source in (as_png, sixteen, np.stack([sixteen] * 3, axis=-1)):
        photo = load_photo(source)
        assert np.array_equal(np.asarray(photo)[..., 0], grey)
    assert align_face(as_png).n_faces == 1


def test_float_arrays_are_read_as_zero_to_one(hopper: Image.Image) -> None:
    array = np.asarray(hopper)
    assert np.array_equal(np.asarray(load_photo(array / 255.0)), array)
    with pytest.raises(NotAnImageError, match="shape") as err:
        load_photo(np.zeros((64, 64, 2), np.uint8))
    assert_readable(err)


def test_cmyk_jpeg(hopper: Image.Image) -> None:
    photo = load_photo(encode(hopper.convert("CMYK"), "JPEG", quality=95))
    assert photo.mode == "RGB"
    assert np.abs(np.asarray(photo, float) - np.asarray(hopper, float)).mean() < 8
    assert align_face(photo).n_faces == 1


def test_exif_rotated_jpeg_is_turned_upright(hopper: Image.Image) -> None:
    # What a phone does: store the pixels sideways and say so in the EXIF Orientation.
    sideways = hopper.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    data = encode(sideways, "JPEG", quality=95, exif=exif)
    assert Image.open(io.BytesIO(data)).size == (600, 512)
    photo = load_photo(data)
    assert photo.size == hopper.size == (512, 600)
    assert np.abs(np.asarray(photo, float) - np.asarray(hopper, float)).mean() < 4
    assert align_face(data).n_faces == 1


def test_absurdly_large_photo_is_refused_before_decoding() -> None:
    huge = encode(Image.new("1", (10_000, 6_000)), "PNG")  # 60 MP, a few kB of PNG
    start = time.perf_counter()
    with pytest.raises(PhotoSizeError, match="60 megapixels") as err:
        load_photo(huge)
    assert time.perf_counter() - start < 0.5
    assert_readable(err)
    with pytest.raises(PhotoSizeError, match="limit"):
        load_photo(np.zeros((MAX_PIXELS // 4000 + 1, 4000), np.uint8))


def test_tiny_photo_is_refused() -> None:
    with pytest.raises(PhotoSizeError, match="20 x 20") as err:
        load_photo(encode(Image.new("RGB", (20, 20)), "PNG"))
    assert_readable(err)


def test_hundred_pixel_photos(astronaut: Image.Image) -> None:
    """A 100 px head-and-shoulders thumbnail works; a 100 px copy of a whole portrait,
    where the face is ~19 px wide, is refused as too small rather than edited as mush."""
    thumbnail = astronaut.crop((130, 30, 330, 230)).resize((100, 100), Image.LANCZOS)
    face = align_face(thumbnail)
    assert face.n_faces == 1 and face.size == 79 and face.model_input().size == (64, 64)
    with pytest.raises(FaceTooSmallError, match="pixels wide") as err:
        align_face(astronaut.resize((100, 100), Image.LANCZOS))
    assert_readable(err)


def test_two_faces_uses_the_largest(astronaut: Image.Image, hopper: Image.Image) -> None:
    pair = Image.new("RGB", (1024, 600), "white")
    pair.paste(astronaut, (0, 0))
    pair.paste(hopper, (512, 0))
    face = align_face(pair)
    assert face.n_faces == 2
    assert face.box[0] > 512  # Grace Hopper's face is the larger one
    alone = align_face(hopper).landmarks
    assert np.linalg.norm(face.landmarks - (512, 0) - alone, axis=1)[STABLE].mean() < 1.5


@pytest.mark.parametrize("framing", ["padded", "smaller"])
def test_landmarks_do_not_depend_on_framing(hopper: Image.Image, framing: str) -> None:
    """The detector's box jumps with framing (20 % size steps, 8 px grid); the landmarks,
    and so the crop, must not: ~4 px apart on this ~200 px face before canonical boxes."""
    if framing == "padded":
        photo = Image.new("RGB", (549, 618), "white")
        photo.paste(hopper, (37, 18))
        back = np.array([37.0, 18.0]), 1.0
    else:
        photo = hopper.resize((410, 480), Image.LANCZOS)
        back = np.zeros(2), 512 / 410
    found = detect_face(np.asarray(photo))
    landmarks = (found.landmarks + 0.5 - back[0]) * back[1] - 0.5
    alone = detect_face(np.asarray(hopper)).landmarks
    assert np.linalg.norm(landmarks - alone, axis=1)[STABLE].mean() < 1.5


def test_alignment_is_thread_safe(hopper: Image.Image) -> None:
    expected = align_face(hopper)
    with ThreadPoolExecutor(4) as pool:
        faces = list(pool.map(align_face, [hopper] * 4))
    for face in faces:
        assert np.array_equal(face.crop, expected.crop)


@pytest.mark.needs_data(CELEBA)
def test_fit_template_on_a_few_images_agrees_with_the_shipped_one() -> None:
    from glow_demo.template_fit import fit_template

    payload = fit_template(CELEBA, n_images=16)
    shipped = load_template()
    landmarks = np.asarray(payload["landmarks"])
    assert landmarks.shape == (68, 2) and 12 <= payload["n_images"] <= 16
    assert np.linalg.norm(landmarks - shipped.landmarks, axis=1)[STABLE].mean() * 64 < 1.5
    assert np.abs(np.asarray(payload["box"]) - shipped.box).max() * 64 < 3
    assert 0.3 < payload["consistency"]["residual_after_fit"]["mean"] < 3
