"""A slider of your own in a real browser (Debian's Chromium, Playwright): picked from the
example faces, learned, saved as a file (a real download), and loaded again into a fresh
page, where it appears and edits the photo.

``UPDATE_SCREENSHOT=1`` also writes the panel to ``assets/screenshot_custom.png``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from test_app_live_browser import fast_move

from glow_demo.custom_directions import load_directions

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = ROOT / "assets" / "faces" / "astronaut.png"
TIMEOUT_MS = 180_000  # CI machines are slow


def result_src(page) -> str:
    return page.locator("#result img").nth(1).get_attribute("src") or ""


def upload_photo(page) -> str:
    """Give the astronaut and wait for her first (unedited) result."""
    page.locator("#photo input[type=file]").set_input_files(str(ASTRONAUT))
    page.wait_for_function("document.querySelectorAll('#result img').length >= 2")
    return result_src(page)


def open_panel(page) -> None:
    page.get_by_text("Your own slider (from a few examples)").click()
    page.wait_for_function("document.querySelectorAll('#custom-examples img').length >= 26")


def checked(page, side: str) -> list[str]:
    boxes = page.locator(f"#custom-{side}-examples input[type=checkbox]")
    labels = page.locator(f"#custom-{side}-examples label")
    return [labels.nth(k).inner_text().strip() for k in range(boxes.count())
            if boxes.nth(k).is_checked()]


def test_pick_examples_learn_save_reload_and_load(page, tmp_path: Path) -> None:
    upload_photo(page)
    open_panel(page)
    thumbs = page.locator("#custom-examples button.thumbnail-item")
    for k in (0, 1, 2, 3):  # faces 1-4 with (a click marks "with" by default)
        thumbs.nth(k).click()
        page.wait_for_function(f"document.querySelectorAll('#custom-with-examples "
                               f"input:checked').length === {k + 1}")
    thumbs.nth(3).click()  # a second click takes face 4 off again
    page.wait_for_function("document.querySelectorAll('#custom-with-examples "
                           "input:checked').length === 3")
    page.locator("#custom-mark").get_by_label("without").check()
    # faces 5-8 without, clicked as fast as the page takes clicks (Gradio's default
    # dropped a click made while the last one's round trip was pending, and under load
    # quick clicks lost some of theirs); then 8 unticked by hand, and face 1 clicked:
    # it moves from "with" to "without"
    for k in (4, 5, 6, 7):
        thumbs.nth(k).click()
    page.wait_for_function("document.querySelectorAll('#custom-without-examples "
                           "input:checked').length === 4")
    page.locator("#custom-without-examples label").nth(7).click()
    page.wait_for_function("document.querySelectorAll('#custom-without-examples "
                           "input:checked').length === 3")
    thumbs.nth(0).click()
    page.wait_for_function("document.querySelectorAll('#custom-with-examples "
                           "input:checked').length === 2")
    assert checked(page, "with") == ["2", "3"]
    assert checked(page, "without") == ["1", "5", "6", "7"]
    thumbs.nth(0).click()  # and back: the mark is still "without", so off that side
    page.wait_for_function("document.querySelectorAll('#custom-without-examples "
                           "input:checked').length === 3")
    page.locator("#custom-mark").get_by_label("with", exact=True).check()
    thumbs.nth(0).click()
    page.wait_for_function("document.querySelectorAll('#custom-with-examples "
                           "input:checked').length === 3")
    assert checked(page, "with") == ["1", "2", "3"]
    assert checked(page, "without") == ["5", "6", "7"]

    page.locator("#custom-name textarea, #custom-name input").first.fill("mine")
    page.locator("#custom-learn").click()
    page.locator("#custom-note").filter(has_text="Learned from 3 with and 3 without").wait_for()
    page.locator("#custom-strip img").wait_for(state="visible")
    slider = page.locator("#custom-0")
    slider.wait_for(state="visible")
    assert "Mine" in slider.inner_text()
    # the page's fast preview path draws it too (and Gradio's event ends on its picture)
    move = fast_move(page, "custom-0", "0.5", slider="custom-0")
    assert move["strengths"] == {"custom-0": 0.5}
    shot = tmp_path / "custom.png"
    page.locator("#custom-panel").screenshot(path=str(shot))
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, ROOT / "assets" / "screenshot_custom.png")

    # save: a real download of the file the page offers
    page.locator("#custom-save").click()
    link = page.locator("#custom-saved a").first
    link.wait_for(state="visible")
    with page.expect_download() as download:
        link.click()
    saved = tmp_path / "my-sliders.safetensors"
    download.value.save_as(saved)
    (direction,) = load_directions(saved)
    assert direction.name == "mine" and (direction.n_with, direction.n_without) == (3, 3)

    # a fresh page knows nothing of it ...
    page.reload()
    src = upload_photo(page)
    open_panel(page)
    assert not page.locator("#custom-0").is_visible()
    # ... until the file is loaded: the slider appears and edits the photo
    with page.expect_file_chooser() as chooser:  # as a person does: click, pick the file
        page.locator("#custom-load").click()
    chooser.value.set_files(str(saved))
    page.locator("#custom-note").filter(has_text="Learned from 3 with and 3 without").wait_for()
    slider = page.locator("#custom-0")
    slider.wait_for(state="visible")
    assert "Mine" in slider.inner_text()
    fast_move(page, "custom-0", "0.8", slider="custom-0")  # loaded: the fast path knows it
    src = result_src(page)
    slider.locator("input[type=number]").fill("1")
    page.wait_for_function("src => { const i = document.querySelectorAll('#result img');"
                           " return i.length >= 2 && i[1].getAttribute('src') !== src; }",
                           arg=src)
    edited = page.request.get(result_src(page)).body()
    assert edited != page.request.get(src).body()
    assert page.external_requests == []


def test_a_face_on_both_sides_is_refused_in_words(page) -> None:
    open_panel(page)
    page.locator("#custom-with-examples").get_by_label("1", exact=True).check()
    page.locator("#custom-without-examples").get_by_label("1", exact=True).check()
    page.locator("#custom-name textarea, #custom-name input").first.fill("both")
    page.locator("#custom-learn").click()
    page.locator("#custom-note").filter(has_text="ticked both with and without").wait_for()
