"""The global RNG states (python, numpy, torch CPU and CUDA) as tensors and plain values.

Training states are loaded with ``torch.load(..., weights_only=True)``, which refuses numpy arrays; numpy's
state is therefore stored as a tensor and rebuilt on restore.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

__all__ = ['capture_rng_state', 'restore_rng_state']


def capture_rng_state() -> dict[str, Any]:
    """Everything :func:`restore_rng_state` needs to continue the same random streams."""
    version, py_state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {'python': [version, list(py_state), gauss],
             'numpy': [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
             'torch': torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Set the global RNGs to a state from :func:`capture_rng_state` (CUDA only when saved and available)."""
    version, py_state, gauss = state['python']
    random.setstate((version, tuple(py_state), gauss))
    kind, keys, pos, has_gauss, cached = state['numpy']
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state['torch'].cpu())
    if 'cuda' in state and torch.cuda.is_available() and len(state['cuda']) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state['cuda']])
