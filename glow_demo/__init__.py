"""glow-demo: a face editor built on a Glow normalizing flow.

The editing path lives in ``glow_demo.editor`` (photo -> align -> encode -> edit ->
decode -> paste back); the model in ``glow_demo.model``; the command line in
``glow_demo.cli`` (``python -m glow_demo --help``).
"""

from .model import DEFAULT_WEIGHTS, Glow, GlowConfig, WeightsError

__all__ = ["DEFAULT_WEIGHTS", "Glow", "GlowConfig", "WeightsError"]
