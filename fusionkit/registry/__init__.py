"""Plugin discovery through pluggy and the ``fusionkit`` entry-point group."""
from .catalog import Catalog, ClassRef, ComponentInfo, LoadFailure
from .hookspecs import hookimpl
from .manager import build_catalog, default_catalog, reset_default_catalog

__all__ = ["Catalog", "ClassRef", "ComponentInfo", "LoadFailure", "hookimpl", "build_catalog", "default_catalog",
           "reset_default_catalog"]
