"""Hostile photo payloads over raw HTTP: no request makes the server read a file it was not sent.

Every event that takes a photo runs with ``preprocess=False``, so Gradio's own check that a
file was uploaded (which runs only for payloads carrying ``"meta"``) is the app's job. These
tests post to the queue as any client can (``POST /gradio_api/queue/join``, then the event
stream ``GET /gradio_api/queue/data``), not through ``gradio_client``, which would upload
the named file from the client's own disk. The events come from the app's ``/config``, so
an event added tomorrow is attacked too, private UI events included.

Each attack can fail: the secret outside the upload folder is a real face photo, which
the same events edit when it is uploaded properly (the positive control), and a missing
path, a text file and that photo must all get one identical answer.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = ROOT / "assets" / "faces" / "astronaut.png"
META = {"_type": "gradio.FileData"}
INVALID = "Invalid file."
TIMEOUT_S = 300


@dataclass(frozen=True)
class PhotoEvent:
    fn_index: int
    name: str
    inputs: list[dict]  # the input components' config entries, in order
    photo_slots: list[int]  # positions of the inputs that take a photo
    file_slots: list[int]  # every input that takes a file (photos and custom-slider files)


def queue_call(url: str, fn_index: int, data: list, session: str | None = None) -> dict:
    """One event through the queue, as a browser posts it; the ``process_completed`` message.
    ``session``: the browser session's hash (default: a new session)."""
    session = session or uuid.uuid4().hex
    with httpx.Client(base_url=url, timeout=TIMEOUT_S) as http:
        joined = http.post("gradio_api/queue/join", json={
            "data": data, "fn_index": fn_index, "session_hash": session,
            "event_data": None, "trigger_id": None})
        assert joined.status_code == 200, joined.text
        event_id = joined.json()["event_id"]
        with http.stream("GET", "gradio_api/queue/data",
                         params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed" \
                        and message.get("event_id") == event_id:
                    return message
    raise AssertionError(f"no answer for fn_index {fn_index}")


def upload(url: str, path: Path) -> dict:
    """Upload a file as the browser does; the FileData payload that then names it."""
    with httpx.Client(base_url=url, timeout=60) as http, path.open("rb") as f:
        response = http.post("gradio_api/upload", files=[("files", (path.name, f))])
    assert response.status_code == 200, response.text
    return {"path": response.json()[0], "orig_name": path.name, "meta": META}


def answer(message: dict) -> str:
    """The part of an answer a client learns from (timings dropped), comparable as text."""
    output = {k: v for k, v in message.get("output", {}).items()
              if k in ("data", "error")}
    return json.dumps([message.get("success"), output], sort_keys=True)


def files_in(message: dict) -> list[dict]:
    """Every file in an answer's outputs (an image, a download)."""
    found: list[dict] = []

    def walk(value) -> None:
        if isinstance(value, dict):
            if value.get("path") or value.get("url"):
                found.append(value)
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(message.get("output", {}).get("data"))
    return found


def got_photo(message: dict) -> bool:
    """Whether an answer shows that a photo was read: a file in its outputs (an edit, a
    view of the aligned face) or a UI status that found a face or found it not an image."""
    text = answer(message)
    return bool(files_in(message)) or "face found" in text or "not an image" in text


def is_slider_file(component: dict) -> bool:
    """A file input that takes a custom-slider file (safetensors), not a photo: /edit's
    ``directions`` and the app's "Load sliders" button. Attacked like the photos, but a
    photo is not what they edit."""
    props = component.get("props", {})
    return props.get("label") == "directions" or props.get("elem_id") == "custom-load"


def photo_events(config: dict) -> list[PhotoEvent]:
    """Every event (named, private or unnamed) with an input that takes a file: a component
    whose API value is a FileData, i.e. has a ``path``."""
    components = {c["id"]: c for c in config["components"]}
    events = []
    for dep in config["dependencies"]:
        inputs = [components[i] for i in dep["inputs"]]
        files = [k for k, c in enumerate(inputs)
                 if "path" in (c.get("api_info") or {}).get("properties", {})]
        if files:
            photos = [k for k in files if not is_slider_file(inputs[k])]
            events.append(PhotoEvent(dep["id"], dep.get("api_name") or str(dep["id"]),
                                     inputs, photos, files))
    return events


@pytest.fixture(scope="module")
def events(app) -> list[PhotoEvent]:
    config = httpx.get(f"{app.url}config", timeout=60).json()
    return photo_events(config)


@pytest.fixture(scope="module")
def face(app) -> dict:
    return upload(app.url, ASTRONAUT)


@pytest.fixture(scope="module")
def outside(app, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Files outside Gradio's folder: a face photo (the secret), a text file, a missing path,
    and two symlinks planted *inside* the upload folder that point out to them."""
    folder = tmp_path_factory.mktemp("outside")
    secret = folder / "secret.png"
    secret.write_bytes(ASTRONAUT.read_bytes())
    text = folder / "passwords.txt"
    text.write_text("root:x:0:0:root:/root:/bin/bash\n" * 20)
    planted = app.temp_dir / f"planted-{uuid.uuid4().hex}"
    planted.mkdir(parents=True)
    (planted / "face.png").symlink_to(secret)
    (planted / "dir").symlink_to(folder, target_is_directory=True)
    return {"folder": folder, "secret": secret, "text": text, "missing": folder / "gone.png",
            "link": planted / "face.png", "link_dir": planted / "dir" / "secret.png"}


def hostile_payloads(app, outside: dict[str, Path]) -> dict[str, object]:
    """Name -> raw photo payload, each naming a file the server was never sent."""
    secret = outside["secret"]
    port = app.url.rstrip("/").rsplit(":", 1)[1]
    data_url = "data:image/png;base64," + base64.b64encode(secret.read_bytes()).decode()
    paths = {
        "absolute path of a photo": str(secret),
        "absolute path of a text file": str(outside["text"]),
        "missing path": str(outside["missing"]),
        "/etc/passwd": "/etc/passwd",
        "upload folder/../..": os.path.join(app.temp_dir,
                                            os.path.relpath(secret, app.temp_dir)),
        "relative to the server's cwd": os.path.relpath(secret, app.cwd),
        "/proc/self/root + path": "/proc/self/root" + str(secret),
        "symlink in the upload folder": str(outside["link"]),
        "through a symlinked folder": str(outside["link_dir"]),
        "NUL byte": str(secret) + "\x00.png",
        "file:// URL": secret.as_uri(),
        "http:// URL (the app's own file route)": f"http://127.0.0.1:{port}/gradio_api/file={secret}",
        "https:// URL (loopback)": f"https://127.0.0.1:{port}/face.png",
        "data: URL as path": data_url,
    }
    payloads: dict[str, object] = {}
    for name, path in paths.items():
        payloads[name] = {"path": path}
        payloads[f"{name}, with meta"] = {"path": path, "meta": META}
    # inside the folder, so Gradio's check passes it with meta; but it is not a file
    payloads["the upload folder itself"] = {"path": str(app.temp_dir)}
    payloads["data: URL as url, no path"] = {"url": data_url}
    payloads["http:// URL as url, no path"] = {"url": f"http://127.0.0.1:{port}/face.png"}
    payloads["path not a string (malformed)"] = {"path": ["/etc/passwd"]}
    payloads["bare string, not an object (malformed)"] = str(secret)
    return payloads


def event_data(event: PhotoEvent, photos: dict[int, object]) -> list:
    """Inputs for one call: the given photos, each other input at its component's default
    (session state starts empty)."""
    return [photos[k] if k in photos else c.get("props", {}).get("value")
            for k, c in enumerate(event.inputs)]


def test_every_photo_event_is_found_from_the_config(events: list[PhotoEvent]) -> None:
    names = {e.name for e in events}
    assert {"edit", "mix", "morph", "on_photo", "on_mix_face", "on_mix_face_1"} <= names
    assert sum(len(e.photo_slots) for e in events) >= 8


def test_a_proper_upload_is_edited_by_every_photo_event(app, events, face) -> None:
    """The positive control: the photo the attacks name is edited once it is uploaded."""
    for event in (e for e in events if e.photo_slots):
        message = queue_call(app.url, event.fn_index,
                             event_data(event, dict.fromkeys(event.photo_slots, face)))
        assert message["success"], (event.name, message)
        assert got_photo(message), (event.name, message)
        assert INVALID not in json.dumps(message)


def test_an_uploaded_file_that_is_not_an_image_still_says_so(app, events, tmp_path) -> None:
    fake = tmp_path / "holiday.png"
    fake.write_text("these are not the pixels you are looking for\n" * 20)
    payload = upload(app.url, fake)
    edit = next(e for e in events if e.name == "edit")
    message = queue_call(app.url, edit.fn_index,
                         event_data(edit, dict.fromkeys(edit.photo_slots, payload)))
    assert not message["success"] and "not an image" in message["output"]["error"]


def test_no_event_reads_a_file_it_was_not_sent(app, events, face, outside) -> None:
    payloads = hostile_payloads(app, outside)
    leaked, told_apart, report = [], [], []
    for event in events:
        for slot in event.file_slots:
            groups: dict[str, dict[str, set[str]]] = {}  # kind -> answer -> payload names
            for name, payload in payloads.items():
                photos = {**dict.fromkeys(event.photo_slots, face), slot: payload}
                message = queue_call(app.url, event.fn_index, event_data(event, photos))
                text = answer(message)
                report.append(f"{event.name}[{slot}] {name}: {text}")
                if got_photo(message):
                    leaked.append(f"{event.name}[{slot}] {name}: {text}")
                kind = ("meta" if name.endswith("with meta") else
                        "malformed" if name.endswith("(malformed)") else "plain")
                groups.setdefault(kind, {}).setdefault(text, set()).add(name)
            # One neutral answer for every path: missing, unreadable and outside files cannot
            # be told apart. Gradio answers those with meta itself (one refusal for all), and
            # payloads that are not FileData objects fail its validation (one answer).
            # (Gradio refuses every plain path for an UploadButton itself, before the app:
            # "not uploaded by a user", one answer for all, no error text; that is neutral too)
            plain = next(iter(groups["plain"]))
            if len(groups["plain"]) != 1 or (INVALID not in plain
                                             and plain != '[false, {"error": null}]'):
                told_apart.append((event.name, slot, groups["plain"]))
            told_apart += [(event.name, slot, answers) for kind, answers in groups.items()
                           if kind != "plain" and len(answers) != 1]
    print("\n".join(report))  # the note's list: pytest -s shows every payload and its answer
    assert not leaked, "read outside the upload folder:\n" + "\n".join(leaked)
    assert not told_apart, told_apart


def test_the_server_keeps_serving_after_the_attacks(app, events, face) -> None:
    edit = next(e for e in events if e.name == "edit")
    photos = dict.fromkeys(edit.photo_slots, face)
    message = queue_call(app.url, edit.fn_index, event_data(edit, photos))
    assert message["success"] and files_in(message)
