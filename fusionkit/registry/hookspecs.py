"""pluggy hook specifications: one hook per component kind, each given a ``register`` callable.

A plugin module implements any subset, e.g.::

    from fusionkit.registry import hookimpl

    @hookimpl
    def register_focus_measures(register):
        register(MyMeasure)
"""
from __future__ import annotations

import pluggy

PROJECT = "fusionkit"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_focus_measures(register):
    """Call ``register(cls)`` for each :class:`fusionkit.interfaces.FocusMeasure` subclass this plugin provides."""


@hookspec
def register_generators(register):
    """Call ``register(cls)`` for each :class:`fusionkit.interfaces.Generator` subclass."""


@hookspec
def register_resamplers(register):
    """Call ``register(cls)`` for each :class:`fusionkit.interfaces.Resampler` subclass."""


@hookspec
def register_losses(register):
    """Call ``register(cls)`` for each :class:`fusionkit.interfaces.Loss` subclass."""


@hookspec
def register_metrics(register):
    """Call ``register(cls)`` for each :class:`fusionkit.interfaces.Metric` subclass."""


@hookspec
def register_fusers(register):
    """Call ``register(cls)`` for each :class:`fusionkit.interfaces.Fuser` subclass (complete external fusers)."""


@hookspec
def register_light_fields(register):
    """Call ``register(cls)`` for each :class:`fusionkit.interfaces.LightFieldSource` subclass."""


@hookspec
def register_models(register):
    """Call ``register(cls)`` for each :class:`fusionkit.interfaces.TrainableModel` subclass (``fusionkit train``)."""


@hookspec
def register_training_losses(register):
    """Call ``register(cls)`` for each :class:`fusionkit.interfaces.TrainingLoss` subclass."""


#: kind -> name of the hook that registers it
HOOK_FOR_KIND = {
    "focus_measure": "register_focus_measures",
    "generator": "register_generators",
    "resampler": "register_resamplers",
    "loss": "register_losses",
    "metric": "register_metrics",
    "fuser": "register_fusers",
    "light_field": "register_light_fields",
    "model": "register_models",
    "training_loss": "register_training_losses",
}
