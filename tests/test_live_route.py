"""The fast preview route (``POST /live/preview``, ``glow_demo.live_route``) over raw HTTP
against the real app, and its token registry.

A token comes the way the page gets it: a photo uploaded and prepared by the app's own
``on_photo`` event through Gradio's queue (its hidden ``#live-token`` output). Then the
route must draw that session's edit (a real JPEG that changes where the smile is, the
very picture Gradio's own event shows for the same sliders), and refuse everything else
with a 4xx and a short message: tokens it did not issue or has forgotten, paths, bodies
too large, numbers that are not finite, sliders it does not know, wrong types, methods.
"""

from __future__ import annotations

import io
import json
import secrets
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from test_app_security import queue_call, upload

from glow_demo.align import align_face
from glow_demo.live_route import MAX_BODY, LiveSessions

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = ROOT / "assets" / "faces" / "astronaut.png"
ROUTE = "live/preview"


class Page:
    """What the page knows after a photo: its Gradio session, the token, and the config
    entries of the events it fires."""

    def __init__(self, url: str, config: dict, session: str, token: str):
        self.url, self.config, self.session, self.token = url, config, session, token


def config_of(url: str) -> dict:
    return httpx.get(f"{url}config", timeout=60).json()


def dependency(config: dict, api_name: str) -> dict:
    return next(d for d in config["dependencies"] if d.get("api_name") == api_name)


def component(config: dict, elem_id: str) -> dict:
    return next(c for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id)


def prepare(url: str, config: dict, session: str) -> str:
    """Upload the astronaut and prepare it in browser session ``session``; the token."""
    photo = dependency(config, "on_photo")
    message = queue_call(url, photo["id"], [upload(url, ASTRONAUT), None], session)
    assert message["success"], message
    slot = photo["outputs"].index(component(config, "live-token")["id"])
    return message["output"]["data"][slot]


@pytest.fixture(scope="module")
def page(app) -> Page:
    config = config_of(app.url)
    session = uuid.uuid4().hex
    return Page(app.url, config, session, prepare(app.url, config, session))


def post(url: str, body, **kwargs) -> httpx.Response:
    """POST a body (an object as JSON, or raw bytes/str) to the route."""
    if not isinstance(body, bytes | str):
        body = json.dumps(body)
    headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
    return httpx.post(f"{url}{ROUTE}", content=body, headers=headers, timeout=120, **kwargs)


def picture(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(response.content)) as image:
        assert image.format == "JPEG"
        return np.asarray(image.convert("RGB"), np.float32)


def slider_range(config: dict, name: str) -> tuple[float, float]:
    props = component(config, f"slider-{name}")["props"]
    return props["minimum"], props["maximum"]


def test_a_token_draws_its_photo_and_the_smile_changes_the_mouth(page: Page) -> None:
    assert len(page.token) == 32 and page.token.replace("-", "").replace("_", "").isalnum()
    plain = post(page.url, {"token": page.token, "face": None, "strengths": {}})
    smiling = post(page.url, {"token": page.token, "strengths": {"smile": 1.0}})
    before, after = picture(plain), picture(smiling)
    with Image.open(ASTRONAUT) as original:
        photo = np.asarray(original.convert("RGB"), np.float32)
    assert before.shape == after.shape == photo.shape  # 512 px: shown in full
    assert np.abs(before - photo).mean() < 3.5  # no edit: the photo (measured: 2.4, JPEG)

    face = align_face(ASTRONAUT)  # where the mouth is, found independently of the app
    mouth = face.landmarks[48:68]
    x0, y0 = (mouth.min(0) - 10).astype(int)
    x1, y1 = (mouth.max(0) + 10).astype(int)
    change = np.abs(after - before)
    print(f"\nsmile 1.0: mouth changed by {change[y0:y1, x0:x1].mean():.1f} levels, "
          f"the photo by {change.mean():.2f}; server: {smiling.headers['server-timing']}")
    assert change[y0:y1, x0:x1].mean() > 1.0
    assert change[y0:y1, x0:x1].mean() > 5 * change.mean()
    assert smiling.headers["x-frame"].endswith(".jpg") and "/" not in smiling.headers["x-frame"]
    assert smiling.headers["cache-control"] == "no-store"

    again = post(page.url, {"token": page.token, "strengths": {"smile": 1.0}})
    assert again.content == smiling.content  # the same edit, the same picture


def test_the_picture_is_the_one_gradio_shows_for_the_same_sliders(page: Page) -> None:
    """The route and Gradio's slider event render through one LiveEdit: same file name
    (frames are named by content) and the same bytes."""
    fast = post(page.url, {"token": page.token, "strengths": {"smile": -0.75}})
    edit = dependency(page.config, "on_edit")
    components = {c["id"]: c for c in page.config["components"]}
    data = []
    for i in edit["inputs"]:
        props = components[i].get("props", {})
        data.append(-0.75 if props.get("elem_id") == "slider-smile" else props.get("value"))
    message = queue_call(page.url, edit["id"], data, page.session)
    assert message["success"], message
    after = message["output"]["data"][0][1]  # (before, after) of the ImageSlider
    assert Path(after["path"]).name == fast.headers["x-frame"]
    assert httpx.get(after["url"], timeout=60).content == fast.content


def test_strengths_are_clamped_to_each_sliders_range(page: Page) -> None:
    low, high = slider_range(page.config, "smile")
    top = post(page.url, {"token": page.token, "strengths": {"smile": high}})
    for huge in (99, 1e300):
        clamped = post(page.url, {"token": page.token, "strengths": {"smile": huge}})
        assert clamped.status_code == 200 and clamped.content == top.content
    bottom = post(page.url, {"token": page.token, "strengths": {"smile": low}})
    clamped = post(page.url, {"token": page.token, "strengths": {"smile": -1e300}})
    assert clamped.content == bottom.content != top.content


def bad_requests(token: str) -> dict[str, tuple[object, int]]:
    """Name -> (body, expected status): each must be refused."""
    other = secrets.token_urlsafe(24)  # the shape of a token, issued to nobody
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    ok = {"token": token, "strengths": {"smile": 1.0}}
    bodies: dict[str, tuple[object, int]] = {
        "not JSON": (b"smile=1", 400),
        "JSON, not an object": ([token, {"smile": 1.0}], 400),
        "JSON string": (json.dumps(token), 400),
        "deeply nested JSON": ("[" * 4000 + "]" * 4000, 400),
        "no token": ({"strengths": {"smile": 1.0}}, 400),
        "token null": ({**ok, "token": None}, 400),
        "token a number": ({**ok, "token": 12345}, 400),
        "token a list": ({**ok, "token": [token]}, 400),
        "token empty": ({**ok, "token": ""}, 400),
        "token too long": ({**ok, "token": token + "A"}, 400),
        "token with a NUL byte": ({**ok, "token": token[:-1] + "\x00"}, 400),
        "token ../../etc/passwd": ({**ok, "token": "../../etc/passwd"}, 400),
        "token /etc/passwd": ({**ok, "token": "/etc/passwd"}, 400),
        "token file=/etc/passwd": ({**ok, "token": "file=/etc/passwd"}, 400),
        "token a URL": ({**ok, "token": "http://127.0.0.1/gradio_api/file=/etc/passwd"}, 400),
        "token of nobody": ({**ok, "token": other}, 404),
        "token one letter off": ({**ok, "token": flipped}, 404),
        "a path field": ({**ok, "path": "/etc/passwd"}, 400),
        "a file field": ({**ok, "file": "../../etc/passwd"}, 400),
        "face 0": ({**ok, "face": 0}, 400),
        "face 2 of 1": ({**ok, "face": 2}, 400),
        "face -1": ({**ok, "face": -1}, 400),
        "face 1.5": ({**ok, "face": 1.5}, 400),
        "face as text": ({**ok, "face": "1"}, 400),
        "face true": ({**ok, "face": True}, 400),
        "face a path": ({**ok, "face": "../../etc/passwd"}, 400),
        "strengths a list": ({**ok, "strengths": [["smile", 1.0]]}, 400),
        "strengths text": ({**ok, "strengths": "smile=1"}, 400),
        "strength as text": ({**ok, "strengths": {"smile": "1.0"}}, 400),
        "strength true": ({**ok, "strengths": {"smile": True}}, 400),
        "strength null": ({**ok, "strengths": {"smile": None}}, 400),
        "strength an object": ({**ok, "strengths": {"smile": {"value": 1}}}, 400),
        "strength too large an integer": ({**ok, "strengths": {"smile": 10 ** 400}}, 400),
        "unknown slider": ({**ok, "strengths": {"tail": 1.0}}, 400),
        "an own slider this session lacks": ({**ok, "strengths": {"custom-0": 1.0}}, 400),
        "slider name a path": ({**ok, "strengths": {"../../etc/passwd": 1.0}}, 400),
        "slider name __proto__": ({**ok, "strengths": {"__proto__": 1.0}}, 400),
    }
    raw = json.dumps(ok)
    for constant in ("NaN", "Infinity", "-Infinity", "1e999", "-1e999"):
        bodies[f"strength {constant}"] = (raw.replace("1.0", constant), 400)
    bodies["body over the limit"] = (json.dumps({**ok, "pad": "x" * MAX_BODY}), 413)
    return bodies


def test_bad_requests_get_a_short_4xx_and_nothing_else(page: Page) -> None:
    report, wrong = [], []
    for name, (body, status) in bad_requests(page.token).items():
        response = post(page.url, body)
        text = response.text
        report.append(f"{name}: {response.status_code} {text[:120]}")
        if response.status_code != status or "image" in response.headers["content-type"] \
                or "Traceback" in text or not json.loads(text).get("error") or len(text) > 300:
            wrong.append(f"{name}: {response.status_code} {text[:300]}")
    print("\n" + "\n".join(report))
    assert not wrong, "\n".join(wrong)


def test_wrong_methods_types_and_sizes_are_refused(page: Page) -> None:
    good = json.dumps({"token": page.token, "strengths": {"smile": 1.0}})
    url = f"{page.url}{ROUTE}"
    for method in ("GET", "PUT", "DELETE"):
        response = httpx.request(method, url, params={"token": page.token}, timeout=60)
        assert response.status_code == 405, (method, response.status_code, response.text)
    for content_type in (None, "text/plain", "application/x-www-form-urlencoded",
                         "multipart/form-data; boundary=x"):
        headers = {"Content-Type": content_type} if content_type else {}
        response = httpx.post(url, content=good, headers=headers, timeout=60)
        assert response.status_code == 415, (content_type, response.text)
        assert "application/json" in response.json()["error"]

    def chunks():  # no Content-Length: the limit holds while the body streams in
        yield b'{"token": "' + page.token.encode() + b'", "pad": "'
        for _ in range(MAX_BODY // 1024 + 2):
            yield b"x" * 1024
        yield b'"}'

    streamed = httpx.post(url, content=chunks(), timeout=60,
                          headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413, streamed.text


def test_a_new_photo_forgets_the_old_token_and_the_server_keeps_serving(app, page) -> None:
    session = uuid.uuid4().hex
    first = prepare(app.url, page.config, session)
    assert post(app.url, {"token": first, "strengths": {"smile": 0.5}}).status_code == 200
    second = prepare(app.url, page.config, session)  # the same browser session
    assert second != first
    gone = post(app.url, {"token": first, "strengths": {"smile": 0.5}})
    assert gone.status_code == 404 and "expired" in gone.json()["error"]
    assert post(app.url, {"token": second, "strengths": {"smile": 0.5}}).status_code == 200
    # the other session's token is untouched, and nothing above broke the server
    picture(post(app.url, {"token": page.token, "strengths": {"smile": 0.5}}))


# ----- the registry itself ---------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_tokens_expire_are_capped_and_are_forgotten_with_their_session() -> None:
    from glow_demo.edit_session import EditSession

    clock = Clock()
    sessions = LiveSessions(ttl_s=60, capacity=3, clock=clock)

    def session() -> EditSession:  # the registry holds sessions, never looks inside
        return EditSession(group=None, live=None, names=("smile",), max_custom=0)

    a, b = session(), session()
    token_a, token_b = sessions.add(a), sessions.add(b)
    assert a.token == token_a != token_b and len(token_a) == 32
    assert sessions.get(token_a) is a
    clock.now += 59
    assert sessions.get(token_a) is a
    clock.now += 1  # 60 s after it was issued
    assert sessions.get(token_a) is None and sessions.get(token_b) is None and len(sessions) == 0

    made = [session() for _ in range(5)]
    tokens = [sessions.add(s) for s in made]
    assert len(sessions) == 3  # the oldest two were dropped
    assert [sessions.get(t) for t in tokens] == [None, None, *made[2:]]
    sessions.forget_session(made[3])  # gr.State's delete callback
    sessions.forget_session(None)  # the callback for a session without a photo
    assert sessions.get(tokens[3]) is None and sessions.get(tokens[4]) is made[4]
    assert len({sessions.add(session()) for _ in range(1000)}) == 1000
