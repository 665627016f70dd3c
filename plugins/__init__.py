"""fusionkit's built-in components (import name ``fusionkit_plugins``).

Each sub-package registers through the ``fusionkit`` entry-point group, exactly as a third-party package does.
"""
