"""Benchmarks (not tests) of the training step, the precision, candidate scoring and the data loader.

Each module is a ``nriqa-bench-*`` command (:data:`nriqa_basicsr.cli.COMMANDS`) with ``build_parser()`` and
``main()``; ``scripts/gpu_bench.sh`` runs them all on a GPU. The helpers below are what they share.
"""

from __future__ import annotations

import json
from typing import Any

import torch

from nriqa_basicsr.atomic import atomic_path

__all__ = ['device_name', 'sync', 'write_json']


def sync(device: torch.device) -> None:
    """Wait for queued CUDA work, so that a wall-clock timer measures it."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU with its thread count (timings depend on both)."""
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return f'CPU ({torch.get_num_threads()} threads)'


def write_json(path: str, result: dict[str, Any]) -> None:
    """``-o/--output``: the result as JSON (written atomically; its folder is made)."""
    with atomic_path(path) as tmp, open(tmp, 'w', encoding='utf-8') as f:
        json.dump(result, f, indent=1)
