"""fusionkit-sharpness: a third-party focus-measure plugin for fusionkit.

fusionkit finds this module through the entry point declared in ``pyproject.toml``::

    [project.entry-points.fusionkit]
    sharpness = "fusionkit_sharpness"

imports it, and calls each hook it implements with a ``register`` callable. Importing must stay cheap: define
classes here, do no work.
"""
from __future__ import annotations

from fusionkit.registry import hookimpl

from .local_variance import LocalVariance

__all__ = ["LocalVariance", "register_focus_measures"]
__version__ = "0.1.0"


@hookimpl
def register_focus_measures(register):
    """Offer this package's focus measures to fusionkit (the hook name must match the hookspec exactly)."""
    register(LocalVariance)
