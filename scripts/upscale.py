#!/usr/bin/env python
"""Super-resolve an image or a folder with a trained generator; outputs keep the input file names.

    python scripts/upscale.py -i photo.png -o out/ --model options/test/my_model.yml --scale 4 [--tile 256]
    python scripts/upscale.py -i lr_folder/ -o sr_folder/ --model net_g_latest.pth \
        --network-g '{"type": "RRDBNet", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_block": 23,
                     "num_grow_ch": 32, "scale": 4}'
    python scripts/upscale.py -i lr/ -o sr/ --model options/train/train_RRDB_AMO_FT.yml \
        --adapters experiments/train_RRDB_AMO_FT/models/net_g_lora_20000.pth --scale 4

Checkpoints: BasicSR files (``params_ema``, else ``params``), merged FT results (``net_g_latest.pth`` of an FT
run), or LoRA adapters + the base named in the FT option file. ``--tile`` bounds memory for large images;
``--bf16`` / ``--fp16`` autocast on CUDA. Existing outputs are overwritten atomically (temporary file + rename).
"""

from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), osp.pardir)))

import nriqa_basicsr  # noqa: E402,F401  (compat shims before basicsr)

# isort: split
import cv2  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from nriqa_basicsr.atomic import atomic_path  # noqa: E402
from nriqa_basicsr.inference import load_generator, upscale_image  # noqa: E402

_EXTS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-i', '--input', required=True, help='image file or folder')
    parser.add_argument('-o', '--output', required=True, help='output folder')
    parser.add_argument('--model', required=True, help='option file (.yml) or checkpoint (.pth)')
    parser.add_argument('--scale', type=int, required=True)
    parser.add_argument('--network-g', help='JSON network_g for a .pth checkpoint')
    parser.add_argument('--adapters', help="an FT run's net_g_lora_<iter>.pth (with the FT option file as --model)")
    parser.add_argument('--param-key', help='checkpoint key (default params_ema, falling back to params)')
    parser.add_argument('--tile', type=int, default=0, help='LR tile size (0: whole image)')
    parser.add_argument('--tile-pad', type=int, default=16)
    parser.add_argument('--device', help='cuda / cpu (default: cuda when available)')
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument('--bf16', action='store_true')
    precision.add_argument('--fp16', action='store_true')
    args = parser.parse_args(argv)
    if osp.isdir(args.input):
        files = sorted(osp.join(args.input, f) for f in os.listdir(args.input) if f.lower().endswith(_EXTS))
    elif osp.isfile(args.input):
        files = [args.input]
    else:
        files = []
    if not files:
        print(f'error: {args.input}: no input images', file=sys.stderr)
        return 1
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    amp = torch.bfloat16 if args.bf16 else (torch.float16 if args.fp16 else None)
    try:
        net = load_generator(args.model, json.loads(args.network_g) if args.network_g else None, args.param_key,
                             device, adapters=args.adapters)
    except (ValueError, FileNotFoundError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    os.makedirs(args.output, exist_ok=True)
    for path in tqdm(files, desc='upscaling', unit='img'):
        lr = cv2.imread(path, cv2.IMREAD_COLOR)
        if lr is None:
            print(f'error: {path}: unreadable image', file=sys.stderr)
            return 1
        sr = upscale_image(net, lr, args.scale, args.tile, args.tile_pad, amp)
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
