"""The parameter models (``Params``) of fusionkit's built-in pipeline components, one module per kind.

They live apart from the components, in modules that import only pydantic, so that validating a spec
(``fusionkit validate``, ``run --dry-run``) needs neither torch nor numpy: the catalog cache
(:mod:`fusionkit.registry.snapshot`) tells validation where each component's ``Params`` is, and importing a
component's own module (and torch) waits until the component runs. Each component's ``Params`` attribute is the
class defined here.
"""
