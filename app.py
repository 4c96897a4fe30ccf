"""The Glow face editor in the browser: a thin Gradio layer over ``glow_demo.editor``.

    python app.py                      # http://127.0.0.1:7860, offline
    python app.py --host 0.0.0.0 --port 8080
    python app.py --share              # temporary public link through Gradio's tunnel

All model logic lives in :class:`glow_demo.editor.FaceEditor`; every callback here is a
few lines around it. One editor is loaded at start-up and shared by every session; each
browser session keeps its prepared face(s) in ``gr.State``.

API (``gradio_client``; the endpoints are listed at the page's "Use via API" link)::

    from gradio_client import Client, handle_file

    client = Client("http://127.0.0.1:7860/")
    face = handle_file("assets/faces/astronaut.png")
    other = handle_file("assets/faces/grace_hopper.jpg")

    edited = client.predict(face, {"smile": 1.5, "age": -0.5}, api_name="/edit")  # PNG path
    mixed = client.predict(face, other, 0.5, api_name="/mix")                    # PNG path
    morph = client.predict(face, other, 9, "gif", api_name="/morph")             # GIF path
    faces = client.predict(4, 0.7, 0, api_name="/sample")  # [{"image": path, "caption": None}, ...]
    names = [a["name"] for a in client.predict(api_name="/attributes")]
    team = handle_file("assets/faces/group/four_portraits.jpg")
    every = client.predict(team, {"smile": 1.0}, "all", None, api_name="/edit")
    path, info = client.predict("hat", [handle_file(p) for p in with_hat],
                                [handle_file(p) for p in without], api_name="/learn_direction")
    hatted = client.predict(face, {"hat": 1.0}, "largest", handle_file(path), api_name="/edit")
    examples = client.predict(api_name="/example_faces")  # [{"image": path, "caption": ...}]
    path, info = client.predict("fair", None, None, [3, 8, 11], [1, 2, 5],
                                api_name="/learn_direction")       # example faces by number

``/edit``'s optional ``faces`` is "largest" (default), "all" or a list of face numbers
(1 = the leftmost face, as the app numbers them); its optional ``directions`` is a file
from ``/learn_direction`` (>= 3 faces with an attribute and >= 3 without, uploaded photos
and/or example faces by their number in ``/example_faces``; returns the file and its
reliability).
``/edit`` takes a JSON dict of strengths: any attribute name from ``/attributes`` (0 = no
change, 1.0 = the documented unit, sliders span about -1.5..1.5); names left out stay 0.
All strengths 0 give back the photo itself, byte for byte (PNG). ``/mix`` moves face A a
fraction t of the way to face B, in photo A; ``/morph`` exports frames from A to B as
"gif" or "mp4"; ``/sample`` draws n faces (64 x 64) at a temperature from a seed.
Photos that are not images or show no face raise an error whose message says so
(``gradio_client`` raises ``AppError`` with it). A photo must reach the server as an upload
(``handle_file`` does that); a payload that names any other path, a URL or a data URL is
answered "Invalid file.", whether or not such a file exists (see ``photo_source``).
``gradio_client`` sends a telemetry ping when it connects unless
``GRADIO_ANALYTICS_ENABLED=False`` is set in its environment.

While a slider is dragged, the page also posts the sliders' values to ``POST /live/preview``
on the same server and draws the JPEG it answers before Gradio's event brings the same
picture (``glow_demo/live_route.py``, ``glow_demo/live_preview.js``). It is the page's,
not an API: it takes only the token the page was given for its photo.
"""

from __future__ import annotations

import os

# Offline by construction: no analytics or version checks. Must precede `import gradio`.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

import argparse  # noqa: E402
import atexit  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gradio as gr  # noqa: E402
from gradio.utils import get_upload_folder  # noqa: E402
from PIL import Image  # noqa: E402

from glow_demo.custom_directions import (  # noqa: E402
    CustomDirectionError,
    learn_direction,
    load_for,
    save_directions,
    with_custom,
)
from glow_demo.edit_session import EditSession  # noqa: E402
from glow_demo.editor import FaceEditor  # noqa: E402
from glow_demo.example_faces import ExampleGallery, example_gallery  # noqa: E402
from glow_demo.group import edit_photo, prepare_group  # noqa: E402
from glow_demo.images import photo_paths  # noqa: E402
from glow_demo.live import FrameStore, LiveEdit  # noqa: E402
from glow_demo.live_route import (  # noqa: E402
    LiveSessions,
    PreviewHandler,
    page_script,
    preview_route,
    slider_ranges,
)
from glow_demo.model import DEFAULT_WEIGHTS, WeightsError  # noqa: E402
from glow_demo.photo import PhotoError  # noqa: E402

ROOT = Path(__file__).resolve().parent
FACES_DIR = ROOT / "assets" / "faces"
MAX_FILE_SIZE = "25mb"
MODEL_WORKERS = 2  # 2-core CPU: at most two model calls at a time, across all sessions
QUEUE_SIZE = 64
VIEW_SIZE = 256  # the 64 x 64 model views are shown upscaled (nearest) to this size
FILE_TTL_S = 600  # our download files, once Gradio has copied them into its cache
CACHE_CLEANUP = (900, 3600)  # every 15 min Gradio deletes its files older than an hour
MAX_MORPH_STEPS = 60
SESSION_TTL_S = 3 * 3600  # a session's prepared faces are dropped after this long
STATE_SESSIONS = 200  # sessions whose state Gradio keeps (and fast-preview tokens)
INVALID_FILE = "Invalid file."  # the one answer for a photo that is not a file we received
MAX_CUSTOM = 4  # sliders of a person's own per session
CUSTOM_RANGE = (-1.5, 1.5)  # their sliders' range
ALL_FACES = "All faces"
THUMB_SIZE = 96

CSS = """
.latency p { font-size: var(--text-xs); color: var(--body-text-color-subdued);
             text-align: right; margin: 0; }
.latency p strong { font-size: var(--text-md); color: var(--body-text-color); }
.face-status p { font-size: var(--text-sm); margin: 0.2em 0; }
"""

# Shared model-call settings: one concurrency pool for every event that runs the model.
MODEL = dict(concurrency_id="model", concurrency_limit=MODEL_WORKERS)


def photo_input(**kwargs) -> gr.Image:
    """A photo upload (file, webcam or clipboard). Events that read it run with
    ``preprocess=False`` and hand the file to the editor unopened (``photo_source``)."""
    return gr.Image(type="filepath", sources=["upload", "webcam", "clipboard"],
                    buttons=["fullscreen"], **kwargs)


class InvalidFileError(PhotoError):
    """A photo payload that names no file this server received as an upload.

    One message for every such case (missing, unreadable, outside the upload folder, not
    a path at all), so that the answer tells a client nothing about the server's files.
    """

    def __init__(self) -> None:
        super().__init__(INVALID_FILE)


def upload_folders() -> tuple[Path, ...]:
    """The folders a request's photo may be read from, resolved (symlinks followed).

    Gradio 6 keeps uploads and its cache (example files included) in one folder,
    ``GRADIO_TEMP_DIR`` or ``<system temp>/gradio``; nothing the app serves lies elsewhere.
    """
    return (Path(os.path.realpath(_ensure(get_upload_folder()))),)


def photo_source(payload: object, folders: tuple[Path, ...]) -> str | None:
    """The uploaded file behind a raw ``gr.Image`` value, as a resolved path; None if empty.

    Events that take photos run with ``preprocess=False``: ``gr.Image`` would open uploads
    with PIL before any callback runs, so a file that is not an image would fail there
    with an opaque error; unopened, ``FaceEditor.prepare`` decides, and its
    ``PhotoError`` carries a message for people. But then Gradio checks nothing: its
    upload-folder check runs only for payloads that carry ``"meta"``, and a client
    posting to the queue may name any path. So every path is resolved here (``..`` and
    symlinks followed) and must be a file inside ``folders``; anything else, a URL or a
    data URL included, raises ``InvalidFileError`` before the file is touched.
    """
    if payload is None or payload == {}:
        return None
    path = payload.get("path") if isinstance(payload, dict) else None
    if not isinstance(path, str) or not path:
        raise InvalidFileError
    try:
        real = Path(os.path.realpath(path))
        inside = any(real.is_relative_to(folder) for folder in folders)
        if inside and real.is_file():
            return str(real)
    except (OSError, ValueError):  # a NUL byte, a symlink loop, a name too long, ...
        pass
    raise InvalidFileError


def example_faces() -> list[str]:
    if not FACES_DIR.is_dir():
        return []
    return [str(p) for p in photo_paths([FACES_DIR])]


def upscale(image: Image.Image) -> Image.Image:
    return image.resize((VIEW_SIZE, VIEW_SIZE), Image.NEAREST)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def describe(face) -> str:
    found = ("1 face found" if face.n_faces == 1
             else f"{face.n_faces} faces found, editing the largest")
    text = (f"**{found}.** Typicality: **{face.bits_per_dim:.2f} bits/dim** "
            "(how typical this face is for the model; lower = more typical)")
    if face.smoothing:
        text += (f". An unusual face for the model: edits are computed from a copy smoothed "
                 f"by {face.smoothing:g} px so that they stay faces; your photo keeps its detail")
    return text


def edit_status(result) -> str:
    warning = f" — **⚠️ {result.message}**" if result.message else ""
    return f"decode {ms(result.seconds)}{warning}"


def describe_group(group) -> str:
    """The status line for a prepared photo: one face as before, or a group."""
    if len(group) == 1:
        return describe(group.faces[0])
    text = (f"**{len(group)} faces found** (face 1 is the leftmost): the sliders edit all "
            "of them together; pick one under *Edit* to give it slider values of its own")
    smoothed = [str(i + 1) for i, f in enumerate(group.faces) if f.smoothing]
    if smoothed:
        text += (f". Face(s) {', '.join(smoothed)} are unusual for the model and are edited "
                 "from a slightly smoothed copy so that they stay faces")
    return text


def target_choices(group) -> list[str]:
    return [ALL_FACES] + [f"Face {i + 1}" for i in range(len(group))]


def target_index(target) -> int | None:
    """None for "All faces", else the 0-based face a "Face N" choice names."""
    if not target or target == ALL_FACES:
        return None
    return int(str(target).rsplit(" ", 1)[-1]) - 1


def faces_from(value):
    """The API's ``faces``: "largest" (default), "all", or a list of face numbers, 1 = the
    leftmost (also as text, "1,3" or "[1, 3]"); ``select_faces`` checks the range."""
    if value is None or value == "":
        return "largest"
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("largest", "all"):
            return text
        try:
            parsed = json.loads(text if text.startswith("[") else f"[{text}]")
        except ValueError:
            parsed = None
        if isinstance(parsed, list):
            return parsed
        raise gr.Error('faces must be "largest", "all" or a list of face numbers such as '
                       '[1, 3] (1 = the leftmost face).')
    if isinstance(value, list):
        return value
    raise gr.Error('faces must be "largest", "all" or a list of face numbers.')


def uploaded_paths(payload, folders: tuple[Path, ...]) -> list[str]:
    """Paths of the files behind a raw ``gr.File`` value (one or a list), each checked by
    ``photo_source``: only files this server received as uploads (else InvalidFileError)."""
    if not payload:
        return []
    items = payload if isinstance(payload, list) else [payload]
    return [path for path in (photo_source(item, folders) for item in items) if path]


def strip_image(editor, face, directions, name: str, size: int = 128) -> Image.Image:
    """A face at -1, 0 and +1 of one direction, side by side (the aligned crop)."""
    tiles = [editor.edit(face, {name: s}, directions=directions).crop.resize(
        (size, size), Image.LANCZOS) for s in (-1.0, 0.0, 1.0)]
    strip = Image.new("RGB", (3 * size + 4, size), "white")
    for k, tile in enumerate(tiles):
        strip.paste(tile, (k * (size + 2), 0))
    return strip


def build_face_picker():
    """The detected faces as thumbnails, and which of them the sliders edit (group
    photos only; hidden for a photo of one face)."""
    thumbs = gr.Gallery(label="Faces found (left to right)", columns=6, height=150,
                        format="png", object_fit="contain", allow_preview=False,
                        visible=False, elem_id="faces")
    target = gr.Radio([ALL_FACES], value=ALL_FACES, label="Edit", visible=False,
                      elem_id="target")
    return thumbs, target


def build_custom_panel(examples: ExampleGallery):
    """'Your own slider': learn a direction from >= 3 faces with and >= 3 without (example
    faces picked from a gallery, uploaded photos, or both), save it, load it again; its
    sliders (hidden until learned) and a -1/0/+1 strip."""
    numbers = [(str(f.number), f.number) for f in examples.faces]
    with gr.Accordion("Your own slider (from a few examples)", open=False,
                      elem_id="custom-panel"):
        gr.Markdown("Pick at least 3 faces **with** an attribute and 3 **without** it "
                    "(example faces below, your own photos, or both), name it, and a "
                    "slider appears. It is the mean difference of the two sets, like the "
                    "built-in sliders (which are learned from thousands of CelebA faces), "
                    "so with few examples it also carries the look of the particular "
                    "people; the note below says how much.")
        drawn = sum(f.seed is not None for f in examples.faces)
        gallery = gr.Gallery(
            examples.items(), label=f"Example faces: 1–{drawn} drawn by this model, then "
            "public-domain portraits. Click a face to mark it",
            columns=6, height="auto", format="png", object_fit="cover",
            allow_preview=False, buttons=[], elem_id="custom-examples")
        with gr.Row():
            mark = gr.Radio(["with", "without"], value="with", label="A click marks a face",
                            scale=1, min_width=160, elem_id="custom-mark")
            with_examples = gr.CheckboxGroup(numbers, label="Example faces with the "
                                             "attribute", scale=3, elem_id="custom-with-examples")
            without_examples = gr.CheckboxGroup(numbers, label="Example faces without it",
                                                scale=3, elem_id="custom-without-examples")
        picked = gr.State({"with": [], "without": []})  # what the two groups show
        with gr.Row():
            with_files = gr.File(label="Photos with the attribute (optional)",
                                 file_count="multiple", file_types=["image"], height=120,
                                 elem_id="custom-with")
            without_files = gr.File(label="Photos without it (optional)",
                                    file_count="multiple", file_types=["image"], height=120,
                                    elem_id="custom-without")
        with gr.Row():
            name = gr.Textbox(label="Slider name", placeholder="e.g. hat", max_lines=1,
                              elem_id="custom-name")
            learn = gr.Button("Learn slider", variant="primary", elem_id="custom-learn")
        note = gr.Markdown(elem_id="custom-note")
        strip = gr.Image(label="−1 / 0 / +1 on the current face", interactive=False,
                         format="png", visible=False, height=150, buttons=[],
                         elem_id="custom-strip")
        sliders = [gr.Slider(*CUSTOM_RANGE, value=0.0, step=0.05, label=f"custom {k}",
                             visible=False, buttons=["reset"], elem_id=f"custom-{k}")
                   for k in range(MAX_CUSTOM)]
        with gr.Row():
            save = gr.Button("Save my sliders", elem_id="custom-save")
            # no file_types: load_for checks the file (and photo_source its path)
            load = gr.UploadButton("Load sliders (.safetensors)", elem_id="custom-load")
        saved = gr.File(label="My sliders", interactive=False, visible=False,
                        elem_id="custom-saved")
    return dict(gallery=gallery, mark=mark, picked=picked, with_examples=with_examples,
                without_examples=without_examples, with_files=with_files,
                without_files=without_files, name=name, learn=learn, note=note, strip=strip,
                sliders=sliders, save=save, load=load, saved=saved)


def toggle_example(mark: str, picked: dict, event: gr.SelectData) -> tuple[dict, list, list]:
    """A click on example face k puts it on the side ``mark`` names (off the other), or
    takes it off that side if it is there already: the session's picks (``picked``, kept
    on the server) and what the two checkbox groups show. Each click reads the picks the
    click before it left, so clicks faster than the page's round trip all count: the
    checkbox values the page would send with a click are still those from before the last
    one's answer."""
    number = event.index + 1
    chosen = "without" if mark == "without" else "with"
    sides = {side: [n for n in picked.get(side, []) if n != number]
             for side in ("with", "without")}
    if number not in picked.get(chosen, []):
        sides[chosen] = sorted(sides[chosen] + [number])
    return sides, sides["with"], sides["without"]


def picks_from_boxes(with_: list | None, without: list | None) -> dict:
    """The session's picks after a person ticks or unticks a checkbox by hand."""
    return {"with": sorted(with_ or []), "without": sorted(without or [])}


def custom_slider_updates(custom) -> list:
    """Show one slider per custom direction (labelled), hide the rest."""
    return [gr.Slider(visible=True, label=c.label, value=0.0) if k < len(custom)
            else gr.Slider(visible=False, value=0.0) for k, c in enumerate(
                list(custom) + [None] * (MAX_CUSTOM - len(custom)))]


class Handlers:
    """What every event of the page and every API endpoint does, each a few lines around
    the editor. One instance serves all sessions: a session's own state (its prepared
    photo, its sliders of its own) comes in as ``gr.State`` values."""

    def __init__(self, editor: FaceEditor, sessions: LiveSessions, examples: ExampleGallery):
        self.editor = editor
        self.sessions = sessions  # where prepared photos get their fast-preview token
        self.examples = examples
        self.attributes = editor.attributes
        self.names = [a.name for a in self.attributes]
        self.folders = upload_folders()  # the only places a request's photo is read from
        self.out_dir = Path(tempfile.mkdtemp(prefix="glow-demo-",
                                             dir=_ensure(get_upload_folder())))
        atexit.register(shutil.rmtree, self.out_dir, ignore_errors=True)
        # the pictures slider moves show
        self.frames = FrameStore(self.out_dir / "frames", ttl_s=FILE_TTL_S)

    def new_file(self, suffix: str) -> Path:
        """A fresh path for a download. Gradio serves its own copy of what a callback
        returns, so ours are dropped after a few minutes."""
        for old in self.out_dir.iterdir():
            if old.stat().st_mtime < time.time() - FILE_TTL_S:
                shutil.rmtree(old, ignore_errors=True)
        return Path(tempfile.mkdtemp(dir=self.out_dir)) / f"glow-{suffix}"

    # ----- shared helpers (UI and API) --------------------------------------------------
    def prepare_or_raise(self, payload):
        """Prepare a raw photo payload for the API: bad photos become a gr.Error with the
        message, and a path that is not an upload the neutral ``INVALID_FILE``."""
        try:
            photo = photo_source(payload, self.folders)
            if photo is None:
                raise gr.Error("No photo given.")
            return self.editor.prepare(photo)
        except PhotoError as err:
            raise gr.Error(str(err)) from None

    def prepare_for_ui(self, payload):
        """(face or None, status markdown); a bad photo is a warning toast, not an error."""
        try:
            photo = photo_source(payload, self.folders)
            if photo is None:
                return None, ""
            face = self.editor.prepare(photo)
        except PhotoError as err:
            gr.Warning(str(err))
            return None, f"⚠️ {err}"
        return face, describe(face)

    def check_strengths(self, strengths, extra: tuple[str, ...] = ()) -> dict[str, float]:
        if strengths is None:
            return {}
        if not isinstance(strengths, dict):
            raise gr.Error('strengths must be a JSON object such as {"smile": 1.5}.')
        unknown = sorted(set(strengths) - set(self.names) - set(extra))
        if unknown:
            raise gr.Error(f"Unknown attribute(s) {', '.join(unknown)}; "
                           f"known: {', '.join(self.names + list(extra))}.")
        try:
            checked = {k: float(v) for k, v in strengths.items()}
        except (TypeError, ValueError):
            raise gr.Error("Every strength must be a number.") from None
        if not all(math.isfinite(v) for v in checked.values()):
            raise gr.Error("Every strength must be a finite number.")
        return checked

    @staticmethod
    def number_in(value, name: str, low: float, high: float) -> float:
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise gr.Error(f"{name} must be a number.") from None
        if not low <= value <= high:
            raise gr.Error(f"{name} must be between {low:g} and {high:g}.")
        return value

    def export_morph(self, face_a, face_b, steps, fmt):
        fmt = str(fmt).lower()
        if fmt not in ("gif", "mp4"):
            raise gr.Error("Format must be gif or mp4.")
        frames = self.editor.morph(face_a, face_b, steps=int(steps))
        return str(self.editor.save_animation(frames, self.new_file(f"morph.{fmt}")))

    # ----- the Edit tab ------------------------------------------------------------------
    def on_photo(self, payload, previous):
        """Prepare every face in the photo (a one-face photo exactly as before); its
        fast-preview token replaces the previous photo's."""
        self.sessions.forget_session(previous)
        try:
            photo = photo_source(payload, self.folders)
        except PhotoError as err:
            gr.Warning(str(err))
            photo, err_status = None, f"⚠️ {err}"
        else:
            err_status = ""
        hide = gr.File(value=None, visible=False)  # a saved PNG of the previous photo
        no_picker = (gr.Gallery(value=None, visible=False),
                     gr.Radio([ALL_FACES], value=ALL_FACES, visible=False))
        if photo is None:
            return None, None, hide, err_status, *no_picker, ""
        try:
            group = prepare_group(self.editor, photo)
        except PhotoError as err:
            gr.Warning(str(err))
            return None, None, hide, f"⚠️ {err}", *no_picker, ""
        session = EditSession(group, LiveEdit(self.editor, group, self.frames),
                              tuple(self.names), MAX_CUSTOM)
        token = self.sessions.add(session)
        shown = group.faces[group.largest]
        picker = no_picker
        if len(group) > 1:
            picker = (gr.Gallery(value=[(t, f"Face {i + 1}") for i, t in
                                        enumerate(group.thumbnails(THUMB_SIZE))],
                                 visible=True),
                      gr.Radio(target_choices(group), value=ALL_FACES, visible=True))
        return (session, upscale(shown.model_input), hide, describe_group(group), *picker,
                token)

    @staticmethod
    def edit_args(session: EditSession, hold, target, custom, values) -> tuple:
        """(per-face strengths, disentangle, directions) for ``LiveEdit``; stores the
        values for the face(s) they edit, and "Keep fixed" and the own sliders for the
        fast preview route."""
        session.record(hold, custom)
        return session.live_args(session.remember(target_index(target), values))

    @staticmethod
    def show(session, target, frame):
        """The outputs of a slider move: (before, after) files, the model's view, status."""
        group = session.group
        index = target_index(target)
        shown = group.largest if index is None or index >= len(group) else index
        status = frame.timings
        if frame.result.message:
            status += f" — **⚠️ {frame.result.message}**"
        return ((frame.before, frame.after), upscale(frame.result.model_views[shown]),
                status)

    def on_edit(self, session, hold, target, custom, *values):
        """A slider moved: the picture at preview size (a large photo) or in full."""
        if session is None:
            return None, None, ""
        args = self.edit_args(session, hold, target, custom or [], values)
        return self.show(session, target, session.live.frame(*args))

    def on_release(self, session, hold, target, custom, *values):
        """A slider let go: a large photo at its own resolution (its decode re-used)."""
        if session is None or not session.live.has_preview:
            return gr.skip(), gr.skip(), gr.skip()
        args = self.edit_args(session, hold, target, custom or [], values)
        return self.show(session, target, session.live.frame(*args, full=True))

    def on_target(self, session, target):
        """Picking a face (or all): the sliders show that face's values."""
        if session is None:
            return [gr.Slider()] * (len(self.names) + MAX_CUSTOM)
        return session.values_for(target_index(target))

    @staticmethod
    def on_thumb(session, event: gr.SelectData):
        return f"Face {event.index + 1}"

    def on_save(self, session, hold, target, custom, *values):
        if session is None:
            raise gr.Error("Give a photo first.")
        path = self.new_file("edited.png")
        args = self.edit_args(session, hold, target, custom or [], values)
        session.live.result(*args).photo.save(path)
        return gr.File(value=str(path), visible=True)

    # ----- your own slider ------------------------------------------------------------
    def examples_and_uploads(self, with_examples, without_examples, with_files,
                             without_files) -> tuple[list, list]:
        """Each side's faces: picked example faces (their latents) and uploaded photos
        (raw payloads: only files this server received, see ``photo_source``). Raises
        CustomDirectionError or PhotoError with a message for people."""
        picked_with, picked_without = self.examples.pick(with_examples, without_examples)
        # uploads first, so that "Photo 2 with the attribute" in an error is the 2nd upload
        return ([*uploaded_paths(with_files, self.folders), *picked_with],
                [*uploaded_paths(without_files, self.folders), *picked_without])

    def on_learn(self, session, custom, name, with_examples, without_examples, with_files,
                 without_files):
        custom = list(custom or [])
        keep = [gr.Slider()] * MAX_CUSTOM
        if len(custom) >= MAX_CUSTOM:
            raise gr.Error(f"At most {MAX_CUSTOM} sliders of your own; reload the page to "
                           "start again.")
        taken = self.names + [c.name for c in custom]
        try:
            with_, without = self.examples_and_uploads(with_examples, without_examples,
                                                       with_files, without_files)
            learned = learn_direction(self.editor, name or "", with_, without, taken=taken)
        except PhotoError as err:  # a path that is not an upload: the neutral message
            raise gr.Error(str(err)) from None
        except CustomDirectionError as err:
            gr.Warning(str(err))
            return custom, f"⚠️ {err}", gr.Image(visible=False), *keep
        custom.append(learned)
        strip = gr.Image(visible=False)
        if session is not None:
            session.record(session.hold, custom)  # the fast route's sliders too
            group = session.group
            face = group.faces[group.largest]
            strip = gr.Image(value=strip_image(self.editor, face, with_custom(
                self.editor.directions, custom), learned.name), visible=True)
        note = f"**Slider '{learned.label}'.** {learned.advice}"
        return custom, note, strip, *custom_slider_updates(custom)

    def on_custom_save(self, custom):
        if not custom:
            raise gr.Error("Learn a slider first.")
        path = self.new_file("sliders.safetensors")
        save_directions(path, custom)
        return gr.File(value=str(path), visible=True)

    def on_custom_load(self, session, custom, payload):
        custom = list(custom or [])
        try:
            file = photo_source(payload, self.folders)  # raw: only a file this server received
        except PhotoError as err:
            raise gr.Error(str(err)) from None
        if file is None:
            return custom, "", *([gr.Slider()] * MAX_CUSTOM)
        try:
            loaded = load_for(self.editor, file)
        except CustomDirectionError as err:
            gr.Warning(str(err))
            return custom, f"⚠️ {err}", *([gr.Slider()] * MAX_CUSTOM)
        taken = set(self.names) | {c.name for c in custom}
        added = [c for c in loaded if c.name not in taken][:MAX_CUSTOM - len(custom)]
        custom += added
        if session is not None:
            session.record(session.hold, custom)  # the fast route's sliders too
        notes = [f"**{c.label}**: {c.advice}" for c in added] or ["No new sliders in the file."]
        return custom, "\n\n".join(notes), *custom_slider_updates(custom)

    # ----- the Mix and Random tabs ------------------------------------------------------
    def on_mix_face(self, payload):
        return self.prepare_for_ui(payload)

    def on_mix(self, face_a, face_b, t):
        if face_a is None or face_b is None:
            return None, ""
        result = self.editor.interpolate(face_a, face_b, float(t))
        return result.photo, edit_status(result)

    def on_export(self, face_a, face_b, steps, fmt):
        if face_a is None or face_b is None:
            raise gr.Error("Give two photos first.")
        return gr.File(value=self.export_morph(face_a, face_b, steps, fmt), visible=True)

    def sample(self, n, temperature, seed):
        """Random faces drawn from the model (64 x 64); lower temperature = more typical."""
        return self.editor.sample(n=int(n), temperature=float(temperature), seed=int(seed))

    # ----- API-only endpoints (inputs are photos, not session state) --------------------
    # These run with preprocess=False (photos unopened), so they check their numbers.
    def edit(self, photo, strengths, faces=None, directions=None):
        """Edit the faces in a photo. strengths: {"smile": 1.5, ...}; faces: "largest"
        (default), "all" or a list of face numbers (1 = leftmost); directions: an optional
        file of custom sliders from /learn_direction, whose names strengths may use.
        Returns a PNG."""
        custom = []
        try:
            photo = photo_source(photo, self.folders)  # the photo first: its errors first
            if photo is None:
                raise gr.Error("No photo given.")
            self.editor.prepare(photo)  # cached: an image with a face, or its PhotoError now
            for path in uploaded_paths(directions, self.folders):
                custom += load_for(self.editor, path)
        except (CustomDirectionError, PhotoError) as err:
            raise gr.Error(str(err)) from None
        checked = self.check_strengths(strengths, tuple(c.name for c in custom))
        try:
            chosen = with_custom(self.editor.directions, custom) if custom else None
            return edit_photo(self.editor, photo, checked, faces_from(faces),
                              directions=chosen).photo
        except (CustomDirectionError, PhotoError, ValueError) as err:
            raise gr.Error(str(err)) from None

    def learn(self, name, with_photos, without_photos, with_examples=None,
              without_examples=None):
        """A slider of your own from >= 3 faces with an attribute and >= 3 without: uploaded
        photos, and/or example faces by their number in /example_faces (lists such as
        [3, 8, 11]). Returns the direction file (pass it to /edit as directions) and its
        description: name, label, n_with, n_without, reliability (0..1) and advice."""
        try:
            with_, without = self.examples_and_uploads(with_examples, without_examples,
                                                       with_photos, without_photos)
            learned = learn_direction(self.editor, name or "", with_, without)
        except (CustomDirectionError, PhotoError) as err:
            raise gr.Error(str(err)) from None
        path = save_directions(self.new_file(f"{learned.name}.safetensors"), [learned])
        return str(path), dict(name=learned.name, label=learned.label,
                               n_with=learned.n_with, n_without=learned.n_without,
                               reliability=round(learned.reliability, 4),
                               advice=learned.advice)

    def mix(self, photo_a, photo_b, t):
        """Move face A a fraction t (0..1) of the way to face B, in photo A; returns a PNG."""
        t = self.number_in(t, "t", 0, 1)
        return self.editor.interpolate(self.prepare_or_raise(photo_a),
                                       self.prepare_or_raise(photo_b), t).photo

    def morph(self, photo_a, photo_b, steps, format):  # noqa: A002 (the client's keyword)
        """An animation from face A to face B (aligned crops), as a gif or mp4 file."""
        steps = self.number_in(steps, "steps", 2, MAX_MORPH_STEPS)
        return self.export_morph(self.prepare_or_raise(photo_a),
                                 self.prepare_or_raise(photo_b), steps, format)

    def list_examples(self):
        """The example faces /learn_direction can pick by number (1 = the first); each
        caption says what it is (a model sample and its seed, or a portrait)."""
        return [(f.image, f"{f.number}: {f.source}") for f in self.examples.faces]

    def list_attributes(self):
        """Every attribute /edit accepts: name, label, main (headline slider), low, high."""
        return [dict(name=a.name, label=a.label, main=a.main, low=a.low, high=a.high)
                for a in self.attributes]


def build_demo(editor: FaceEditor, sessions: LiveSessions | None = None) -> gr.Blocks:
    """The page and its API. ``editor`` is shared by all sessions (it is thread-safe).
    ``sessions``: where prepared photos get their fast-preview token (``live_route``)."""
    if sessions is None:
        sessions = LiveSessions(SESSION_TTL_S, STATE_SESSIONS)
    faces = example_faces()
    examples = example_gallery(editor)  # drawn once (a second or two), shared by all
    handlers = Handlers(editor, sessions, examples)
    with gr.Blocks(title="Glow face editor", analytics_enabled=False,
                   delete_cache=CACHE_CLEANUP) as demo:
        states = dict(
            # an EditSession; its fast-preview token is forgotten with it
            session=gr.State(None, time_to_live=SESSION_TTL_S,
                             delete_callback=sessions.forget_session),
            mix_a=gr.State(None, time_to_live=SESSION_TTL_S),
            mix_b=gr.State(None, time_to_live=SESSION_TTL_S),
            custom=gr.State([], time_to_live=SESSION_TTL_S),  # CustomDirection list
        )
        gr.Markdown("# Glow face editor\nDrop in a face photo and move the sliders: a Glow "
                    "normalizing flow re-draws the face, live, on this computer.")
        with gr.Tabs():
            with gr.Tab("Edit", id="edit"):
                edit_tab = build_edit_tab(editor.attributes, faces, examples)
            with gr.Tab("Mix", id="mix"):
                mix_tab = build_mix_tab(faces)
            with gr.Tab("Random", id="random"):
                random_tab = build_random_tab()
        api = build_api_inputs()
        wire_edit_tab(edit_tab, states, handlers)
        wire_mix_tab(mix_tab, states, handlers)
        wire_random_tab(random_tab, handlers)
        wire_api(api, handlers)
    demo.queue(default_concurrency_limit=MODEL_WORKERS, max_size=QUEUE_SIZE)
    return demo


# ----- layout: each builder makes one part of the page and returns its components -------
def build_edit_tab(attributes, faces: list[str], examples: ExampleGallery) -> dict:
    """The Edit tab: the photo, what the model sees, the before/after view, the sliders
    (``sliders`` in attribute order), "Keep fixed", save, and 'Your own slider'."""
    with gr.Row():
        with gr.Column(scale=2, min_width=260):
            photo = photo_input(label="Your photo", height=320, elem_id="photo")
            if faces:
                gr.Examples(faces, inputs=photo, label="Example faces")
            with gr.Row():
                aligned = gr.Image(label="What the model sees (64×64)", interactive=False,
                                   format="png", height=160, buttons=[], elem_id="aligned")
            face_status = gr.Markdown(elem_classes="face-status", elem_id="face-status")
            thumbs, target = build_face_picker()
            # the page's key to the fast preview route (live_preview.js)
            live_token = gr.Textbox(visible="hidden", elem_id="live-token", interactive=False)
        with gr.Column(scale=3, min_width=320):
            with gr.Row():
                compare = gr.ImageSlider(label="Before / after (drag to compare)",
                                         format="jpeg", interactive=False,
                                         buttons=["fullscreen"], max_height=480, scale=3,
                                         elem_id="result")
                model_view = gr.Image(label="Model output (64×64)", interactive=False,
                                      format="png", buttons=[], scale=1, min_width=120,
                                      elem_id="model-view")
            latency = gr.Markdown(elem_classes="latency", elem_id="latency")
            sliders = []
            main = [a for a in attributes if a.main]
            rest = [a for a in attributes if not a.main]
            for row in range(0, len(main), 3):
                with gr.Row():
                    sliders += [_slider(a) for a in main[row:row + 3]]
            with gr.Accordion("All attributes", open=False):
                for row in range(0, len(rest), 3):
                    with gr.Row():
                        sliders += [_slider(a) for a in rest[row:row + 3]]
            hold = gr.CheckboxGroup(
                [(a.label, a.name) for a in main], label="Keep fixed while editing (each "
                "edit loses its part along these, e.g. age without changing gender)",
                elem_id="hold")
            with gr.Row():
                reset = gr.Button("Reset sliders", elem_id="reset")
                save = gr.Button("Save full-resolution PNG", variant="primary",
                                 elem_id="save")
            saved = gr.File(label="Edited photo (PNG)", interactive=False, visible=False,
                            elem_id="saved")
            custom = build_custom_panel(examples)
    # sliders were created in attribute order (main, then the rest) = `attributes`
    order = {a.name: i for i, a in enumerate(main + rest)}
    sliders = [sliders[order[a.name]] for a in attributes]
    return dict(photo=photo, aligned=aligned, face_status=face_status, thumbs=thumbs,
                target=target, live_token=live_token, compare=compare,
                model_view=model_view, latency=latency, sliders=sliders, hold=hold,
                reset=reset, save=save, saved=saved, custom=custom)


def build_mix_tab(faces: list[str]) -> dict:
    """The Mix tab: two photos, the mix in photo A, and a morph to export."""
    with gr.Row():
        with gr.Column():
            mix_a = photo_input(label="Face A", height=260, elem_id="mix-a")
            mix_a_status = gr.Markdown(elem_classes="face-status")
        with gr.Column():
            mix_b = photo_input(label="Face B", height=260, elem_id="mix-b")
            mix_b_status = gr.Markdown(elem_classes="face-status")
        with gr.Column():
            mixed = gr.Image(label="A → B (in photo A)", format="jpeg", interactive=False,
                             height=260, elem_id="mixed", buttons=["fullscreen"])
            mix_latency = gr.Markdown(elem_classes="latency")
    t = gr.Slider(0, 1, value=0.5, step=0.02, label="Mix (0 = A, 1 = B)", elem_id="mix-t")
    with gr.Row():
        steps = gr.Slider(3, 30, value=9, step=1, label="Morph frames")
        fmt = gr.Radio(["gif", "mp4"], value="gif", label="Format")
        export = gr.Button("Export morph", variant="primary")
    animation = gr.File(label="Morph animation", interactive=False, visible=False,
                        elem_id="animation")
    if len(faces) >= 2:
        gr.Examples([[a, b] for a in faces for b in faces if a != b],
                    inputs=[mix_a, mix_b], label="Example pairs", examples_per_page=6)
    return dict(mix_a=mix_a, mix_a_status=mix_a_status, mix_b=mix_b,
                mix_b_status=mix_b_status, mixed=mixed, mix_latency=mix_latency, t=t,
                steps=steps, fmt=fmt, export=export, animation=animation)


def build_random_tab() -> dict:
    """The Random tab: how many faces, temperature, seed, and the faces drawn."""
    with gr.Row():
        n = gr.Slider(1, 16, value=8, step=1, label="Faces")
        temperature = gr.Slider(0, 1.2, value=0.7, step=0.05,
                                label="Temperature (lower = more typical)")
        seed = gr.Number(0, precision=0, minimum=0, label="Seed")
    with gr.Row():
        draw = gr.Button("Draw faces", variant="primary")
        surprise = gr.Button("New seed")
    gallery = gr.Gallery(label="Random faces from the model", columns=8, height="auto",
                         format="png", object_fit="contain",
                         buttons=["download", "fullscreen"], elem_id="samples")
    return dict(n=n, temperature=temperature, seed=seed, draw=draw, surprise=surprise,
                gallery=gallery)


def build_api_inputs() -> dict:
    """Hidden components carrying the API-only endpoints (photos in, files out)."""
    with gr.Column(visible=False):
        return dict(
            photo=photo_input(label="photo"),
            photo_b=photo_input(label="photo_b"),
            strengths=gr.JSON({}, label="strengths"),
            t=gr.Slider(0, 1, value=0.5, label="t"),
            steps=gr.Slider(2, MAX_MORPH_STEPS, value=9, step=1, label="steps"),
            fmt=gr.Radio(["gif", "mp4"], value="gif", label="format"),
            image=gr.Image(format="png", label="photo"),
            file=gr.File(label="file"),
            json=gr.JSON(label="attributes"),
            faces=gr.JSON(None, label="faces"),  # None: "largest"
            directions=gr.File(label="directions"),
            name=gr.Textbox(label="name"),
            with_photos=gr.File(file_count="multiple", label="with_photos"),
            without_photos=gr.File(file_count="multiple", label="without_photos"),
            learned=gr.JSON(label="direction"),
            with_examples=gr.JSON(None, label="with_examples"),
            without_examples=gr.JSON(None, label="without_examples"),
            examples=gr.Gallery(format="png", label="example faces"),
            buttons=[gr.Button() for _ in range(6)],
        )


# ----- events: each wires one part of the page to the handlers ---------------------------
PRIVATE = dict(api_visibility="private")  # the page's own events: not in the API
RAW = dict(preprocess=False)  # photos reach the editor unopened: see photo_source


def wire_edit_tab(ui: dict, states: dict, h: Handlers) -> None:
    """The Edit tab's events: a photo, slider moves and releases, picking a face, reset,
    save, and 'Your own slider'."""
    session, custom = states["session"], ui["custom"]
    edit_outputs = [ui["compare"], ui["model_view"], ui["latency"]]
    all_sliders = ui["sliders"] + custom["sliders"]  # built-in, then a person's own
    edit_inputs = [session, ui["hold"], ui["target"], states["custom"], *all_sliders]
    target = ui["target"]
    ui["photo"].change(h.on_photo, [ui["photo"], session],
                       [session, ui["aligned"], ui["saved"], ui["face_status"], ui["thumbs"],
                        target, ui["live_token"]],
                       show_progress_on=[ui["aligned"]], **RAW, **PRIVATE, **MODEL).then(
        h.on_edit, edit_inputs, edit_outputs, show_progress="hidden", **PRIVATE, **MODEL)
    # Every slider change (drag, keys, number box, reset) asks for one decode; with
    # always_last a drag never queues more than one pending decode per session.
    gr.on([s.change for s in all_sliders] + [ui["hold"].change], h.on_edit, edit_inputs,
          edit_outputs, trigger_mode="always_last", show_progress="hidden", **PRIVATE,
          **MODEL)
    # Moves show a preview of a large photo; letting go (pointer up, leaving the
    # number box) shows it in full, re-using the last move's decode (LiveEdit).
    gr.on([s.release for s in all_sliders], h.on_release, edit_inputs, edit_outputs,
          trigger_mode="always_last", show_progress="hidden", **PRIVATE, **MODEL)
    # Picking a face (radio or thumbnail) shows its values on the sliders
    target.input(h.on_target, [session, target], all_sliders, queue=False,
                 **PRIVATE).then(h.on_edit, edit_inputs, edit_outputs,
                                 show_progress="hidden", **PRIVATE, **MODEL)
    ui["thumbs"].select(h.on_thumb, [session], target, queue=False, **PRIVATE).then(
        h.on_target, [session, target], all_sliders, queue=False, **PRIVATE).then(
        h.on_edit, edit_inputs, edit_outputs, show_progress="hidden", **PRIVATE, **MODEL)
    ui["reset"].click(lambda: [0.0] * len(all_sliders), None, all_sliders, queue=False,
                      **PRIVATE)
    ui["save"].click(h.on_save, edit_inputs, ui["saved"], **PRIVATE, **MODEL)
    wire_custom_panel(custom, session, states["custom"], h)


def wire_custom_panel(custom: dict, session, custom_state, h: Handlers) -> None:
    """The events of 'Your own slider' (``build_custom_panel``)."""
    # one at a time, in the order they were made, every click (not only the first of
    # those made while one is pending, Gradio's default): ``toggle_example``
    picking = dict(concurrency_id="example-picks", concurrency_limit=1, **PRIVATE)
    boxes = [custom["with_examples"], custom["without_examples"]]
    custom["gallery"].select(toggle_example, [custom["mark"], custom["picked"]],
                             [custom["picked"], *boxes], trigger_mode="multiple",
                             show_progress="hidden", **picking)
    for box in boxes:
        box.input(picks_from_boxes, boxes, custom["picked"], show_progress="hidden",
                  **picking)
    custom["learn"].click(h.on_learn, [session, custom_state, custom["name"],
                                       custom["with_examples"], custom["without_examples"],
                                       custom["with_files"], custom["without_files"]],
                          [custom_state, custom["note"], custom["strip"], *custom["sliders"]],
                          **RAW, **PRIVATE, **MODEL)
    custom["save"].click(h.on_custom_save, custom_state, custom["saved"], **PRIVATE,
                         **MODEL)
    custom["load"].upload(h.on_custom_load, [session, custom_state, custom["load"]],
                          [custom_state, custom["note"], *custom["sliders"]],
                          **RAW, **PRIVATE, **MODEL)


def wire_mix_tab(ui: dict, states: dict, h: Handlers) -> None:
    """The Mix tab's events: each photo prepared as it arrives, the mix redrawn as t
    moves, and the morph exported."""
    faces = [states["mix_a"], states["mix_b"], ui["t"]]
    mixed = [ui["mixed"], ui["mix_latency"]]
    for side in ("mix_a", "mix_b"):
        ui[side].change(h.on_mix_face, ui[side], [states[side], ui[f"{side}_status"]],
                        **RAW, **PRIVATE, **MODEL).then(
            h.on_mix, faces, mixed, show_progress="hidden", **PRIVATE, **MODEL)
    ui["t"].change(h.on_mix, faces, mixed, trigger_mode="always_last",
                   show_progress="hidden", **PRIVATE, **MODEL)
    ui["export"].click(h.on_export, [states["mix_a"], states["mix_b"], ui["steps"],
                                     ui["fmt"]], ui["animation"], **PRIVATE, **MODEL)


def wire_random_tab(ui: dict, h: Handlers) -> None:
    """The Random tab's events; drawing is also the API's /sample."""
    drawn = [ui["n"], ui["temperature"], ui["seed"]]
    ui["draw"].click(h.sample, drawn, ui["gallery"], api_name="sample", **MODEL)
    ui["surprise"].click(lambda: random.randrange(2**31), None, ui["seed"], queue=False,
                         **PRIVATE).then(h.sample, drawn, ui["gallery"], **PRIVATE,
                                         **MODEL)


def wire_api(api: dict, h: Handlers) -> None:
    """The API-only endpoints, on the hidden components of ``build_api_inputs``."""
    buttons = api["buttons"]
    buttons[0].click(h.edit, [api["photo"], api["strengths"], api["faces"],
                              api["directions"]],
                     api["image"], api_name="edit", **RAW, **MODEL)
    buttons[4].click(h.learn, [api["name"], api["with_photos"], api["without_photos"],
                               api["with_examples"], api["without_examples"]],
                     [api["file"], api["learned"]], api_name="learn_direction", **RAW,
                     **MODEL)
    buttons[5].click(h.list_examples, None, api["examples"], api_name="example_faces",
                     queue=False)
    buttons[1].click(h.mix, [api["photo"], api["photo_b"], api["t"]], api["image"],
                     api_name="mix", **RAW, **MODEL)
    buttons[2].click(h.morph, [api["photo"], api["photo_b"], api["steps"], api["fmt"]],
                     api["file"], api_name="morph", **RAW, **MODEL)
    buttons[3].click(h.list_attributes, None, api["json"], api_name="attributes",
                     queue=False)


def _slider(attribute) -> gr.Slider:
    return gr.Slider(attribute.low, attribute.high, value=0.0, step=0.05,
                     label=attribute.label, buttons=["reset"], min_width=140,
                     elem_id=f"slider-{attribute.name}")


def _ensure(folder: str) -> str:
    Path(folder).mkdir(parents=True, exist_ok=True)
    return folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Glow face editor (web app)")
    # Gradio's own variables set the defaults: a Hugging Face Space runs `python app.py`
    # with GRADIO_SERVER_NAME=0.0.0.0, and an explicit server_name would override it.
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="interface to bind (default $GRADIO_SERVER_NAME or 127.0.0.1: "
                        "this computer only)")
    parser.add_argument("--port", type=int,
                        default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument("--share", action="store_true",
                        help="also open a temporary public link (needs internet)")
    parser.add_argument("--weights", default=None,
                        help="folder with the model and its directions (default: weights/)")
    parser.add_argument("--no-compile", action="store_true",
                        help="do not use the compiled decoder (default: load it, or build "
                             "it once in a separate low-priority process, ~1 minute; "
                             "about 2x faster decodes once ready)")
    parser.add_argument("--float32", action="store_true",
                        help="decode in float32 only (default: bf16 coupling nets where the "
                             "CPU has them, 0.75x the time, no visible difference)")
    args = parser.parse_args(argv)

    bf16 = False if args.float32 else None
    try:
        editor = FaceEditor.load(args.weights or DEFAULT_WEIGHTS, bf16=bf16)
    except WeightsError as err:
        sys.exit(f"app.py: cannot load the model: {err}")
    editor.warm_up(compile_decode=not args.no_compile)
    if not args.no_compile:
        print("decoder: compiled, loaded from the cache" if editor.model.decode_compiled else
              "decoder: eager until the compiled one is built (once, in a separate process, "
              "about a minute)", flush=True)
    sessions = LiveSessions(SESSION_TTL_S, STATE_SESSIONS)
    demo = build_demo(editor, sessions)
    # The fast preview route on Gradio's own server, ahead of Gradio's routes.
    fast = PreviewHandler(sessions, slider_ranges(editor.attributes), CUSTOM_RANGE,
                          MODEL_WORKERS)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share,
                max_file_size=MAX_FILE_SIZE, css=CSS, head=page_script(),
                footer_links=["api"], state_session_capacity=STATE_SESSIONS,
                app_kwargs={"routes": [preview_route(fast)]})


if __name__ == "__main__":
    main()
