"""fusionkit: plugin-based multi-focus image fusion and super-resolution fusion (Deep Fusion Prior)."""
from __future__ import annotations

__version__ = "0.1.0"
