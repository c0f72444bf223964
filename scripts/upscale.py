#!/usr/bin/env python
"""Super-resolve an image or a folder with a trained generator; outputs keep the input file names.

    python scripts/upscale.py -i photo.png -o out/ --model RealESRGAN_x4plus.pth [--tile 256]
    python scripts/upscale.py -i photo.png -o out/ --model options/test/my_model.yml --scale 4
    python scripts/upscale.py -i lr_folder/ -o sr_folder/ --model net_g_latest.pth \
        --network-g '{"type": "RRDBNet", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_block": 23,
                     "num_grow_ch": 32, "scale": 4}'
    python scripts/upscale.py -i lr/ -o sr/ --model options/train/train_RRDB_AMO_FT.yml \
        --adapters experiments/train_RRDB_AMO_FT/models/net_g_lora_20000.pth --scale 4

Checkpoints: BasicSR files (``params_ema``, else ``params``, else a bare state dict), merged FT results
(``net_g_latest.pth`` of an FT run), or LoRA adapters + the base named in the FT option file. An FT option file
without ``--adapters`` uses its run's merged ``net_g_latest.pth`` or newest adapters, never the untuned base (an
error says what to pass when the run left neither). Without ``--network-g`` the architecture of a ``.pth`` is read
from its weights (RRDBNet / ESRGAN, SRVGGNetCompact,
MSRResNet, EDSR, RCAN, SwinIR; an option file asks for it with ``network_g: {type: auto}``), and ``--scale``
defaults to the network's own factor (a different ``--scale`` is an error). ``--tile`` bounds memory for large images;
``--bf16`` / ``--fp16`` autocast on CUDA. Outputs are written atomically (temporary file + rename);
existing ones are refused unless ``--overwrite`` (and then only in a folder upscale.py made), and an output
that is an input is always refused.
"""

from __future__ import annotations

import argparse
import json
import os.path as osp
import sys

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), osp.pardir)))

import nriqa_basicsr  # noqa: E402,F401  (compat shims before basicsr)

# isort: split
import cv2  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from nriqa_basicsr.atomic import atomic_path  # noqa: E402
from nriqa_basicsr.best_checkpoint import resolve_model_spec  # noqa: E402
from nriqa_basicsr.data.image_io import list_images  # noqa: E402
from nriqa_basicsr.inference import checked_scale, load_generator_and_arch, upscale_image  # noqa: E402
from nriqa_basicsr.output_guard import OutputPathError, claim_output_dir, guard_output_files  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-i', '--input', required=True, help='image file or folder')
    parser.add_argument('-o', '--output', required=True, help='output folder')
    parser.add_argument('--model', required=True, help='option file (.yml), checkpoint (.pth), or a training run '
                        'experiments/NAME[@best|@best2|@latest] (default best: its val.best checkpoint)')
    parser.add_argument('--scale', type=int, help="checked against the network's factor (default: that factor)")
    parser.add_argument('--network-g', help='JSON network_g for a .pth checkpoint (default: read from the weights)')
    parser.add_argument('--adapters', help="an FT run's net_g_lora_<iter>.pth (with the FT option file as --model)")
    parser.add_argument('--param-key', help='checkpoint key (default params_ema, falling back to params)')
    parser.add_argument('--tile', type=int, default=0, help='LR tile size (0: whole image)')
    parser.add_argument('--tile-pad', type=int, default=16)
    parser.add_argument('--device', help='cuda / cpu (default: cuda when available)')
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument('--bf16', action='store_true')
    precision.add_argument('--fp16', action='store_true')
    parser.add_argument('--overwrite', action='store_true',
                        help="replace existing outputs (only in a folder upscale.py made; never the inputs)")
    args = parser.parse_args(argv)
    if osp.isdir(args.input):
        files = [osp.join(args.input, f) for f in list_images(args.input)]
    elif osp.isfile(args.input):
        files = [args.input]
    else:
        files = []
    if not files:
        print(f'error: {args.input}: no input images', file=sys.stderr)
        return 1
    try:  # before the model is loaded: -o lr/ with -i lr/ would replace the inputs
        guard_output_files([osp.join(args.output, osp.basename(p)) for p in files], 'upscale.py', files,
                           args.overwrite, folder=args.output)
    except OutputPathError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    amp = torch.bfloat16 if args.bf16 else (torch.float16 if args.fp16 else None)
    try:
        model, run_arch = resolve_model_spec(args.model)  # experiments/<name>[@best|@best<k>|@latest]
        net, network_g = load_generator_and_arch(model, json.loads(args.network_g) if args.network_g else run_arch,
                                                 args.param_key, device, adapters=args.adapters)
        scale = checked_scale(network_g, args.scale)
    except (ValueError, KeyError, FileNotFoundError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    claim_output_dir(args.output, 'upscale.py')
    for path in tqdm(files, desc='upscaling', unit='img'):
        lr = cv2.imread(path, cv2.IMREAD_COLOR)
        if lr is None:
            print(f'error: {path}: unreadable image', file=sys.stderr)
            return 1
        sr = upscale_image(net, lr, scale, args.tile, args.tile_pad, amp)
        name = osp.basename(path)
        target = osp.join(args.output, name)
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
