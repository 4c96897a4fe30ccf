"""The fast preview path in a real browser (Debian's Chromium driven by Playwright).

While a slider moves, the page posts its values to ``/live/preview`` and draws the JPEG
it answers (``glow_demo/live_preview.js``); Gradio's own event for the move follows and
must end on the same picture. Each fast move here is followed by a move through Gradio's
path alone (the fast path switched off in the page), on other values, so that the two
medians printed come from one run on one machine. Figures are printed, not asserted.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from urllib.parse import unquote

from test_app_browser import MOVE_JS, result_src, upload_astronaut, upload_large_photo

TIMEOUT_MS = 90_000
# Values for the fast moves, and for the Gradio moves after each: all distinct, so that
# every move decodes anew (none finds its edit among the last few kept, LiveEdit.RECENT),
# and within +-1, short of where an edit stops softly (past it, 1.2 and 1.25 can be the
# same edit of a face, and the same picture).
FAST_MOVES = ("-1", "0.5", "0.95", "-0.5", "0.8", "0.25", "-0.85", "0.65", "-0.25", "0.9",
              "-0.75", "0.4")
GRADIO_MOVES = ("-0.9", "0.6", "0.85", "-0.4", "0.7", "0.3", "-0.95", "0.55", "-0.3", "0.75",
                "-0.65", "0.45")

# A move as a drag makes it, timed from the range input's "input" event to the fast
# picture drawn (two frames after it is in the "after" <img>, as MOVE_JS times Gradio's).
FAST_MOVE_JS = """
async ([slider, value]) => {
  const range = document.querySelector(`#${slider} input[type=range]`);
  const drawn = new Promise(resolve => document.addEventListener(
      'glow-live-drawn', e => resolve(e.detail), {once: true}));
  const t0 = performance.now();
  range.value = value;
  range.dispatchEvent(new Event('input', {bubbles: true}));
  const detail = await Promise.race([drawn, new Promise(r => setTimeout(r, 30000, null))]);
  if (!detail) return {timeout: true, live: {...window.glowLive}};
  const img = document.querySelectorAll('#result img')[1];
  return {...detail, drawn: performance.now() - t0, src: img.getAttribute('src')};
}
"""
# Gradio's picture for the same sliders is in the page: its file has the fast frame's
# name (frames are named by content).
CAUGHT_UP_JS = """
name => { const src = document.querySelectorAll('#result img')[1].getAttribute('src');
          return !src.startsWith('blob:') && decodeURIComponent(src).endsWith('/' + name); }
"""
SAME_BYTES_JS = """
async ([a, b]) => {
  const bytes = async u => new Uint8Array(await (await fetch(u)).arrayBuffer());
  const [x, y] = [await bytes(a), await bytes(b)];
  return x.length > 1000 && x.length === y.length && x.every((v, i) => v === y[i]);
}
"""


def fast_move(page, name: str, value: str, slider: str | None = None) -> dict:
    """One move of slider ``name`` (its element id: ``slider``, default slider-<name>)
    through the fast path; then wait for Gradio's event to show the same picture, and
    check that it is the same, byte for byte."""
    move = page.evaluate(FAST_MOVE_JS, [slider or f"slider-{name}", value])
    assert not move.get("timeout"), move  # no picture drawn within 30 s
    # the fast picture, or already Gradio's file of the same picture
    assert move["src"].startswith("blob:") or unquote(move["src"]).endswith("/" + move["name"])
    page.wait_for_function(CAUGHT_UP_JS, arg=move["name"])
    assert page.evaluate(SAME_BYTES_JS, [move["url"], result_src(page)])
    return move


def gradio_move(page, name: str, value: str) -> dict:
    """One move through Gradio's path alone (the page's fast path off meanwhile)."""
    page.evaluate("window.glowLive.enabled = false")
    try:
        move = page.evaluate(MOVE_JS, [name, value])
        assert not move.get("timeout"), (move, live_state(page))
        page.wait_for_timeout(300)  # as test_app_browser: let the event settle
    finally:
        page.evaluate("window.glowLive.enabled = true")
    assert not result_src(page).startswith("blob:")
    return move


def compare(page, name: str, what: str, n: int) -> list[dict]:
    """``n`` fast moves, each followed by a Gradio one; print both medians."""
    fast, slow = [], []
    for value, other in zip(FAST_MOVES[:n], GRADIO_MOVES[:n], strict=True):
        fast.append(fast_move(page, name, value))
        slow.append(gradio_move(page, name, other))
    f = statistics.median(m["drawn"] for m in fast)
    g = statistics.median(m["drawn"] for m in slow)

    def stage(key: str) -> str:
        return f"{statistics.median(m['stages'][key] for m in fast):.0f}"

    def each(moves: list[dict]) -> str:  # "*": Gradio's event showed the picture first
        return ", ".join(f"{m['drawn']:.0f}{'' if m.get('first', True) else '*'}"
                         for m in moves)

    print(f"\n{what}: slider move -> picture drawn, median of {n}: fast path {f:.0f} ms "
          f"(request sent {stage('sent')}, answered {stage('answered')}, received "
          f"{stage('received')}, decoded {stage('decoded')}; server, last: "
          f"{fast[-1]['server']}; drawn first {sum(m['first'] for m in fast)} times), "
          f"Gradio's path {g:.0f} ms, ratio {f / g:.2f}; fast each: "
          f"{each(fast)}; Gradio each: {each(slow)} ms")
    return fast


def drag(page, name: str, start: float, end: float) -> None:
    """A real drag: pointer down on the slider, moved in steps, let go."""
    box = page.locator(f"#slider-{name} input[type=range]").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * start, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * end, y, steps=8)
    page.mouse.up()


def live_state(page) -> dict:
    return page.evaluate("({...window.glowLive, last: window.glowLive.last})")


def test_slider_moves_draw_the_fast_picture_first_and_end_on_the_servers(page) -> None:
    before = upload_astronaut(page)
    moves = compare(page, "smile", "astronaut, 512 x 512", 12)
    assert all(m["width"] == 512 for m in moves)
    names = [m["name"] for m in moves]
    assert len(set(names)) == len(names)  # every move drew a new picture
    assert page.evaluate(SAME_BYTES_JS, [before, result_src(page)]) is False

    # A real drag, then let go: the fast path drew while it moved, and the last picture
    # it drew is the one the server shows for the final value.
    drawn = live_state(page)["drawn"]
    drag(page, "smile", 0.3, 0.9)
    page.wait_for_function(f"() => {{ const live = window.glowLive; return !live.busy && "
                           f"live.drawn > {drawn} && ({CAUGHT_UP_JS})(live.last.name); }}")
    state = live_state(page)
    assert state["failed"] == 0, state
    value = page.locator("#slider-smile input[type=number]").input_value()
    # the number box keeps up with a move at once, not when Gradio's held-back event
    # comes (before, it showed the previous value until the picture was drawn)
    shown = page.evaluate("""() => {
      const range = document.querySelector('#slider-smile input[type=range]');
      range.value = '0.35';
      range.dispatchEvent(new Event('input', {bubbles: true}));
      return document.querySelector('#slider-smile input[type=number]').value; }""")
    assert shown == "0.35", shown
    page.wait_for_function("() => !window.glowLive.busy")
    assert state["last"]["strengths"] == {"smile": float(value)}, (state["last"], value)
    print(f"drag to {value}: {state['sent']} fast requests in all, {state['drawn']} drawn, "
          f"{state['dropped']} dropped, {state['held']} older Gradio pictures held back")
    assert page.external_requests == []


def test_a_large_photo_previews_fast_and_shows_its_full_resolution_when_let_go(
        page, tmp_path: Path) -> None:
    """A 3000 x 2250 photo: the fast path draws the 640 px preview; letting go of the
    slider still brings the photo's own resolution (Gradio's release event)."""
    upload_large_photo(page, tmp_path)
    moves = compare(page, "smile", "3000 x 2250 photo", 10)
    assert all(m["width"] == 640 for m in moves), [m["width"] for m in moves]

    drag(page, "smile", 0.5, 0.8)
    page.wait_for_function("() => { const i = document.querySelectorAll('#result img');"
                           " return i[1].naturalWidth === 3000 && i[1].complete; }")
    assert not result_src(page).startswith("blob:")
    assert "(3000×2250)" in page.locator("#latency").inner_text()
    assert live_state(page)["failed"] == 0
