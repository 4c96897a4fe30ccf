"""/edit's faces, and a slider of your own through /learn_direction, via gradio_client."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # see test_app_api.py

from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

FACES = Path(__file__).resolve().parents[1] / "assets" / "faces"
GROUP = FACES / "group" / "four_portraits.jpg"
ASTRONAUT = FACES / "astronaut.png"


@pytest.fixture(scope="module")
def client(app, tmp_path_factory: pytest.TempPathFactory) -> Client:
    return Client(app.url, verbose=False,
                  download_files=str(tmp_path_factory.mktemp("client_downloads")))


def rgb(path: str | Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).astype(np.int16)


def test_edit_takes_which_faces(client: Client) -> None:
    """Aging, not a smile: the astronauts on the left smile more broadly than 99.5 % of
    held-out faces already, so a smile barely moves them (the edit ranges)."""
    original = rgb(GROUP)
    left = slice(0, 500)  # the two left faces; the largest is on the right
    largest = rgb(client.predict(handle_file(GROUP), {"age_years": 1.0}, api_name="/edit"))
    every = rgb(client.predict(handle_file(GROUP), {"age_years": 1.0}, "all", None,
                               api_name="/edit"))
    first = rgb(client.predict(handle_file(GROUP), {"age_years": 1.0}, [1], None,
                               api_name="/edit"))  # face 1 is the leftmost
    assert largest.shape == every.shape == original.shape
    assert np.abs(largest[:, left] - original[:, left]).mean() < 0.5
    assert np.abs(every[:, left] - original[:, left]).mean() > 1.0
    right = slice(800, 1200)
    assert np.abs(first[:, right] - original[:, right]).mean() < 0.5
    assert np.abs(first[:, left] - original[:, left]).mean() > 0.5
    with pytest.raises(AppError, match="no face number 7"):
        client.predict(handle_file(GROUP), {"smile": 1.0}, [7], None, api_name="/edit")
    with pytest.raises(AppError, match="no face number 0: .*numbered 1 to 4"):
        client.predict(handle_file(GROUP), {"smile": 1.0}, "0", None, api_name="/edit")
    with pytest.raises(AppError, match="faces must be"):
        client.predict(handle_file(GROUP), {"smile": 1.0}, "everyone", None, api_name="/edit")


def test_learn_a_slider_then_edit_with_it(client: Client, tmp_path: Path) -> None:
    files = {}
    for name in ("grace_hopper.jpg", "astronaut.png"):
        with Image.open(FACES / name) as im:
            image = im.convert("RGB")
        paths = []
        for k, variant in enumerate((image, ImageOps.mirror(image),
                                     image.resize((image.width // 2, image.height // 2)))):
            paths.append(tmp_path / f"{name.split('.')[0]}{k}.png")
            variant.save(paths[-1])
        files[name] = [handle_file(p) for p in paths]
    path, info = client.predict("navy", files["grace_hopper.jpg"], files["astronaut.png"],
                                api_name="/learn_direction")
    assert Path(path).suffix == ".safetensors"
    assert info["name"] == "navy" and info["n_with"] == 3 and 0 <= info["reliability"] <= 1
    assert "Learned from 3 with and 3 without" in info["advice"]
    edited = rgb(client.predict(handle_file(ASTRONAUT), {"navy": 0.5}, "largest",
                                handle_file(path), api_name="/edit"))
    assert np.abs(edited - rgb(ASTRONAUT)).mean() > 0.5
    with pytest.raises(AppError, match="Unknown attribute.*navy"):
        client.predict(handle_file(ASTRONAUT), {"navy": 0.5}, api_name="/edit")
    with pytest.raises(AppError, match="Give 3 to 64 faces with"):
        client.predict("cap", files["grace_hopper.jpg"][:2], files["astronaut.png"],
                       api_name="/learn_direction")


def test_learn_a_slider_from_example_faces(client: Client) -> None:
    examples = client.predict(api_name="/example_faces")
    captions = [e["caption"] for e in examples]
    assert len(examples) >= 26 and captions[0] == "1: model sample, seed 0, temperature 0.6"
    assert [c.split(":")[0] for c in captions] == [str(k) for k in range(1, len(examples) + 1)]
    assert any("grace_hopper.jpg" in c for c in captions)
    with Image.open(examples[0]["image"]) as first:
        assert first.size == (64, 64)
    path, info = client.predict("picked", None, None, [1, 2, 3], [4, 5, 6],
                                api_name="/learn_direction")
    assert (info["n_with"], info["n_without"]) == (3, 3) and 0 <= info["reliability"] <= 1
    edited = rgb(client.predict(handle_file(ASTRONAUT), {"picked": 1.0}, "largest",
                                handle_file(path), api_name="/edit"))
    assert np.abs(edited - rgb(ASTRONAUT)).mean() > 0.5
    # uploads and example faces count together
    _, mixed = client.predict("mixed", [handle_file(ASTRONAUT)], None, [1, 2], "4, 5, 6",
                              api_name="/learn_direction")
    assert (mixed["n_with"], mixed["n_without"]) == (3, 3)
    with pytest.raises(AppError, match="No example face 0: they are numbered 1 to"):
        client.predict("zero", None, None, [0, 1, 2], [4, 5, 6], api_name="/learn_direction")
    with pytest.raises(AppError, match="Example face 2 is ticked both"):
        client.predict("both", None, None, [1, 2, 3], [2, 5, 6], api_name="/learn_direction")
