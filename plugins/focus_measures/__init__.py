"""fusionkit's built-in focus measures (import name ``fusionkit_plugins.focus_measures``), registered through the
``fusionkit`` entry-point group.

- ``double_reblur``: Deep Fusion Prior's DoubleReblur (Eqs. 11-19), a pair as in the paper or a stack of N >= 3
  (each slice against the strongest other), binary maps;
- ``max_gradient``: UDPNet's maximal-gradient rule (Eq. 3), any number of inputs, binary maps;
- ``uniform``: equal weights 1/N (the mean-of-inputs baseline).
"""
from __future__ import annotations

from fusionkit.registry import hookimpl

from .double_reblur import DoubleReblur
from .max_gradient import MaxGradient
from .uniform import Uniform

__all__ = ["DoubleReblur", "MaxGradient", "Uniform", "register_focus_measures"]


@hookimpl
def register_focus_measures(register):
    for cls in (DoubleReblur, MaxGradient, Uniform):
        register(cls)
