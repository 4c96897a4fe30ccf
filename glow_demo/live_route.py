"""The fast preview route: a slider move's picture without Gradio's queue.

Measured in the browser (README, *Speed*), a slider move through Gradio's event took
~190 ms to a drawn picture, of which the decode and paste back were ~50 ms: the rest was
the queue, its event stream, a second request for the picture file and the round trips
between them. While a slider is dragged, the page (``live_preview.js``) also posts the
sliders' values here, ``POST /live/preview``, and draws the JPEG bytes of the answer over
the "after" picture. The Gradio events stay as they were and have the last word: release
(the full resolution), the model's view, the status line, and a page without the script.

What the route trusts from a client: nothing but a token. A session is found by an
unguessable token (``secrets.token_urlsafe``, 192 bits) that the server issues when a
photo is prepared (``LiveSessions``), keeps for the session's time to live (and at most
``capacity`` of them), and forgets when the session ends or gets a new photo. The body is
JSON of at most ``MAX_BODY`` bytes: ``{"token": str, "face": int | null, "strengths":
{name: number}}``; names are the built-in sliders and the session's own sliders by their
place on the page (``custom-0``...), numbers finite and clamped to each slider's range.
Anything else is a 4xx with a short JSON message (``{"error": ...}``). No file name or
path is ever read from a request.

The answer: the preview JPEG (the very file Gradio's event shows for the same sliders),
its name in ``X-Frame`` (the page matches it with Gradio's picture), and the server's
stages in ``Server-Timing`` (decode, paste, jpeg, total: the render; route: the whole
request, body and wait for a worker included).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .edit_session import EditSession

PATH = "/live/preview"
MAX_BODY = 8192  # bytes: every slider of the app at full precision is ~1.5 KB
TOKEN_BYTES = 24  # 192 bits; token_urlsafe writes them as 32 characters
TOKEN = re.compile(r"[A-Za-z0-9_-]{32}")
CUSTOM_KEY = re.compile(r"custom-(\d)")
BUSY_WAIT_S = 5.0  # a request waits this long for a free worker, then gets 429
SCRIPT = Path(__file__).with_name("live_preview.js")


class LiveSessions:
    """The sessions the fast route may draw for, by token; thread-safe.

    A token lives ``ttl_s`` from when it was issued (the session's ``gr.State`` lives as
    long from the photo's upload), and only the newest ``capacity`` tokens are kept."""

    def __init__(self, ttl_s: float, capacity: int,
                 clock: Callable[[], float] = time.monotonic):
        self.ttl_s = ttl_s
        self.capacity = capacity
        self.clock = clock
        self._lock = threading.Lock()
        self._sessions: OrderedDict[str, tuple[EditSession, float]] = OrderedDict()

    def add(self, session: EditSession) -> str:
        """Issue a token for ``session`` (stored in ``session.token``); forget the oldest
        tokens beyond ``capacity``."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        session.token = token
        with self._lock:
            self._sessions[token] = (session, self.clock() + self.ttl_s)
            while len(self._sessions) > self.capacity:
                self._sessions.popitem(last=False)
        return token

    def get(self, token: str) -> EditSession | None:
        """The session behind a token; None if unknown, forgotten or expired."""
        with self._lock:
            entry = self._sessions.get(token)
            if entry is None:
                return None
            if entry[1] <= self.clock():
                del self._sessions[token]
                return None
            return entry[0]

    def forget(self, token: str | None) -> None:
        if token:
            with self._lock:
                self._sessions.pop(token, None)

    def forget_session(self, session: object) -> None:
        """A ``gr.State`` delete callback: the session ended or expired."""
        if isinstance(session, EditSession):
            self.forget(session.token)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)


class PreviewError(Exception):
    """A request the route refuses; ``status`` is its 4xx, ``str(err)`` the message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class PreviewRequest:
    """A checked request: the session, the face the sliders edit (0-based, None: all)
    and every slider's value in the page's order (``EditSession``)."""

    session: EditSession
    index: int | None
    values: list[float]


def _no_constants(name: str) -> float:
    raise PreviewError(400, f"Strengths must be finite numbers, not {name}.")


def parse_json(body: bytes) -> dict:
    """The body as a JSON object (NaN and Infinity refused)."""
    try:
        data = json.loads(body, parse_constant=_no_constants)
    except PreviewError:
        raise
    except (ValueError, RecursionError):
        raise PreviewError(400, "The body must be JSON.") from None
    if not isinstance(data, dict):
        raise PreviewError(400, 'The body must be a JSON object: {"token": ..., '
                                '"face": ..., "strengths": {...}}.')
    return data


class PreviewHandler:
    """Checks preview requests and renders them: one per worker at a time."""

    def __init__(self, sessions: LiveSessions, ranges: Mapping[str, tuple[float, float]],
                 custom_range: tuple[float, float], workers: int):
        self.sessions = sessions
        self.ranges = dict(ranges)  # built-in slider -> (low, high), in the page's order
        self.custom_range = custom_range
        self.workers = workers
        self._slots: asyncio.Semaphore | None = None  # made in the server's event loop

    def check(self, body: bytes) -> PreviewRequest:
        """A request from a raw body, or PreviewError saying what is wrong with it."""
        data = parse_json(body)
        extra = sorted(set(data) - {"token", "face", "strengths"})
        if extra:
            raise PreviewError(400, f"Unknown field(s): {', '.join(map(repr, extra))}.")
        token = data.get("token")
        if not isinstance(token, str) or not TOKEN.fullmatch(token):
            raise PreviewError(400, "token must be the session token the page was given.")
        session = self.sessions.get(token)
        if session is None:
            raise PreviewError(404, "Unknown or expired session: give the photo again.")
        index = self._face(data.get("face"), len(session.group))
        values = self._values(data.get("strengths"), session)
        return PreviewRequest(session, index, values)

    def render(self, request: PreviewRequest) -> tuple[bytes, dict[str, str]]:
        """The preview JPEG of a checked request and its response headers. Blocking:
        runs the model (``LiveEdit`` decodes each edit once, for this and Gradio)."""
        session = request.session
        start = time.perf_counter()
        args = session.live_args(session.per_face(request.index, request.values))
        frame = session.live.frame(*args)
        data = Path(frame.after).read_bytes()
        total = time.perf_counter() - start
        timing = ", ".join(f"{name};dur={seconds * 1000:.1f}" for name, seconds in (
            ("decode", frame.decode_s), ("paste", frame.paste_s), ("jpeg", frame.encode_s),
            ("total", total)))
        return data, {"Cache-Control": "no-store", "X-Frame": Path(frame.after).name,
                      "Server-Timing": timing}

    async def endpoint(self, request: Request) -> Response:
        start = time.perf_counter()
        try:
            if request.headers.get("content-type", "").split(";")[0].strip() \
                    != "application/json":
                raise PreviewError(415, "Send JSON (Content-Type: application/json).")
            checked = self.check(await read_body(request))
            data, headers = await self._run(checked)
        except PreviewError as err:
            return JSONResponse({"error": str(err)}, status_code=err.status)
        headers["Server-Timing"] += f", route;dur={(time.perf_counter() - start) * 1000:.1f}"
        return Response(data, media_type="image/jpeg", headers=headers)

    async def _run(self, checked: PreviewRequest) -> tuple[bytes, dict[str, str]]:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.workers)
        try:
            await asyncio.wait_for(self._slots.acquire(), BUSY_WAIT_S)
        except TimeoutError:
            raise PreviewError(429, "Busy: try again.") from None
        try:
            return await run_in_threadpool(self.render, checked)
        finally:
            self._slots.release()

    def _face(self, face: object, n_faces: int) -> int | None:
        """The 0-based face from the page's face number (1 = leftmost; None: all faces)."""
        if face is None:
            return None
        if isinstance(face, bool) or not isinstance(face, int) or not 1 <= face <= n_faces:
            raise PreviewError(400, f"face must be null (all faces) or a face number from 1 "
                                    f"to {n_faces}.")
        return face - 1

    def _values(self, strengths: object, session: EditSession) -> list[float]:
        """Every slider's value, clamped to its range; names left out are 0."""
        if strengths is None:
            strengths = {}
        if not isinstance(strengths, dict):
            raise PreviewError(400, 'strengths must be a JSON object such as {"smile": 1.5}.')
        places = {name: k for k, name in enumerate(session.names) if name in self.ranges}
        places.update({f"custom-{k}": len(session.names) + k
                       for k in range(len(session.custom))})
        unknown = sorted(k for k in strengths if k not in places)
        if unknown:
            shown = ", ".join(repr(k[:40]) for k in unknown[:5])
            raise PreviewError(400, f"Unknown slider(s): {shown}.")
        values = [0.0] * session.n_values
        for name, value in strengths.items():
            number = finite(value)
            if number is None:
                raise PreviewError(400, f"{name}: strengths must be finite numbers.")
            low, high = self.ranges.get(name, self.custom_range)
            values[places[name]] = min(max(number, low), high)
        return values


def finite(value: object) -> float | None:
    """A JSON number as a finite float; None for anything else (true, "1", 1e999, an
    integer too large for a float)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


async def read_body(request: Request) -> bytes:
    """The request body, refused (413) past ``MAX_BODY`` bytes, whatever it declares."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
        raise PreviewError(413, f"The body is limited to {MAX_BODY} bytes.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise PreviewError(413, f"The body is limited to {MAX_BODY} bytes.")
    return bytes(body)


def slider_ranges(attributes: Iterable) -> dict[str, tuple[float, float]]:
    """Built-in slider name -> (low, high), from the editor's attributes."""
    return {a.name: (float(a.low), float(a.high)) for a in attributes}


def preview_route(handler: PreviewHandler, path: str = PATH) -> Route:
    """The route for the app's server (``launch(app_kwargs={"routes": [...]})``); POST
    only: any other method is answered 405 by Starlette."""
    return Route(path, handler.endpoint, methods=["POST"])


def page_script() -> str:
    """The page's side of the fast path, for ``launch(head=...)``."""
    return f"<script>\n{SCRIPT.read_text()}\n</script>"
