"""fusionkit: plugin-based multi-focus image fusion and super-resolution fusion (Deep Fusion Prior)."""
from __future__ import annotations

__version__ = "0.1.0"


def __getattr__(name: str):
    # `fusionkit.run` is imported lazily so that `import fusionkit` stays cheap.
    if name in ("run", "RunResult"):
        from . import runner

        return getattr(runner, name)
    if name in ("load_spec", "ResolvedSpec"):
        from . import validation

        return getattr(validation, name)
    raise AttributeError(name)
