"""Super-resolve an image or a folder with a trained generator; outputs keep the input file names.

    nriqa-upscale -i photo.png -o out/ --model RealESRGAN_x4plus.pth [--tile 256]
    nriqa-upscale -i photo.png -o out/ --model options/test/my_model.yml --scale 4
    nriqa-upscale -i lr_folder/ -o sr_folder/ --model net_g_latest.pth --network-g RRDBNet --scale 4
    nriqa-upscale -i lr_folder/ -o sr_folder/ --model net_g_latest.pth \
        --network-g '{"type": "RRDBNet", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_block": 23,
                     "num_grow_ch": 32, "scale": 4}'
    nriqa-upscale -i lr/ -o sr/ --model options/train/train_RRDB_AMO_FT.yml \
        --adapters experiments/train_RRDB_AMO_FT/models/net_g_lora_20000.pth --scale 4

Checkpoints: BasicSR files (``params_ema``, else ``params``, else a bare state dict), merged FT results
(``net_g_latest.pth`` of an FT run), or LoRA adapters + the base named in the FT option file. An FT option file
without ``--adapters`` uses its run's merged ``net_g_latest.pth`` or newest adapters, never the untuned base (an
error says what to pass when the run left neither). Without ``--network-g`` the architecture of a ``.pth`` is read
from its weights (RRDBNet / ESRGAN, SRVGGNetCompact, MSRResNet, EDSR, RCAN, SwinIR; an option file asks for it
with ``network_g: {type: auto}``); ``--network-g`` takes an arch name with its stock defaults (needs ``--scale``)
or a JSON ``network_g``. ``--scale`` defaults to the network's own factor (a different ``--scale`` is an error).
``--tile`` bounds memory for large images; ``--bf16`` / ``--fp16`` autocast on CUDA. Outputs are written
atomically (temporary file + rename); existing ones are refused unless ``--overwrite`` (and then only in a
folder upscale made), and an output that is an input is always refused.
"""

from __future__ import annotations

import argparse
import os.path as osp
import sys
from collections.abc import Sequence

import cv2
import torch
from tqdm import tqdm

from nriqa_basicsr import cli
from nriqa_basicsr.atomic import atomic_path
from nriqa_basicsr.best_checkpoint import resolve_model_spec
from nriqa_basicsr.data.image_io import list_images
from nriqa_basicsr.inference import checked_scale, load_generator_and_arch, upscale_image
from nriqa_basicsr.output_guard import OutputPathError, claim_output_dir, guard_output_files

__all__ = ['TOOL', 'build_parser', 'input_files', 'main']

TOOL = 'upscale.py'  # the owner named in output_guard's marker (earlier outputs carry this name)


def build_parser() -> argparse.ArgumentParser:
    """The flags of ``nriqa-upscale``."""
    parser = argparse.ArgumentParser(prog='nriqa-upscale', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-i', '--input', required=True, help='image file or folder')
    cli.add_output(parser, required=True, help='output folder (file names as the inputs)')
    parser.add_argument('--model', required=True, help='option file (.yml), checkpoint (.pth), or a training run '
                        'experiments/NAME[@best|@best2|@latest] (default best: its val.best checkpoint)')
    cli.add_scale(parser, help="upscaling factor; checked against the network's (default: the network's)")
    cli.add_network_g(parser)
    parser.add_argument('--adapters', help="an FT run's net_g_lora_<iter>.pth (with the FT option file as --model)")
    cli.add_param_key(parser)
    cli.add_tile(parser)
    cli.add_device(parser)
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument('--bf16', action='store_true', help='bf16 autocast on CUDA')
    precision.add_argument('--fp16', action='store_true', help='fp16 autocast on CUDA')
    cli.add_overwrite(parser, help='replace existing outputs (only in a folder upscale made; never the inputs)')
    cli.add_no_progress(parser)
    return parser


def input_files(path: str) -> list[str]:
    """The images of ``-i``: a folder's images (sorted) or one file; empty when there are none."""
    if osp.isdir(path):
        return [osp.join(path, f) for f in list_images(path)]
    return [path] if osp.isfile(path) else []


def main(argv: Sequence[str] | None = None) -> int:
    """``nriqa-upscale``; 1 on a bad input, model or output (the message names it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:  # a malformed flag is a usage error, before anything is read
        network_g = cli.parse_network_g(args.network_g, args.scale) if args.network_g else None
    except ValueError as exc:
        parser.error(str(exc))
    files = input_files(args.input)
    if not files:
        print(f'error: -i {args.input}: no input images', file=sys.stderr)
        return 1
    try:  # before the model is loaded: -o lr/ with -i lr/ would replace the inputs
        guard_output_files([osp.join(args.output, osp.basename(p)) for p in files], TOOL, files,
                           args.overwrite, folder=args.output)
    except OutputPathError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    device = cli.resolve_device(args.device)
    amp = torch.bfloat16 if args.bf16 else (torch.float16 if args.fp16 else None)
    try:
        model, run_arch = resolve_model_spec(args.model)  # experiments/<name>[@best|@best<k>|@latest]
        net, network_g = load_generator_and_arch(model, network_g or run_arch, args.param_key, device,
                                                 adapters=args.adapters)
        scale = checked_scale(network_g, args.scale)
    except (ValueError, KeyError, FileNotFoundError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    claim_output_dir(args.output, TOOL)
    for path in tqdm(files, desc='upscaling', unit='img', disable=args.no_progress):
        lr = cv2.imread(path, cv2.IMREAD_COLOR)
        if lr is None:
            print(f'error: {path}: unreadable image', file=sys.stderr)
            return 1
        sr = upscale_image(net, lr, scale, args.tile, args.tile_pad, amp)
        target = osp.join(args.output, osp.basename(path))
        try:
            with atomic_path(target) as tmp:
                if not cv2.imwrite(tmp, sr):
                    raise OSError(f'cannot write {target}')
        except OSError as exc:
            print(f'error: {exc}', file=sys.stderr)
            return 1
    print(f'wrote {len(files)} image(s) to {args.output}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
