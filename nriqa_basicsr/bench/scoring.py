"""Candidate-scoring throughput: pyiqa's MUSIQ forward vs our fast path, fp32 and bf16 (benchmark, not a test).

    nriqa-bench-scoring --device cuda --batch-size 60 --size 256 --iters 20 [--compile] [-o out.json]
    nriqa-bench-scoring --guides cnniqa_live niqe --device cpu --batch-size 12 --size 256 \
        [--weights-dir ../shared/iqa_weights]

``--guides`` times any metric names instead (pyiqa or custom) through the scorer: no-grad scoring (what AMO does)
and forward + backward to the input (what NRIQALoss does), in crops/s. ``cnniqa_live`` uses random weights when
its file is not found (timing does not depend on them).

Scores ``--batch-size`` random crops of ``--size``² per call (AMO scores B·K crops per step: 12 × 5 = 60 in the paper's
set-up) with random MUSIQ weights (timing does not depend on them; ``--weights`` loads a real file). Prints
crops/s per variant, the speed-up over pyiqa, and each variant's largest relative difference from pyiqa's fp32
scores on the same crops.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable, Sequence

import torch

from nriqa_basicsr import cli
from nriqa_basicsr.bench import device_name, sync, write_json
from nriqa_basicsr.iqa.fast_musiq import musiq_forward

__all__ = ['build_parser', 'main', 'run', 'run_guides']


def _time(fn: Callable[[], torch.Tensor], device: torch.device, iters: int, warmup: int) -> tuple[float, torch.Tensor]:
    """Mean seconds per call of ``fn`` (no grad) after ``warmup`` calls, and its last output."""
    with torch.no_grad():
        for _ in range(warmup):
            out = fn()
        sync(device)
        start = time.perf_counter()
        for _ in range(iters):
            out = fn()
        sync(device)
    return (time.perf_counter() - start) / iters, out


def run(device: str, batch: int, size: int, iters: int, warmup: int, weights: str | None,
        compile_: bool) -> dict:
    """Crops/s of MUSIQ through pyiqa and the fast path, fp32 and bf16 (and compiled), with each variant's largest
    relative difference from pyiqa's fp32 scores."""
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
    return {'device': device_name(dev), 'batch': batch, 'size': size, 'iters': iters, 'torch': torch.__version__,
            'variants': results}


def run_guides(names: list[str], device: str, batch: int, size: int, iters: int, warmup: int,
               weights_dir: str | Sequence[str] | None) -> dict:
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
    return {'device': device_name(dev), 'batch': batch, 'size': size, 'iters': iters, 'torch': torch.__version__,
            'guides': results}


def build_parser() -> argparse.ArgumentParser:
    """The flags of ``nriqa-bench-scoring``."""
    parser = argparse.ArgumentParser(prog='nriqa-bench-scoring', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_device(parser)
    cli.add_batch_size(parser, default=60, help='crops per scoring call')
    parser.add_argument('--size', type=int, default=256, help='crop size in pixels (default: 256)')
    parser.add_argument('--iters', type=int, default=10, help='timed calls (default: 10)')
    parser.add_argument('--warmup', type=int, default=2, help='untimed calls first (default: 2)')
    parser.add_argument('--weights', metavar='FILE', help='a real MUSIQ checkpoint (default: random weights)')
    parser.add_argument('--compile', action='store_true', help='also time torch.compile of the fast path')
    parser.add_argument('--guides', nargs='+', metavar='METRIC',
                        help='time these NR metrics (pyiqa or custom, e.g. cnniqa_live niqe) instead of MUSIQ')
    cli.add_weights_dir(parser, help='--guides: extra folder(s) searched first for weight files')
    cli.add_output(parser, help='also write the results here (JSON)')
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``nriqa-bench-scoring``: print the table (and write ``-o``)."""
    args = build_parser().parse_args(argv)
    device = cli.resolve_device(args.device)
    if args.guides:
        result = run_guides(args.guides, device, args.batch_size, args.size, args.iters, args.warmup,
                            args.weights_dir)
        print(f'NR-IQA guides, {result["batch"]} crops of {result["size"]}² per call on {result["device"]}')
        print(f'{"metric":<20} {"score crops/s":>14} {"score+grad crops/s":>19}')
        for name, r in result['guides'].items():
            print(f'{name:<20} {r["score_crops_per_s"]:>14.1f} {r["grad_crops_per_s"]:>19.1f}')
    else:
        result = run(device, args.batch_size, args.size, args.iters, args.warmup, args.weights, args.compile)
        print(f'MUSIQ scoring, {result["batch"]} crops of {result["size"]}² per call on {result["device"]}')
        print(f'{"variant":<20} {"ms/call":>10} {"crops/s":>10} {"speed-up":>9} {"max rel diff":>13}')
        for name, r in result['variants'].items():
            print(f'{name:<20} {r["ms_per_call"]:>10.1f} {r["crops_per_s"]:>10.1f} {r["speedup"]:>8.2f}x '
                  f'{r["max_rel_diff"]:>13.2e}')
    if args.output:
        write_json(args.output, result)
    return 0


if __name__ == '__main__':
    sys.exit(main())
