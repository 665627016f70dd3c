"""Light-field sources: sub-aperture views refocused into a focal stack (import name
``fusionkit_plugins.light_fields``), registered through the ``fusionkit`` entry-point group.

- ``view_grid``: views named by grid position (``input_Cam{index:03d}.png`` or ``{row:02d}_{col:02d}.png``),
  shift-and-sum refocused at N disparities with cubic sub-pixel shifts.

:mod:`.views` reads the files; :mod:`.refocus` is the math on tensors.
"""
from __future__ import annotations

from fusionkit.registry import hookimpl

from .refocus import refocus, shift_image, spread
from .view_grid import ViewGrid
from .views import KNOWN_PATTERNS, ViewFiles, compile_pattern, locate, read_views

__all__ = ["KNOWN_PATTERNS", "ViewFiles", "ViewGrid", "compile_pattern", "locate", "read_views", "refocus",
           "register_light_fields", "shift_image", "spread"]


@hookimpl
def register_light_fields(register):
    register(ViewGrid)
