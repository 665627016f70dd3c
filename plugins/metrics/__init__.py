"""Built-in fusion-quality metrics (kind ``metric``). Each module lists its classes in ``METRICS``."""
from fusionkit.registry import hookimpl

from . import dfp_relative, gradient_info, perceptual, reference

MODULES = (reference, dfp_relative, gradient_info, perceptual)


@hookimpl
def register_metrics(register):
    for module in MODULES:
        for cls in module.METRICS:
            register(cls)
