"""Group photos and sliders of your own in a real browser (Debian's Chromium, Playwright),
as in test_app_browser.py.

``UPDATE_SCREENSHOT=1`` also writes the group page to ``assets/screenshot_group.png``.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]
FACES = ROOT / "assets" / "faces"
GROUP = FACES / "group" / "four_portraits.jpg"
ASTRONAUT = FACES / "astronaut.png"
TIMEOUT_MS = 180_000  # a group photo is four encodes; CI machines are slow


def result_src(page) -> str:
    return page.locator("#result img").nth(1).get_attribute("src") or ""


def wait_new(page, old: str) -> str:
    page.wait_for_function("src => { const i = document.querySelectorAll('#result img');"
                           " return i.length >= 2 && i[1].getAttribute('src') !== src; }",
                           arg=old)
    return result_src(page)


def upload(page, path: Path) -> str:
    page.locator("#photo input[type=file]").set_input_files(str(path))
    page.locator("#aligned img").wait_for(state="visible")
    page.wait_for_function("document.querySelectorAll('#result img').length >= 2")
    return result_src(page)


def test_every_face_of_a_group_photo_smiles_then_one_gets_its_own(page, tmp_path) -> None:
    src = upload(page, GROUP)
    page.wait_for_function("document.querySelectorAll('#faces img').length >= 4")
    assert "4 faces found" in page.locator("#face-status").inner_text()
    smile = page.locator("#slider-smile input[type=number]")
    smile.fill("1.5")
    together = wait_new(page, src)

    page.locator("#target").get_by_label("Face 2").check()
    page.wait_for_timeout(500)
    assert smile.input_value() == "1.5"  # face 2 starts from the shared values
    smile.fill("-1")
    own = wait_new(page, together)
    assert page.request.get(own).body() != page.request.get(together).body()

    shot = tmp_path / "group.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, ROOT / "assets" / "screenshot_group.png")

    page.locator("#target").get_by_label("All faces").check()
    page.wait_for_function("() => document.querySelector('#slider-smile input[type=number]')"
                           ".value === '1.5'")
    assert page.external_requests == []


def test_learn_a_slider_of_your_own(page, tmp_path: Path) -> None:
    sides = {}
    for name in ("grace_hopper.jpg", "astronaut.png"):
        with Image.open(FACES / name) as im:
            image = im.convert("RGB")
        sides[name] = []
        for k, variant in enumerate((image, ImageOps.mirror(image),
                                     image.resize((image.width // 2, image.height // 2)))):
            sides[name].append(str(tmp_path / f"{name.split('.')[0]}{k}.png"))
            variant.save(sides[name][-1])
    src = upload(page, ASTRONAUT)
    page.get_by_text("Your own slider (from a few examples)").click()
    page.locator("#custom-with input[type=file]").set_input_files(sides["grace_hopper.jpg"])
    page.locator("#custom-without input[type=file]").set_input_files(sides["astronaut.png"])
    page.wait_for_timeout(1000)  # uploads finish
    page.locator("#custom-name textarea, #custom-name input").first.fill("navy")
    page.locator("#custom-learn").click()
    note = page.locator("#custom-note")
    note.filter(has_text="Learned from 3 with and 3 without").wait_for()
    assert re.search(r"\d+%", note.inner_text())
    page.locator("#custom-strip img").wait_for(state="visible")
    slider = page.locator("#custom-0")
    slider.wait_for(state="visible")
    assert "Navy" in slider.inner_text()
    slider.locator("input[type=number]").fill("0.5")
    wait_new(page, src)
    assert page.external_requests == []
