"""Live editing in the app: a quick preview while a slider moves, the full photo when it
is let go, and nothing computed twice.

What a slider move costs in the browser, measured stage by stage (README, *Speed*): the
decode, pasting the change back into the photo, encoding the picture, fetching it and
drawing it. For a phone photo (12 MP) the last three dominate, and none of them needs
the full resolution while a slider is being dragged: the page shows the picture at most
480 px high. So ``LiveEdit.frame`` pastes into a copy of the photo scaled to
``PREVIEW_SIZE`` (``group.view_of``) while a slider moves, and into the photo itself on
release; each distinct edit is decoded once (a release re-uses the decode of the last
move), and the "before" picture is encoded once per photo and size.

Frames are JPEG files (quality ``JPEG_QUALITY``) in a ``FrameStore``, named by their
content: the same picture is the same file and URL, which the browser already holds.

A move can be asked for twice: by the page's fast preview route (``glow_demo.live_route``)
and by the Gradio event the same slider move fires. So the last ``RECENT`` decodes and
preview frames are kept: whichever asks second gets the first one's picture, and a Gradio
event that lags a drag by a move or two still finds its edit decoded.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from io import BytesIO
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .directions import Directions
from .editor import FaceEditor
from .group import (
    Group,
    GroupResult,
    decode_group,
    group_offsets,
    paste_group,
    skin_limits,
    view_of,
)

PREVIEW_SIZE = 640  # longer side of the picture shown while a slider moves
JPEG_QUALITY = 90  # PIL's default, 75, blurs hair and shows blocks on skin at 640 px
RECENT = 4  # decodes and preview frames kept per photo (a few KB and ~1 MB each)


class FrameStore:
    """JPEG files of pictures in one folder, named by content, each kept ``ttl_s`` after
    it was last handed out (the browser fetches a frame right after the reply)."""

    def __init__(self, folder: str | Path, ttl_s: float = 600.0, quality: int = JPEG_QUALITY):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.ttl_s = ttl_s
        self.quality = quality
        self._swept = time.monotonic()
        self._lock = threading.Lock()

    def save(self, image: Image.Image | np.ndarray) -> str:
        """The picture as a JPEG file in the store; its path."""
        if isinstance(image, np.ndarray):
            image = Image.fromarray(image)
        with BytesIO() as out:
            image.convert("RGB").save(out, "JPEG", quality=self.quality)
            data = out.getvalue()
        path = self.folder / f"{hashlib.sha1(data).hexdigest()}.jpg"
        if path.exists():
            os.utime(path)
        else:
            temp = path.with_suffix(f".{threading.get_ident()}.part")
            temp.write_bytes(data)
            temp.replace(path)  # atomic: a concurrent reader never sees half a file
        self._sweep()
        return str(path)

    def keep(self, path: str) -> bool:
        """Mark a stored file as used now; False if it is gone (swept or deleted)."""
        try:
            os.utime(path)
        except OSError:
            return False
        return True

    def _sweep(self) -> None:
        now = time.monotonic()
        if now - self._swept < min(60.0, self.ttl_s / 2) or not self._lock.acquire(False):
            return
        try:
            self._swept = now
            cutoff = time.time() - self.ttl_s
            for entry in os.scandir(self.folder):
                try:
                    if entry.stat().st_mtime < cutoff:
                        os.unlink(entry.path)
                except OSError:
                    pass
        finally:
            self._lock.release()


@dataclass
class Frame:
    """One picture of a live edit: files to show and what the status line says."""

    before: str  # JPEG path: the photo (at the frame's size)
    after: str  # JPEG path: the photo with the edit
    result: GroupResult  # model views, fractions applied, message
    full: bool  # the photo's own resolution (else a preview)
    size: tuple[int, int]  # (width, height) of the pictures
    decode_s: float  # 0 when the decode was the last one's (a release after a move)
    paste_s: float
    encode_s: float

    @property
    def timings(self) -> str:
        """The server's stages, for the status line."""
        decode = f"decode {self.decode_s * 1000:.0f} ms" if self.decode_s else "decoded"
        return (f"{decode} · paste {self.paste_s * 1000:.0f} ms · "
                f"JPEG {self.encode_s * 1000:.0f} ms ({self.size[0]}×{self.size[1]})")


def _key(offsets: list[torch.Tensor]) -> str:
    """Identifies an edit exactly: its decode depends on the offsets alone (and the face)."""
    digest = hashlib.sha1()
    for offset in offsets:
        digest.update(offset.detach().cpu().numpy().tobytes())
    return digest.hexdigest()


class LiveEdit:
    """One photo being edited in one browser session; safe to call from two threads
    (a slider's last move and its release can run at once: the second waits and re-uses
    the first's decode)."""

    def __init__(self, editor: FaceEditor, group: Group, store: FrameStore,
                 preview_size: int = PREVIEW_SIZE):
        self.editor = editor
        self.group = group
        self.store = store
        self.view = view_of(group, preview_size)  # None: the photo is small enough
        self._lock = threading.Lock()  # held while decoding: a second caller waits, re-uses
        self._decoded: OrderedDict[str, tuple[list[torch.Tensor], list[float]]] = OrderedDict()
        self._frames_lock = threading.Lock()
        self._previews: OrderedDict[str, Frame] = OrderedDict()
        self._before: dict[bool, str] = {}
        self._full: tuple[str, Frame] | None = None  # the last full frame of a large photo

    @property
    def has_preview(self) -> bool:
        """Whether moves show a smaller picture than a release (the photo is large)."""
        return self.view is not None

    def result(self, strengths: list[dict[str, float]],
               disentangle: dict[str, tuple[str, ...]] | None = None,
               directions: Directions | None = None) -> GroupResult:
        """The full-resolution edit (what "Save" writes), re-using the last decode."""
        _, decoded, applied, _ = self._decode(strengths, disentangle, directions)
        return paste_group(self.group, decoded, applied)

    def frame(self, strengths: list[dict[str, float]],
              disentangle: dict[str, tuple[str, ...]] | None = None,
              directions: Directions | None = None, full: bool = False) -> Frame:
        """The pictures for these strengths (one dict per face): a preview, or with
        ``full`` the photo's own resolution. A preview asked for after the full frame of
        the same edit was made gets that full frame (a release can finish first); one
        made already (by the fast route or an earlier event) is handed out again as it
        was, its timings those of making it."""
        key, decoded, applied, decode_s = self._decode(strengths, disentangle, directions)
        done = self._full
        if done is not None and done[0] == key and self.store.keep(done[1].after):
            return replace(done[1], decode_s=decode_s, paste_s=0.0, encode_s=0.0)
        if not full:
            made = self._made(key)
            if made is not None:
                return made
        view = None if full else self.view
        start = time.perf_counter()
        result = paste_group(self.group, decoded, applied, view=view)
        paste_s = time.perf_counter() - start
        start = time.perf_counter()
        before = self._before_path(view is None)
        edited = any(d is not f.base_decoded for d, f in zip(decoded, self.group.faces,
                                                               strict=True))
        after = self.store.save(result.photo) if edited else before  # no edit: the photo
        encode_s = time.perf_counter() - start
        photo = self.group.photo if view is None else view.photo
        frame = Frame(before=before, after=after, result=result, full=view is None,
                      size=(photo.shape[1], photo.shape[0]), decode_s=decode_s,
                      paste_s=paste_s, encode_s=encode_s)
        if view is None and self.view is not None:
            self._full = (key, frame)
        if not full:
            with self._frames_lock:
                self._previews[key] = frame
                while len(self._previews) > RECENT:
                    self._previews.popitem(last=False)
        return frame

    def _made(self, key: str) -> Frame | None:
        """The preview frame of this edit if it was made recently and its files remain."""
        with self._frames_lock:
            frame = self._previews.get(key)
            if frame is None:
                return None
            self._previews.move_to_end(key)
        if self.store.keep(frame.after) and self.store.keep(frame.before):
            return frame
        with self._frames_lock:
            self._previews.pop(key, None)
        return None

    def _before_path(self, full: bool) -> str:
        path = self._before.get(full)
        if path is None or not self.store.keep(path):
            path = self._before[full] = self.store.save(
                self.group.photo if full or self.view is None else self.view.photo)
        return path

    def _decode(self, strengths, disentangle, directions
                ) -> tuple[str, list[torch.Tensor], list[float], float]:
        offsets = group_offsets(self.editor, self.group, strengths, disentangle, directions)
        skin = skin_limits(self.editor, strengths)
        key = _key(offsets) + "".join("s" if s else "-" for s in skin)
        with self._lock:
            if key in self._decoded:
                self._decoded.move_to_end(key)
                return (key, *self._decoded[key], 0.0)
            start = time.perf_counter()
            decoded, applied = decode_group(self.editor, self.group, offsets, skin)
            self._decoded[key] = (decoded, applied)
            while len(self._decoded) > RECENT:
                self._decoded.popitem(last=False)
            return key, decoded, applied, time.perf_counter() - start
