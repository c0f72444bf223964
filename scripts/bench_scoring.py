"""Candidate-scoring throughput: pyiqa's MUSIQ forward vs our fast path, fp32 and bf16 (benchmark, not a test).

    python scripts/bench_scoring.py --device cuda --batch 60 --size 256 --iters 20 [--compile] [--json out.json]
    python scripts/bench_scoring.py --guides cnniqa_live niqe --device cpu --batch 12 --size 256 \
        [--weights-dir ../shared/iqa_weights]

``--guides`` times any metric names instead (pyiqa or custom) through the scorer: no-grad scoring (what AMO does)
and forward + backward to the input (what NRIQALoss does), in crops/s. ``cnniqa_live`` uses random weights when
its file is not found (timing does not depend on them).

Scores ``--batch`` random crops of ``--size``² per call (AMO scores B·K crops per step: 12 × 5 = 60 in the paper's
set-up) with random MUSIQ weights (timing does not depend on them; ``--weights`` loads a real file). Prints
crops/s per variant, the speed-up over pyiqa, and each variant's largest relative difference from pyiqa's fp32
scores on the same crops.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Callable

import torch

import nriqa_basicsr  # noqa: F401  (compat shims before basicsr)
from nriqa_basicsr.iqa.fast_musiq import musiq_forward  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _time(fn: Callable[[], torch.Tensor], device: torch.device, iters: int, warmup: int) -> tuple[float, torch.Tensor]:
    with torch.no_grad():
        for _ in range(warmup):
            out = fn()
        _sync(device)
        start = time.perf_counter()
        for _ in range(iters):
            out = fn()
        _sync(device)
    return (time.perf_counter() - start) / iters, out


def run(device: str, batch: int, size: int, iters: int, warmup: int, weights: str | None,
        compile_: bool) -> dict:
    from pyiqa.archs.musiq_arch import MUSIQ

    dev = torch.device(device)
    torch.manual_seed(0)
    net = MUSIQ(pretrained=False, num_class=1, pretrained_model_path=weights).to(dev).eval().requires_grad_(False)
    x = torch.rand(batch, 3, size, size, device=dev)
    bf16 = (torch.autocast(dev.type, dtype=torch.bfloat16) if dev.type in ('cuda', 'cpu')
            else contextlib.nullcontext())

    def under(ctx: contextlib.AbstractContextManager, fn: Callable) -> Callable[[], torch.Tensor]:
        def call() -> torch.Tensor:
            with ctx:
                return fn(net, x).float()
        return call

    variants = {
        'pyiqa_fp32': under(contextlib.nullcontext(), lambda n, t: n(t)),
        'fast_fp32': under(contextlib.nullcontext(), musiq_forward),
        'pyiqa_bf16': under(bf16, lambda n, t: n(t)),
        'fast_bf16': under(bf16, musiq_forward),
    }
    if compile_:
        compiled = torch.compile(musiq_forward, dynamic=False)
        variants['fast_bf16_compiled'] = under(bf16, compiled)
    results, reference = {}, None
    for name, fn in variants.items():
        seconds, out = _time(fn, dev, iters, warmup)
        if reference is None:
            reference = out
        rel = float((out - reference).abs().max() / reference.abs().max().clamp_min(1e-12))
        results[name] = {'ms_per_call': 1000 * seconds, 'crops_per_s': batch / seconds, 'max_rel_diff': rel}
    base = results['pyiqa_fp32']['crops_per_s']
    for r in results.values():
        r['speedup'] = r['crops_per_s'] / base
    name = torch.cuda.get_device_name(dev) if dev.type == 'cuda' else f'CPU ({torch.get_num_threads()} threads)'
    return {'device': name, 'batch': batch, 'size': size, 'iters': iters, 'torch': torch.__version__,
            'variants': results}


def run_guides(names: list[str], device: str, batch: int, size: int, iters: int, warmup: int,
               weights_dir: str | None) -> dict:
    """Crops/s of each metric through :func:`~nriqa_basicsr.iqa.build_scorer`: scoring and scoring + gradient."""
    import tempfile

    from nriqa_basicsr.iqa import WeightsNotFoundError, build_scorer
    from nriqa_basicsr.iqa.cnniqa import CNNIQALive

    dev = torch.device(device)
    torch.manual_seed(0)
    x = torch.rand(batch, 3, size, size, device=dev)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            try:
                scorer = build_scorer(name, 'NR', dev, weights_dir=weights_dir)
            except WeightsNotFoundError:
                if name != 'cnniqa_live':
                    raise
                torch.save(CNNIQALive().state_dict(), f'{tmp}/CNNIQA-LIVE')
                scorer = build_scorer(name, 'NR', dev, weights_dir=tmp)

            def grad_step(scorer=scorer) -> torch.Tensor:
                with torch.enable_grad():
                    inp = x.clone().requires_grad_(True)
                    scorer(inp).sum().backward()
                return inp.grad

            score_s, _ = _time(lambda scorer=scorer: scorer(x), dev, iters, warmup)
            grad_s, _ = _time(grad_step, dev, iters, warmup)
            results[name] = {'score_crops_per_s': batch / score_s, 'grad_crops_per_s': batch / grad_s}
    dev_name = torch.cuda.get_device_name(dev) if dev.type == 'cuda' else f'CPU ({torch.get_num_threads()} threads)'
    return {'device': dev_name, 'batch': batch, 'size': size, 'iters': iters, 'torch': torch.__version__,
            'guides': results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--batch', type=int, default=60)
    parser.add_argument('--size', type=int, default=256)
    parser.add_argument('--iters', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--weights', help='a real MUSIQ checkpoint (default: random weights)')
    parser.add_argument('--compile', action='store_true', help='also time torch.compile of the fast path')
    parser.add_argument('--json', help='write the results here too')
    parser.add_argument('--guides', nargs='+', metavar='METRIC',
                        help='time these NR metrics (pyiqa or custom, e.g. cnniqa_live niqe) instead of MUSIQ')
    parser.add_argument('--weights-dir', help='--guides: directory searched first for weight files')
    args = parser.parse_args(argv)
    if args.guides:
        result = run_guides(args.guides, args.device, args.batch, args.size, args.iters, args.warmup,
                            args.weights_dir)
        print(f'NR-IQA guides, {result["batch"]} crops of {result["size"]}² per call on {result["device"]}')
        print(f'{"metric":<20} {"score crops/s":>14} {"score+grad crops/s":>19}')
        for name, r in result['guides'].items():
            print(f'{name:<20} {r["score_crops_per_s"]:>14.1f} {r["grad_crops_per_s"]:>19.1f}')
        if args.json:
            with open(args.json, 'w') as f:
                json.dump(result, f, indent=1)
        return 0
    result = run(args.device, args.batch, args.size, args.iters, args.warmup, args.weights, args.compile)
    print(f'MUSIQ scoring, {result["batch"]} crops of {result["size"]}² per call on {result["device"]}')
    print(f'{"variant":<20} {"ms/call":>10} {"crops/s":>10} {"speed-up":>9} {"max rel diff":>13}')
    for name, r in result['variants'].items():
        print(f'{name:<20} {r["ms_per_call"]:>10.1f} {r["crops_per_s"]:>10.1f} {r["speedup"]:>8.2f}x '
              f'{r["max_rel_diff"]:>13.2e}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
