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
"""

from __future__ import annotations

import os

# Offline by construction: no analytics or version checks. Must precede `import gradio`.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

import argparse  # noqa: E402
import atexit  # noqa: E402
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

from glow_demo.align import PhotoError  # noqa: E402
from glow_demo.editor import FaceEditor  # noqa: E402
from glow_demo.images import photo_paths  # noqa: E402
from glow_demo.model import WeightsError  # noqa: E402

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
INVALID_FILE = "Invalid file."  # the one answer for a photo that is not a file we received

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


def build_demo(editor: FaceEditor) -> gr.Blocks:
    """The page and its API. ``editor`` is shared by all sessions (it is thread-safe)."""
    attributes = editor.attributes
    names = [a.name for a in attributes]
    known = set(names)
    faces = example_faces()
    folders = upload_folders()  # the only places a request's photo is read from
    out_dir = Path(tempfile.mkdtemp(prefix="glow-demo-", dir=_ensure(get_upload_folder())))
    atexit.register(shutil.rmtree, out_dir, ignore_errors=True)

    def new_file(suffix: str) -> Path:
        """A fresh path for a download. Gradio serves its own copy of what a callback
        returns, so ours are dropped after a few minutes."""
        for old in out_dir.iterdir():
            if old.stat().st_mtime < time.time() - FILE_TTL_S:
                shutil.rmtree(old, ignore_errors=True)
        return Path(tempfile.mkdtemp(dir=out_dir)) / f"glow-{suffix}"

    # ----- shared helpers (UI and API) --------------------------------------------------
    def prepare_or_raise(payload):
        """Prepare a raw photo payload for the API: bad photos become a gr.Error with the
        message, and a path that is not an upload the neutral ``INVALID_FILE``."""
        try:
            photo = photo_source(payload, folders)
            if photo is None:
                raise gr.Error("No photo given.")
            return editor.prepare(photo)
        except PhotoError as err:
            raise gr.Error(str(err)) from None

    def prepare_for_ui(payload):
        """(face or None, status markdown); a bad photo is a warning toast, not an error."""
        try:
            photo = photo_source(payload, folders)
            if photo is None:
                return None, ""
            face = editor.prepare(photo)
        except PhotoError as err:
            gr.Warning(str(err))
            return None, f"⚠️ {err}"
        return face, describe(face)

    def strengths_from(values) -> dict[str, float]:
        return dict(zip(names, (float(v or 0) for v in values), strict=True))

    def check_strengths(strengths) -> dict[str, float]:
        if strengths is None:
            return {}
        if not isinstance(strengths, dict):
            raise gr.Error('strengths must be a JSON object such as {"smile": 1.5}.')
        unknown = sorted(set(strengths) - known)
        if unknown:
            raise gr.Error(f"Unknown attribute(s) {', '.join(unknown)}; "
                           f"known: {', '.join(names)}.")
        try:
            checked = {k: float(v) for k, v in strengths.items()}
        except (TypeError, ValueError):
            raise gr.Error("Every strength must be a number.") from None
        if not all(math.isfinite(v) for v in checked.values()):
            raise gr.Error("Every strength must be a finite number.")
        return checked

    def number_in(value, name: str, low: float, high: float) -> float:
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise gr.Error(f"{name} must be a number.") from None
        if not low <= value <= high:
            raise gr.Error(f"{name} must be between {low:g} and {high:g}.")
        return value

    def export_morph(face_a, face_b, steps, fmt):
        fmt = str(fmt).lower()
        if fmt not in ("gif", "mp4"):
            raise gr.Error("Format must be gif or mp4.")
        frames = editor.morph(face_a, face_b, steps=int(steps))
        return str(editor.save_animation(frames, new_file(f"morph.{fmt}")))

    # ----- UI callbacks ----------------------------------------------------------------
    def on_photo(payload):
        face, status = prepare_for_ui(payload)
        hide = gr.File(value=None, visible=False)  # a saved PNG of the previous photo
        if face is None:
            return None, None, hide, status
        before = Image.fromarray(face.photo)  # the upright RGB photo the editor pastes into
        return (face, before), upscale(face.model_input), hide, status

    def held_fixed(hold, strengths: dict[str, float]) -> dict[str, tuple[str, ...]] | None:
        """Disentangling: every edit loses its component along the directions held fixed."""
        return {n: tuple(hold) for n in strengths} if hold else None

    def on_edit(session, hold, *values):
        if session is None:
            return None, None, ""
        face, before = session
        strengths = strengths_from(values)
        result = editor.edit(face, strengths, held_fixed(hold, strengths))
        return (before, result.photo), upscale(result.model_view), edit_status(result)

    def on_save(session, hold, *values):
        if session is None:
            raise gr.Error("Give a photo first.")
        path = new_file("edited.png")
        strengths = strengths_from(values)
        editor.edit(session[0], strengths, held_fixed(hold, strengths)).photo.save(path)
        return gr.File(value=str(path), visible=True)

    def on_mix_face(payload):
        return prepare_for_ui(payload)

    def on_mix(face_a, face_b, t):
        if face_a is None or face_b is None:
            return None, ""
        result = editor.interpolate(face_a, face_b, float(t))
        return result.photo, edit_status(result)

    def on_export(face_a, face_b, steps, fmt):
        if face_a is None or face_b is None:
            raise gr.Error("Give two photos first.")
        return gr.File(value=export_morph(face_a, face_b, steps, fmt), visible=True)

    def sample(n, temperature, seed):
        """Random faces drawn from the model (64 x 64); lower temperature = more typical."""
        return editor.sample(n=int(n), temperature=float(temperature), seed=int(seed))

    # ----- API-only endpoints (inputs are photos, not session state) --------------------
    # These run with preprocess=False (photos unopened), so they check their numbers.
    def edit(photo, strengths):
        """Edit the largest face in a photo. strengths: {"smile": 1.5, ...}; returns a PNG."""
        checked = check_strengths(strengths)
        return editor.edit(prepare_or_raise(photo), checked).photo

    def mix(photo_a, photo_b, t):
        """Move face A a fraction t (0..1) of the way to face B, in photo A; returns a PNG."""
        t = number_in(t, "t", 0, 1)
        return editor.interpolate(prepare_or_raise(photo_a), prepare_or_raise(photo_b),
                                  t).photo

    def morph(photo_a, photo_b, steps, format):  # noqa: A002 (the client's keyword)
        """An animation from face A to face B (aligned crops), as a gif or mp4 file."""
        steps = number_in(steps, "steps", 2, MAX_MORPH_STEPS)
        return export_morph(prepare_or_raise(photo_a), prepare_or_raise(photo_b), steps,
                            format)

    def list_attributes():
        """Every attribute /edit accepts: name, label, main (headline slider), low, high."""
        return [dict(name=a.name, label=a.label, main=a.main, low=a.low, high=a.high)
                for a in attributes]

    # ----- layout ----------------------------------------------------------------------
    with gr.Blocks(title="Glow face editor", analytics_enabled=False,
                   delete_cache=CACHE_CLEANUP) as demo:
        session = gr.State(None, time_to_live=SESSION_TTL_S)
        mix_a_state = gr.State(None, time_to_live=SESSION_TTL_S)
        mix_b_state = gr.State(None, time_to_live=SESSION_TTL_S)

        gr.Markdown("# Glow face editor\nDrop in a face photo and move the sliders: a Glow "
                    "normalizing flow re-draws the face, live, on this computer.")
        with gr.Tabs():
            with gr.Tab("Edit", id="edit"):
                with gr.Row():
                    with gr.Column(scale=2, min_width=260):
                        photo = photo_input(label="Your photo", height=320,
                                           elem_id="photo")
                        if faces:
                            gr.Examples(faces, inputs=photo, label="Example faces")
                        with gr.Row():
                            aligned = gr.Image(label="What the model sees (64×64)",
                                               interactive=False, format="png", height=160,
                                               buttons=[], elem_id="aligned")
                        face_status = gr.Markdown(elem_classes="face-status",
                                                  elem_id="face-status")
                    with gr.Column(scale=3, min_width=320):
                        with gr.Row():
                            compare = gr.ImageSlider(label="Before / after (drag to compare)",
                                                     format="jpeg", interactive=False,
                                                     buttons=["fullscreen"], max_height=480,
                                                     scale=3, elem_id="result")
                            model_view = gr.Image(label="Model output (64×64)",
                                                  interactive=False, format="png",
                                                  buttons=[], scale=1, min_width=120,
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
                            [(a.label, a.name) for a in main], label="Keep fixed while "
                            "editing (each edit loses its part along these, e.g. age "
                            "without changing gender)", elem_id="hold")
                        with gr.Row():
                            reset = gr.Button("Reset sliders", elem_id="reset")
                            save = gr.Button("Save full-resolution PNG", variant="primary",
                                             elem_id="save")
                        saved = gr.File(label="Edited photo (PNG)", interactive=False,
                                        visible=False, elem_id="saved")
                # sliders were created in attribute order (main, then the rest) = `names`
                order = {a.name: i for i, a in enumerate(main + rest)}
                sliders = [sliders[order[n]] for n in names]

            with gr.Tab("Mix", id="mix"):
                with gr.Row():
                    with gr.Column():
                        mix_a = photo_input(label="Face A", height=260, elem_id="mix-a")
                        mix_a_status = gr.Markdown(elem_classes="face-status")
                    with gr.Column():
                        mix_b = photo_input(label="Face B", height=260, elem_id="mix-b")
                        mix_b_status = gr.Markdown(elem_classes="face-status")
                    with gr.Column():
                        mixed = gr.Image(label="A → B (in photo A)", format="jpeg",
                                         interactive=False, height=260, elem_id="mixed",
                                         buttons=["fullscreen"])
                        mix_latency = gr.Markdown(elem_classes="latency")
                t = gr.Slider(0, 1, value=0.5, step=0.02, label="Mix (0 = A, 1 = B)",
                              elem_id="mix-t")
                with gr.Row():
                    steps = gr.Slider(3, 30, value=9, step=1, label="Morph frames")
                    fmt = gr.Radio(["gif", "mp4"], value="gif", label="Format")
                    export = gr.Button("Export morph", variant="primary")
                animation = gr.File(label="Morph animation", interactive=False, visible=False,
                                    elem_id="animation")
                if len(faces) >= 2:
                    gr.Examples([[a, b] for a in faces for b in faces if a != b],
                                inputs=[mix_a, mix_b], label="Example pairs",
                                examples_per_page=6)

            with gr.Tab("Random", id="random"):
                with gr.Row():
                    n = gr.Slider(1, 16, value=8, step=1, label="Faces")
                    temperature = gr.Slider(0, 1.2, value=0.7, step=0.05,
                                            label="Temperature (lower = more typical)")
                    seed = gr.Number(0, precision=0, minimum=0, label="Seed")
                with gr.Row():
                    draw = gr.Button("Draw faces", variant="primary")
                    surprise = gr.Button("New seed")
                gallery = gr.Gallery(label="Random faces from the model", columns=8,
                                     height="auto", format="png", object_fit="contain",
                                     buttons=["download", "fullscreen"], elem_id="samples")

        # Hidden components carrying the API-only endpoints (photos in, files out).
        with gr.Column(visible=False):
            api_photo = photo_input(label="photo")
            api_photo_b = photo_input(label="photo_b")
            api_strengths = gr.JSON({}, label="strengths")
            api_t = gr.Slider(0, 1, value=0.5, label="t")
            api_steps = gr.Slider(2, MAX_MORPH_STEPS, value=9, step=1, label="steps")
            api_fmt = gr.Radio(["gif", "mp4"], value="gif", label="format")
            api_image = gr.Image(format="png", label="photo")
            api_file = gr.File(label="file")
            api_json = gr.JSON(label="attributes")
            api_buttons = [gr.Button() for _ in range(4)]

        # ----- events ----------------------------------------------------------------------
        private = dict(api_visibility="private")
        edit_outputs = [compare, model_view, latency]
        raw = dict(preprocess=False)  # photos reach the editor unopened: see photo_source
        photo.change(on_photo, photo, [session, aligned, saved, face_status],
                     show_progress_on=[aligned], **raw, **private, **MODEL).then(
            on_edit, [session, hold, *sliders], edit_outputs, show_progress="hidden",
            **private, **MODEL)
        # Every slider change (drag, keys, number box, reset) asks for one decode; with
        # always_last a drag never queues more than one pending decode per session.
        gr.on([s.change for s in sliders] + [hold.change], on_edit, [session, hold, *sliders],
              edit_outputs, trigger_mode="always_last", show_progress="hidden", **private,
              **MODEL)
        reset.click(lambda: [0.0] * len(sliders), None, sliders, queue=False, **private)
        save.click(on_save, [session, hold, *sliders], saved, **private, **MODEL)

        mix_a.change(on_mix_face, mix_a, [mix_a_state, mix_a_status],
                     **raw, **private, **MODEL).then(
            on_mix, [mix_a_state, mix_b_state, t], [mixed, mix_latency],
            show_progress="hidden", **private, **MODEL)
        mix_b.change(on_mix_face, mix_b, [mix_b_state, mix_b_status],
                     **raw, **private, **MODEL).then(
            on_mix, [mix_a_state, mix_b_state, t], [mixed, mix_latency],
            show_progress="hidden", **private, **MODEL)
        t.change(on_mix, [mix_a_state, mix_b_state, t], [mixed, mix_latency],
                 trigger_mode="always_last", show_progress="hidden", **private, **MODEL)
        export.click(on_export, [mix_a_state, mix_b_state, steps, fmt], animation,
                     **private, **MODEL)

        draw.click(sample, [n, temperature, seed], gallery, api_name="sample", **MODEL)
        surprise.click(lambda: random.randrange(2**31), None, seed, queue=False,
                       **private).then(sample, [n, temperature, seed], gallery, **private,
                                       **MODEL)

        api_buttons[0].click(edit, [api_photo, api_strengths], api_image, api_name="edit",
                             **raw, **MODEL)
        api_buttons[1].click(mix, [api_photo, api_photo_b, api_t], api_image,
                             api_name="mix", **raw, **MODEL)
        api_buttons[2].click(morph, [api_photo, api_photo_b, api_steps, api_fmt], api_file,
                             api_name="morph", **raw, **MODEL)
        api_buttons[3].click(list_attributes, None, api_json, api_name="attributes",
                             queue=False)
    demo.queue(default_concurrency_limit=MODEL_WORKERS, max_size=QUEUE_SIZE)
    return demo


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
    parser.add_argument("--compile", action="store_true",
                        help="compile the decoder in the background (torch.compile): about "
                             "20%% faster decodes once ready, but slider moves are several "
                             "times slower while it compiles (minutes the first time)")
    args = parser.parse_args(argv)

    try:
        editor = FaceEditor.load() if args.weights is None else FaceEditor.load(args.weights)
    except WeightsError as err:
        sys.exit(f"app.py: cannot load the model: {err}")
    editor.warm_up(compile_decode=args.compile)
    demo = build_demo(editor)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share,
                max_file_size=MAX_FILE_SIZE, css=CSS, footer_links=["api"],
                state_session_capacity=200)


if __name__ == "__main__":
    main()
