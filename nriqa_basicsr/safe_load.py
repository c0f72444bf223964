"""Loading checkpoints and training states without executing code from the file.

``torch.load`` unpickles: a crafted ``.pth`` can run arbitrary code. Everything we load goes through
:func:`load_torch_file`, which accepts only tensors and plain containers (``weights_only=True``) or
``.safetensors``, and explains a refusal instead of surfacing the unpickler's internals.
"""

from __future__ import annotations

import os.path as osp
import pickle
from typing import Any

import torch

__all__ = ['CorruptFileError', 'UnsafeFileError', 'load_torch_file']


class UnsafeFileError(ValueError):
    """The file holds pickled Python objects beyond tensors and plain containers."""


class CorruptFileError(ValueError):
    """The file is truncated or not a PyTorch/safetensors file."""


def load_torch_file(path: str, map_location: str | torch.device = 'cpu', what: str = 'checkpoint') -> Any:
    """Tensors (and dicts/lists/numbers of them) stored in ``path``; ``what`` names the file's role in errors."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} {path}: no such file.')
    if path.endswith('.safetensors'):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(path, device=str(map_location))
        except (SafetensorError, OSError) as exc:
            raise CorruptFileError(f'{what} {path}: not a readable safetensors file ({exc}).') from exc
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = str(exc).strip().splitlines()
        detail = next((line.strip() for line in reason if 'GLOBAL' in line), None)
        if detail is None:  # e.g. "Unsupported operand 179": random bytes, not pickled objects
            unsupported = next((line.strip() for line in reason if 'Unsupported' in line), reason[0] if reason else '')
            raise CorruptFileError(f'{what} {path}: not a PyTorch file (garbage or damaged content: {unsupported}); '
                                   f'restore it from a backup or use an earlier checkpoint.') from exc
        raise UnsafeFileError(
            f'{what} {path}: refused, it holds pickled Python objects ({detail}). Loading it would run code '
            f'stored in the file. If you trust its origin, re-save only its tensors, e.g. '
            f'torch.save({{"params": net.state_dict()}}, path), or convert it to .safetensors.') from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CorruptFileError(f'{what} {path}: truncated or not a PyTorch file ({type(exc).__name__}: '
                               f'{str(exc).splitlines()[0] if str(exc) else ""}); restore it from a backup or use '
                               f'an earlier checkpoint.') from exc
