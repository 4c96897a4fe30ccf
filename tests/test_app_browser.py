"""The app in a real browser: Debian's Chromium driven by Playwright (never a downloaded one).

Upload a photo, wait for the aligned face, move the smile slider, see the picture change.
``UPDATE_SCREENSHOT=1`` also writes the page to ``assets/screenshot.png`` (the README's).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import statistics
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = ROOT / "assets" / "faces" / "astronaut.png"
HOPPER = ROOT / "assets" / "faces" / "grace_hopper.jpg"
SCREENSHOT = ROOT / "assets" / "screenshot.png"
TIMEOUT_MS = 90_000  # generous: CI machines are slow, and the first encode is the slowest


def result_src(page) -> str:
    """The src of the edited ("after") picture in the before/after slider."""
    return page.locator("#result img").nth(1).get_attribute("src") or ""


def upload_astronaut(page) -> str:
    page.locator("#photo input[type=file]").set_input_files(str(ASTRONAUT))
    page.locator("#aligned img").wait_for(state="visible")
    page.wait_for_function("document.querySelectorAll('#result img').length >= 2")
    return result_src(page)


def upload_large_photo(page, folder: Path) -> None:
    """A 3000 x 2250 photo (a phone photo's size) with the astronaut's face in it."""
    large = folder / "large.jpg"
    with Image.open(ASTRONAUT) as face:
        canvas = Image.new("RGB", (3000, 2250), (90, 110, 130))
        canvas.paste(face.convert("RGB").resize((1700, 1700), Image.LANCZOS), (900, 300))
    canvas.save(large, quality=95)
    page.locator("#photo input[type=file]").set_input_files(str(large))
    page.locator("#aligned img").wait_for(state="visible")
    page.wait_for_function("document.querySelectorAll('#result img').length >= 2")


# A slider move as a drag makes it (the range input's "input" event), timed in the page:
# until the queue request leaves, the picture's request starts and ends, its src changes,
# and two frames after it has loaded (drawn).
MOVE_JS = """
async ([name, value]) => {
  const after = () => document.querySelectorAll('#result img')[1];
  const old = after().getAttribute('src');
  performance.clearResourceTimings();
  const range = document.querySelector(`#slider-${name} input[type=range]`);
  const t0 = performance.now();
  range.value = value;
  range.dispatchEvent(new Event('input', {bubbles: true}));
  return await new Promise(resolve => {
    const check = () => {
      const img = after();
      if (performance.now() - t0 > 60000) return resolve({timeout: true, src: old});
      if (!img || img.getAttribute('src') === old) return requestAnimationFrame(check);
      const src = performance.now() - t0;
      const drawn = () => requestAnimationFrame(() => requestAnimationFrame(() => {
        const res = performance.getEntriesByType('resource');
        const join = res.find(e => e.name.includes('/queue/join'));
        const file = res.find(e => e.name === img.src);
        resolve({drawn: performance.now() - t0, src, join: join ? join.startTime - t0 : null,
                 file_start: file ? file.startTime - t0 : null,
                 file_end: file ? file.responseEnd - t0 : null,
                 width: img.naturalWidth});
      }));
      if (img.complete && img.naturalWidth) drawn();
      else img.addEventListener('load', drawn, {once: true});
    };
    check();
  });
}
"""
MOVES = ("-1", "0.5", "1", "-0.5", "1.25", "0.25", "-1.25", "0.75", "-0.25", "1.1", "-0.75",
         "1.5")  # the last is the one the screenshot shows
TIMING = re.compile(r"(decode \d+ ms|decoded) · paste \d+ ms · JPEG \d+ ms \(\d+×\d+\)")


def move_slider(page, name: str, values) -> list[dict]:
    """Each value in turn, as a drag, through Gradio's event alone (the page's fast
    preview path is switched off: tests/test_app_live_browser.py times that one); the
    per-stage times of each move (ms from the move) and the server's status line."""
    page.evaluate("window.glowLive.enabled = false")
    moves = []
    for value in values:
        timing = page.evaluate(MOVE_JS, [name, value])
        assert not timing.get("timeout"), timing  # the picture did not change within 60 s
        page.wait_for_timeout(300)  # the status arrives with the picture; let it settle
        timing["server"] = page.locator("#latency").inner_text().strip()
        moves.append(timing)
    return moves


def report(moves: list[dict], what: str) -> None:
    """Print the median of each stage: figures, not assertions (wall time varies)."""
    def median(key: str) -> str:
        values = [m[key] for m in moves if m[key] is not None]
        return f"{statistics.median(values):.0f}" if values else "-"

    each = ", ".join(f"{m['drawn']:.0f}" for m in moves)
    print(f"\n{what}: slider move -> new picture drawn in the browser through Gradio's "
          f"event (fast path off), median of "
          f"{len(moves)}: {median('drawn')} ms (request sent {median('join')}, picture "
          f"requested {median('file_start')}, received {median('file_end')}, src set "
          f"{median('src')}); each: {each} ms; server, last move: {moves[-1]['server']}")


def test_upload_then_smile_slider_changes_the_picture(page, tmp_path: Path) -> None:
    before = upload_astronaut(page)
    assert "bits/dim" in page.locator("#face-status").inner_text()

    # Slider move -> new picture, as a person sees it: queue, decode, paste back,
    # encode, download, draw. Twelve moves; the figures are printed.
    moves = move_slider(page, "smile", MOVES)
    report(moves, "astronaut, 512 x 512")
    assert all(TIMING.match(m["server"]) for m in moves), [m["server"] for m in moves]
    assert all(m["width"] == 512 for m in moves)  # a small photo is shown in full
    assert page.locator("#slider-smile input[type=number]").input_value() == "1.5"
    # the screenshot adds blond hair: the astronaut smiles more broadly than 99.5 % of
    # held-out faces already, so the smile's edit range leaves little to see
    move_slider(page, "blond_hair", ["1"])
    src = result_src(page)

    assert page.request.get(before).body() != page.request.get(src).body()

    shot = tmp_path / "app.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, SCREENSHOT)

    # Download: a full-resolution PNG of the edited photo.
    page.locator("#save").click()
    link = page.locator("#saved a[href]").first
    link.wait_for(state="visible")
    with Image.open(io.BytesIO(page.request.get(link.get_attribute("href")).body())) as png:
        assert png.format == "PNG"
        with Image.open(ASTRONAUT) as original:
            assert png.size == original.size

    # Reset: every slider back to 0, and "after" is the photo itself again.
    page.locator("#reset").click()
    page.wait_for_function("() => { const i = document.querySelectorAll('#result img');"
                           " return i[0].getAttribute('src') === i[1].getAttribute('src'); }")
    assert page.locator("#slider-smile input[type=number]").input_value() == "0"
    assert page.external_requests == []


def test_a_large_photo_previews_while_dragged_and_is_full_when_let_go(page, tmp_path) -> None:
    """A 3000 x 2250 photo: moves show a 640 px picture, letting go of the slider the
    photo's own resolution, and "Save" a full-resolution PNG."""
    upload_large_photo(page, tmp_path)
    moves = move_slider(page, "smile", MOVES[:10])
    report(moves, "3000 x 2250 photo")
    assert all(m["width"] == 640 for m in moves), [m["width"] for m in moves]

    # A real drag, as people get it (the fast preview path on again): pointer down on the
    # slider, move, up (Gradio's "release", after the page has told Gradio's slider its
    # final value). With the fast path off, one full-suite run timed out here waiting
    # for the full resolution (not reproduced in 5 runs of this file; the likely cause, a
    # drag's last "change" reaching the server after its release, is what the page's
    # hand-over on pointer up is there to prevent).
    page.evaluate("window.glowLive.enabled = true")
    old = result_src(page)
    box = page.locator("#slider-smile input[type=range]").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.5, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.8, y, steps=5)
    page.mouse.up()
    page.wait_for_function("() => { const i = document.querySelectorAll('#result img');"
                           " return i[1].naturalWidth === 3000 && i[0].naturalWidth === 3000"
                           " && i[1].complete; }")
    assert result_src(page) != old
    assert "(3000×2250)" in page.locator("#latency").inner_text()

    page.locator("#save").click()
    link = page.locator("#saved a[href]").first
    link.wait_for(state="visible")
    with Image.open(io.BytesIO(page.request.get(link.get_attribute("href")).body())) as png:
        assert png.format == "PNG" and png.size == (3000, 2250)


def test_an_unusual_face_is_edited_stably_and_says_so(page) -> None:
    """Grace Hopper's portrait is edited from a smoothed copy (the page says so). Glasses
    at +1.5 still explode from it before the edge of the range held-out faces show (model
    v17, as v16: at 0.65 of the step), so the edit is scaled back to a face (72 % of it, to where
    its decode peaks below BACKOFF_PEAK) and the page says by how much."""
    page.locator("#photo input[type=file]").set_input_files(str(HOPPER))
    page.locator("#aligned img").wait_for(state="visible")
    page.wait_for_function("document.querySelectorAll('#result img').length >= 2")
    assert "smoothed by 0.75 px" in page.locator("#face-status").inner_text()
    before = result_src(page)
    page.locator("#slider-glasses input[type=number]").fill("1.5")
    page.wait_for_function("src => document.querySelectorAll('#result img')[1]"
                           ".getAttribute('src') !== src", arg=before)
    latency = page.locator("#latency")
    latency.filter(has_text="decode").wait_for(timeout=10_000)
    assert re.search(r"decode \d+ ms", latency.inner_text()), latency.inner_text()
    assert re.search(r"scaled back to \d+% of its strength", latency.inner_text()), \
        latency.inner_text()
    assert page.request.get(before).body() != page.request.get(result_src(page)).body()


def test_keeping_gender_fixed_changes_an_age_edit(page) -> None:
    """Ticking "Male" under "Keep fixed" projects the male direction out of the age edit:
    a different picture; unticking it gives the first picture back."""
    src = upload_astronaut(page)

    def wait_new(old: str) -> str:
        page.wait_for_function("src => document.querySelectorAll('#result img')[1]"
                               ".getAttribute('src') !== src", arg=old)
        return result_src(page)

    page.locator("#slider-age_years input[type=number]").fill("1.0")
    aged = wait_new(src)
    male = page.locator("#hold").get_by_label("Male (female at -)")
    male.check()
    held = wait_new(aged)
    assert page.request.get(held).body() != page.request.get(aged).body()
    male.uncheck()
    again = wait_new(held)
    assert page.request.get(again).body() == page.request.get(aged).body()


def test_rapid_key_presses_do_not_queue_a_decode_each(page) -> None:
    upload_astronaut(page)
    joins = []
    page.on("request", lambda r: joins.append(r.url) if "/queue/join" in r.url else None)
    before = result_src(page)
    page.locator("#slider-smile input[type=range]").focus()
    for _ in range(10):
        page.keyboard.press("ArrowRight")
    page.wait_for_function("src => document.querySelectorAll('#result img')[1]"
                           ".getAttribute('src') !== src", arg=before)
    page.wait_for_timeout(1500)  # let any trailing decode start
    assert page.locator("#slider-smile input[type=number]").input_value() == "0.5"
    print(f"\n10 key presses -> {len(joins)} decode requests")
    assert 1 <= len(joins) <= 4, joins  # always_last: one running + one pending at most


def test_a_file_that_is_not_an_image_shows_a_message(page, tmp_path: Path) -> None:
    fake = tmp_path / "holiday.png"
    fake.write_text("these are not the pixels you are looking for\n" * 20)
    page.locator("#photo input[type=file]").set_input_files(str(fake))
    toast = page.get_by_test_id("toast-body").first
    toast.wait_for(state="visible")
    print(f"\ntoast: {toast.inner_text()!r}")
    assert "not an image" in toast.inner_text()
    assert "Traceback" not in page.content()


def test_random_tab_draws_faces(page) -> None:
    page.get_by_role("tab", name="Random").click()
    page.get_by_role("button", name="Draw faces").click()
    page.wait_for_function("document.querySelectorAll('#samples img').length >= 8")
