"""nriqa_basicsr: no-reference IQA guidance for super-resolution training, as a BasicSR extension.

Importing the package installs the import-time shims of :mod:`nriqa_basicsr.patches` (before any ``basicsr``
import) and registers all of its datasets, losses, metrics and models in BasicSR's registries.
"""

from nriqa_basicsr.patches import apply_import_shims

apply_import_shims()

from nriqa_basicsr import data, losses, metrics, models  # noqa: E402,F401  (registration by import)
from nriqa_basicsr.version import __version__  # noqa: E402

__all__ = ['__version__']
