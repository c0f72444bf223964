"""Test with BasicSR's command line (``-opt FILE``, ``--launcher``, ``--auto_resume``, ``--debug``, ``--force_yml``).

``python nriqa_basicsr/test.py -opt FILE`` (as ``basicsr/test.py``) writes ``results/`` under the checkout that
holds this file; ``python -m nriqa_basicsr.test`` and ``nriqa-test`` write them under the current directory.
"""

import os.path as osp
import sys

if __name__ == '__main__':
    as_file = __spec__ is None  # sys.path[0] is then this folder, whose module names would shadow others
    if as_file:
        sys.path[0] = osp.abspath(osp.join(__file__, osp.pardir, osp.pardir))
    from nriqa_basicsr.pipeline import test_main  # the package first: compat patches before basicsr

    test_main(sys.path[0] if as_file else None)
