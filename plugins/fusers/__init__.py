"""fusionkit's built-in fusers (import name ``fusionkit_plugins.fusers``): complete fusers used as baselines,
registered through the ``fusionkit`` entry-point group.

- ``enfuse``: the Enblend-Enfuse program in focus-stacking mode (needs ``enfuse`` on the PATH).
"""
from __future__ import annotations

from fusionkit.registry import hookimpl

from .enfuse import Enfuse

__all__ = ["Enfuse", "register_fusers"]


@hookimpl
def register_fusers(register):
    register(Enfuse)
