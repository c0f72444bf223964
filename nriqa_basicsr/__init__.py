"""nriqa_basicsr: no-reference IQA guidance for super-resolution training, as a BasicSR extension.

Importing the package installs the compatibility shims (before any ``basicsr`` import) and registers all of
its archs, datasets, losses, metrics and models in BasicSR's registries.
"""

from nriqa_basicsr import compat

compat.apply()

from nriqa_basicsr import archs, data, losses, metrics, models  # noqa: E402,F401  (registration by import)
from nriqa_basicsr.version import __version__  # noqa: E402

__all__ = ['__version__']
