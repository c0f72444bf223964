"""Train with BasicSR's command line (``-opt FILE``, ``--launcher``, ``--auto_resume``, ``--debug``, ``--force_yml``).

``python nriqa_basicsr/train.py -opt FILE`` (as ``basicsr/train.py``) writes ``experiments/`` and ``tb_logger/``
under the checkout that holds this file; ``python -m nriqa_basicsr.train`` and ``nriqa-train`` write them under
the current directory.
"""

import os.path as osp
import sys

if __name__ == '__main__':
    as_file = __spec__ is None  # sys.path[0] is then this folder, whose module names would shadow others
    if as_file:
        sys.path[0] = osp.abspath(osp.join(__file__, osp.pardir, osp.pardir))
    from nriqa_basicsr.pipeline import train_main  # the package first: compat patches before basicsr

    train_main(sys.path[0] if as_file else None)
