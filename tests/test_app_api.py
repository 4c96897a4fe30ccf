"""The app's named API endpoints through ``gradio_client``, against the real server."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# gradio_client sends a telemetry ping unless this is "False" (its own analytics_enabled=False
# argument is or-ed with this variable); the tests run offline.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from glow_demo.align import align_face  # noqa: E402

FACES = Path(__file__).resolve().parents[1] / "assets" / "faces"
ASTRONAUT = FACES / "astronaut.png"
HOPPER = FACES / "grace_hopper.jpg"
MAIN = ["smile", "age_years", "blond_hair", "black_hair", "brown_hair", "gray_hair", "bald",
        "bangs", "glasses", "beard", "male", "makeup"]


@pytest.fixture(scope="module")
def client(app, tmp_path_factory: pytest.TempPathFactory) -> Client:
    return Client(app.url, verbose=False,
                  download_files=str(tmp_path_factory.mktemp("client_downloads")))


def rgb(path: str | Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def box_change(before: np.ndarray, after: np.ndarray, box) -> float:
    """Mean absolute change (grey levels) inside box = (left, top, right, bottom)."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    a = before[y0:y1, x0:x1].astype(np.float32)
    b = after[y0:y1, x0:x1].astype(np.float32)
    assert a.size, f"empty box {box}"
    return float(np.abs(a - b).mean())


def test_the_app_decodes_with_the_compiled_decoder_from_its_cache(app) -> None:
    """Started with the package in its cache (as from a user's second start on), the app
    loads it at once rather than building it again."""
    assert "decoder: compiled, loaded from the cache" in app.log.read_text()


def test_attributes_lists_every_slider(client: Client) -> None:
    attributes = client.predict(api_name="/attributes")
    names = [a["name"] for a in attributes]
    assert [a["name"] for a in attributes if a["main"]] == MAIN
    assert len(names) > len(MAIN) and len(set(names)) == len(names)
    assert all(a["low"] < 0 < a["high"] for a in attributes)


def test_edit_smile_changes_the_mouth_not_the_background(client: Client) -> None:
    original = rgb(ASTRONAUT)
    edited = rgb(client.predict(handle_file(ASTRONAUT), {"smile": 1.5}, api_name="/edit"))
    assert edited.shape == original.shape  # the full photo, at full resolution

    face = align_face(ASTRONAUT)  # where the face is, found independently of the app
    mouth = face.landmarks[48:68]
    pad = 0.25 * (mouth[:, 0].max() - mouth[:, 0].min())
    mouth_box = (*(mouth.min(0) - pad), *(mouth.max(0) + pad))
    # a 64 px patch in the photo corner farthest from the face
    left, top, right, bottom = face.box
    h, w = original.shape[:2]
    cx = 0 if (left + right) / 2 > w / 2 else w - 64
    cy = 0 if (top + bottom) / 2 > h / 2 else h - 64
    far_box = (cx, cy, cx + 64, cy + 64)
    assert cx + 64 <= left or cx >= right or cy + 64 <= top or cy >= bottom

    mouth_change = box_change(original, edited, mouth_box)
    far_change = box_change(original, edited, far_box)
    assert mouth_change > 1.0, mouth_change
    assert mouth_change > 20 * far_change, (mouth_change, far_change)


def test_edit_with_all_strengths_zero_returns_the_photo_exactly(client: Client) -> None:
    names = [a["name"] for a in client.predict(api_name="/attributes")]
    result = client.predict(handle_file(ASTRONAUT), dict.fromkeys(names, 0.0), api_name="/edit")
    assert Path(result).suffix == ".png"  # lossless
    assert np.array_equal(rgb(result), rgb(ASTRONAUT))


def test_edit_rejects_unknown_attributes_by_name(client: Client) -> None:
    with pytest.raises(AppError, match="Unknown attribute.*smiling.*known:.*smile"):
        client.predict(handle_file(ASTRONAUT), {"smiling": 1.0}, api_name="/edit")


def test_a_file_that_is_not_an_image_gets_a_clear_error(client: Client, tmp_path: Path) -> None:
    fake = tmp_path / "holiday.png"  # named like a photo, but it is text
    fake.write_text("these are not the pixels you are looking for\n" * 20)
    with pytest.raises(AppError, match="not an image"):
        client.predict(handle_file(fake), {"smile": 1.0}, api_name="/edit")


def test_a_photo_without_a_face_gets_a_clear_error(client: Client, tmp_path: Path) -> None:
    y, x = np.mgrid[0:240, 0:320]
    plain = tmp_path / "wall.png"
    Image.fromarray(np.stack([x % 256, y % 256, (x + y) % 256], -1).astype(np.uint8)).save(plain)
    with pytest.raises(AppError, match="(?i)no face"):
        client.predict(handle_file(plain), {"smile": 1.0}, api_name="/edit")


def test_mix_blends_face_b_into_photo_a(client: Client) -> None:
    original = rgb(ASTRONAUT)
    mixed = rgb(client.predict(handle_file(ASTRONAUT), handle_file(HOPPER), 0.5, api_name="/mix"))
    assert mixed.shape == original.shape
    face = align_face(ASTRONAUT)
    assert box_change(original, mixed, face.box) > 1.0


def test_mix_checks_its_fraction(client: Client) -> None:
    with pytest.raises(AppError, match="t must be between 0 and 1"):
        client.predict(handle_file(ASTRONAUT), handle_file(HOPPER), 1.5, api_name="/mix")


def test_morph_exports_an_animation(client: Client) -> None:
    path = client.predict(handle_file(ASTRONAUT), handle_file(HOPPER), 3, "gif",
                          api_name="/morph")
    with Image.open(path) as gif:
        assert gif.format == "GIF" and gif.n_frames >= 3


def test_sample_returns_finite_varied_faces_reproducibly(client: Client) -> None:
    first = client.predict(4, 0.7, 0, api_name="/sample")
    again = client.predict(4, 0.7, 0, api_name="/sample")
    assert len(first) == 4
    faces = [rgb(item["image"]) for item in first]
    for face in faces:
        assert face.shape == (64, 64, 3)
        assert np.isfinite(face).all() and face.std() > 5  # a picture, not a flat colour
    assert not np.array_equal(faces[0], faces[1])
    assert all(np.array_equal(a, rgb(b["image"])) for a, b in zip(faces, again, strict=True))


def test_app_writes_nothing_outside_gradio_temp_folder(app, client: Client) -> None:
    client.predict(handle_file(ASTRONAUT), {"smile": 0.5}, api_name="/edit")
    assert list(app.cwd.iterdir()) == []
    assert app.temp_dir.is_dir()
    # Gradio writes a .pyi stub beside any module that subclasses a component: app.py must not
    assert not (FACES.parents[1] / "app.pyi").exists()
