"""One browser session's photo in the app: what its sliders hold for each face, and the
arguments a ``LiveEdit`` needs for them.

Two paths ask for pictures of the same session: the app's Gradio events (every slider
change, its release, "Save") and the fast preview route (``glow_demo.live_route``) that
the page calls while a slider is dragged. Both go through this class, so a face's values,
"Keep fixed" and the person's own sliders mean the same on both, and both reach the one
``LiveEdit`` of the photo (one decode per edit, one frame cache).

The sliders' values arrive as one list in the page's order: every built-in slider
(``names``), then the ``max_custom`` slots of a person's own sliders (a slot without a
slider reads 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .custom_directions import CustomDirection, with_custom
from .directions import Directions
from .group import Group
from .live import LiveEdit

LiveArgs = tuple[list[dict[str, float]], dict[str, tuple[str, ...]] | None, Directions | None]


@dataclass
class EditSession:
    """A prepared photo in one browser session (kept in its ``gr.State``).

    ``shared`` holds the sliders' values for every face that has none of its own, ``own``
    those of faces given values of their own (group photos). ``hold`` and ``custom`` are
    what the last Gradio event said ("Keep fixed", the person's own sliders): the fast
    route takes only strengths and a face, and reads the rest from here. ``token`` is the
    fast route's key to this session (``LiveSessions``); empty until registered.
    """

    group: Group
    live: LiveEdit
    names: tuple[str, ...]  # the built-in sliders, in the page's order
    max_custom: int  # slots for a person's own sliders, after the built-in ones
    token: str = ""
    shared: list[float] | None = None
    own: dict[int, list[float]] = field(default_factory=dict)
    hold: tuple[str, ...] = ()
    custom: list[CustomDirection] = field(default_factory=list)

    @property
    def n_values(self) -> int:
        return len(self.names) + self.max_custom

    def per_face(self, index: int | None, values: Sequence[float]) -> list[list[float]]:
        """Each face's slider values if the sliders, editing face ``index`` (None: all
        faces), show ``values``; nothing is stored (``remember`` stores).

        Faces given values of their own keep them; the rest follow "All faces". Picking
        a face does not detach it: only moving a slider away from its values does."""
        return self._resolve(index, values)[0]

    def remember(self, index: int | None, values: Sequence[float]) -> list[list[float]]:
        """``per_face``, and store the values for the face(s) they edit."""
        per_face, shared, own = self._resolve(index, values)
        self.shared = shared
        if own is not None:
            self.own[index] = own  # type: ignore[index]  # own is set only with an index
        return per_face

    def values_for(self, index: int | None) -> list[float]:
        """What the sliders show when face ``index`` (None: all faces) is picked."""
        shared = self.shared or [0.0] * self.n_values
        return list(shared if index is None else self.own.get(index, shared))

    def live_args(self, per_face: Sequence[Sequence[float]]) -> LiveArgs:
        """(per-face strengths, disentangle, directions) for ``LiveEdit``, with the "Keep
        fixed" and own sliders last recorded (``record``)."""
        keys = self.slider_keys()
        strengths = [{k: v for k, v in zip(keys, face, strict=True) if v and k}
                     for face in per_face]
        used = {k for face in strengths for k in face}
        disentangle = {n: tuple(self.hold) for n in used} if self.hold else None
        directions = (with_custom(self.live.editor.directions, self.custom)
                      if self.custom else None)
        return strengths, disentangle, directions

    def record(self, hold: Sequence[str] | None, custom: Sequence[CustomDirection] | None
               ) -> None:
        """Remember the page's "Keep fixed" choice and the person's own sliders."""
        self.hold = tuple(hold or ())
        self.custom = list(custom or [])[:self.max_custom]

    def slider_keys(self) -> list[str]:
        """The direction behind each value: built-in names, then the own sliders' names
        ("" for a slot without a slider)."""
        own = [c.name for c in self.custom]
        return [*self.names, *own, *[""] * (self.max_custom - len(own))]

    def _resolve(self, index: int | None, values: Sequence[float]
                 ) -> tuple[list[list[float]], list[float] | None, list[float] | None]:
        """(per-face values, the shared values, face ``index``'s own values or None)."""
        values = [float(v or 0) for v in values]
        n = len(self.group)
        shared, own = self.shared, None
        if index is None or not 0 <= index < n:
            shared = values
        elif values != self.own.get(index, shared or [0.0] * len(values)):
            own = values
        base = shared or [0.0] * len(values)
        per_face = [own if own is not None and i == index else self.own.get(i, base)
                    for i in range(n)]
        return per_face, shared, own
