"""MultiGTDataset, its source/labels/score files, and the demo-data, scoring and LMDB scripts."""

import glob
import hashlib
import json
import os
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest
import torch
import yaml
from conftest import REPO_ROOT

from nriqa_basicsr.data.image_io import ImageReadError, decode_image
from nriqa_basicsr.data.labels import POSITIVE, LabelError, effective_labels
from nriqa_basicsr.data.lmdb import create_lmdb
from nriqa_basicsr.data.multigt_dataset import MultiGTDataset
from nriqa_basicsr.data.multigt_source import MultiGTLayoutError, MultiGTSource
from nriqa_basicsr.data.score_file import ScoreFileError, ScoreTable, load_score_table, save_score_table
from nriqa_basicsr.data.scoring import ResumeError, score_dataset
from nriqa_basicsr.demo.data import make_demo_data
from nriqa_basicsr.output_guard import owner_of

VARIANTS = ['original', '01', '02', '03', '04']


def _tree_hash(root):
    h = hashlib.sha256()
    for folder, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            h.update(osp.relpath(osp.join(folder, name), root).encode())
            with open(osp.join(folder, name), 'rb') as f:
                h.update(f.read())
    return h.hexdigest()


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('demo') / 'demo')
    make_demo_data(root, num_train=6, num_val=2, size=128, seed=3)
    return root


@pytest.fixture(scope='module')
def piqe_scores(demo, tmp_path_factory):
    from nriqa_basicsr.iqa import build_scorer

    source = MultiGTSource(osp.join(demo, 'train', 'images'), 'hggt')
    out = str(tmp_path_factory.mktemp('scores') / 'piqe.npz')
    score_dataset(source, {'piqe': build_scorer('piqe', device='cpu')}, out, batch_size=8, grid=(32, 64),
                  progress=False)
    return out


def _opt(demo, **kw):
    opt = {'name': 'demo', 'phase': 'train', 'scale': 4, 'layout': 'hggt', 'gt_size': 64,
           'dataroot_gt': osp.join(demo, 'train', 'images'), 'dataroot_label': osp.join(demo, 'train', 'labels'),
           'dataroot_lq': osp.join(demo, 'train', 'lq_x4'), 'use_hflip': False, 'use_rot': False,
           'report_counts': False}
    opt.update(kw)
    return {k: v for k, v in opt.items() if v is not None}


def test_demo_data_is_deterministic_and_labelled_synthetic(demo, tmp_path):
    again = str(tmp_path / 'again')
    make_demo_data(again, num_train=6, num_val=2, size=128, seed=3)
    assert _tree_hash(again) == _tree_hash(demo)
    assert 'Synthetic' in open(osp.join(demo, 'README.md')).read()
    for split, n in (('train', 6), ('val', 2)):
        for variant in VARIANTS:
            assert len(os.listdir(osp.join(demo, split, 'images', variant))) == n
        assert sorted(os.listdir(osp.join(demo, split, 'labels'))) == ['A', 'B', 'C']
        assert len(os.listdir(osp.join(demo, split, 'lq_x4'))) == n
    with pytest.raises(FileExistsError):
        make_demo_data(demo, num_train=6, num_val=2, size=128, seed=3)
    # --overwrite replaces the script's own output only (output_guard's marker beside it names the script)
    assert owner_of(again) == 'make_demo_data.py'
    make_demo_data(again, num_train=6, num_val=2, size=128, seed=3, overwrite=True)
    assert _tree_hash(again) == _tree_hash(demo)
    foreign = tmp_path / 'foreign'
    foreign.mkdir()
    (foreign / 'keep.txt').write_text('not demo data')
    with pytest.raises(ValueError, match='was not made by make_demo_data.py'):
        make_demo_data(str(foreign), num_train=6, num_val=2, size=128, seed=3, overwrite=True)
    assert os.listdir(foreign) == ['keep.txt']


def test_sample_layout_and_shared_crop(demo):
    ds = MultiGTDataset(_opt(demo))
    sample = ds[0]
    assert sample['gts'].shape == (5, 3, 64, 64) and sample['lq'].shape == (3, 16, 16)
    assert torch.equal(sample['gt'], sample['gts'][0])
    top, left = sample['crop'].tolist()
    assert top % 4 == 0 and left % 4 == 0
    name = sample['key']
    for k in range(5):
        full = cv2.imread(ds.source.path(name, k))[..., ::-1].astype(np.float32) / 255
        expected = torch.from_numpy(full[top:top + 64, left:left + 64].copy()).permute(2, 0, 1)
        assert torch.allclose(sample['gts'][k], expected)
    lq_full = cv2.imread(sample['lq_path'])[..., ::-1].astype(np.float32) / 255
    expected_lq = torch.from_numpy(lq_full[top // 4:top // 4 + 16, left // 4:left // 4 + 16].copy()).permute(2, 0, 1)
    assert torch.allclose(sample['lq'], expected_lq)


def test_labels_are_majority_votes_of_the_json_files(demo):
    ds = MultiGTDataset(_opt(demo))
    name = ds.groups[2]
    votes = []
    for annotator in 'ABC':
        with open(osp.join(demo, 'train', 'labels', annotator, f'{name}.json')) as f:
            record = json.load(f)
        votes.append([None] + [record[f'Picture_{k}']['Label'] for k in range(2, 6)])
    codes, counts = effective_labels(votes)
    assert ds[2]['labels'].tolist() == codes and ds[2]['label_counts'].tolist() == counts


def test_flips_and_rotations_are_shared(demo):
    ds = MultiGTDataset(_opt(demo, use_hflip=True, use_rot=True, lq_mode='bicubic', dataroot_lq=None))
    for i in range(6):
        s = ds[i % len(ds)]
        # the LQ is the bicubic downscale of the (augmented) original crop: same geometry
        from basicsr.utils.matlab_functions import imresize
        gt = s['gts'][0].permute(1, 2, 0).numpy()
        assert torch.allclose(s['lq'], torch.from_numpy(np.clip(imresize(gt, 0.25), 0, 1)).permute(2, 0, 1),
                              atol=1e-5)


def test_disk_and_lmdb_give_identical_samples(demo, tmp_path):
    lmdb_root = create_lmdb(MultiGTSource(osp.join(demo, 'train', 'images'), 'hggt'), str(tmp_path / 'lmdb'),
                            lq_root=osp.join(demo, 'train', 'lq_x4'), progress=False)
    disk = MultiGTDataset(_opt(demo, use_hflip=True, use_rot=True))
    lmdb = MultiGTDataset(_opt(demo, use_hflip=True, use_rot=True, dataroot_gt=lmdb_root,
                               io_backend={'type': 'lmdb'}, dataroot_lq=osp.join(lmdb_root, 'lq.lmdb')))
    assert disk.groups == lmdb.groups
    for i in range(len(disk)):
        a, b = disk[i], lmdb[i]
        for key in ('gts', 'lq', 'labels', 'crop'):
            assert torch.equal(a[key], b[key]), key


def test_epochs_draw_new_crops_with_basicsr_worker_seeding(demo):
    from functools import partial

    from basicsr.data import worker_init_fn

    ds = MultiGTDataset(_opt(demo))
    init = partial(worker_init_fn, num_workers=2, rank=0, seed=0)  # reseeds numpy/random identically per epoch
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2, worker_init_fn=init)
    epochs = [torch.cat([b['crop'] for b in loader]) for _ in range(2)]
    assert not torch.equal(epochs[0], epochs[1])


def test_drop_without_positive(demo):
    full = MultiGTDataset(_opt(demo))
    kept = MultiGTDataset(_opt(demo, drop_without_positive=True))
    assert len(kept) == int((full.labels == POSITIVE).any(1).sum())
    with pytest.raises(ValueError, match='drop_without_positive needs human labels'):
        MultiGTDataset(_opt(demo, dataroot_label=None, drop_without_positive=True))


def test_without_labels_codes_are_none(demo):
    ds = MultiGTDataset(_opt(demo, dataroot_label=None))
    assert ds[0]['labels'].tolist() == [-1] * 5


def test_validation_items_are_whole_and_mod_cropped(demo):
    val = osp.join(demo, 'val')
    ds = MultiGTDataset(_opt(demo, phase='val', dataroot_gt=osp.join(val, 'images'),
                             dataroot_label=osp.join(val, 'labels'), dataroot_lq=osp.join(val, 'lq_x4')))
    s = ds[0]
    assert s['gts'].shape == (5, 3, 128, 128) and s['lq'].shape == (3, 32, 32)


def test_scores_and_grid_scores_follow_the_score_file(demo, piqe_scores):
    table = load_score_table(piqe_scores)
    assert table.meta['metrics']['piqe']['lower_better'] is True
    ds = MultiGTDataset(_opt(demo, score_file=piqe_scores))
    index = table.index()
    for i in range(len(ds)):
        s = ds[i]
        row = index[s['key']]
        assert torch.allclose(s['scores'], torch.from_numpy(table.scores['piqe'][row]))
        top, left = s['crop'].tolist()
        assert top % 32 == 0 and left % 32 == 0  # crops snapped to the grid
        assert torch.allclose(s['grid_scores'], torch.from_numpy(table.grids['piqe'][row][:, top // 32, left // 32]))


def test_grid_scores_are_the_scores_of_those_crops(demo, piqe_scores):
    from nriqa_basicsr.iqa import build_scorer

    table = load_score_table(piqe_scores)
    ds = MultiGTDataset(_opt(demo, score_file=piqe_scores))
    s = ds[1]
    with torch.no_grad():
        direct = build_scorer('piqe', device='cpu')(s['gts'])
    assert torch.allclose(direct, s['grid_scores'], atol=1e-3)
    assert table.grids['piqe'].shape == (6, 5, 3, 3)


def test_zscored_ensemble_from_score_file(demo, piqe_scores, tmp_path):
    table = load_score_table(piqe_scores)
    table.scores['other'] = table.scores['piqe'] * 2 + 5
    table.grids['other'] = table.grids['piqe'] * 2 + 5
    path = str(tmp_path / 'two.npz')
    save_score_table(path, table)
    ds = MultiGTDataset(_opt(demo, score_file=path, score_metrics={'piqe': 1.0, 'other': 1.0}))
    z = (table.scores['piqe'] - table.scores['piqe'].mean()) / table.scores['piqe'].std(ddof=1)
    row = table.index()[ds.groups[0]]
    assert np.allclose(ds.scores[0], 2 * z[row], atol=1e-4)  # both metrics give the same z-scores


def test_foreign_stale_and_broken_score_files_are_refused(demo, piqe_scores, tmp_path):
    other = str(tmp_path / 'other')
    make_demo_data(other, num_train=6, num_val=2, size=128, seed=11)
    with pytest.raises(ScoreFileError, match='belongs to another dataset'):
        MultiGTDataset(_opt(other, score_file=piqe_scores))
    stale = str(tmp_path / 'stale')
    shutil.copytree(demo, stale)
    name = sorted(os.listdir(osp.join(stale, 'train', 'images', 'original')))[0][:-4]
    for k, variant in enumerate(VARIANTS):
        os.remove(osp.join(stale, 'train', 'images', variant, f'{name}.png' if k == 0 else f'{name}_{variant}.png'))
    with pytest.raises(ScoreFileError, match='different listing of this dataset.*stale'):
        MultiGTDataset(_opt(stale, score_file=piqe_scores, dataroot_label=None))
    table = load_score_table(piqe_scores)
    keep = [i for i, g in enumerate(table.groups) if g != table.groups[0]]
    partial = ScoreTable(table.meta, [table.groups[i] for i in keep], {'piqe': table.scores['piqe'][keep]})
    save_score_table(str(tmp_path / 'missing.npz'), partial)
    with pytest.raises(ScoreFileError, match='1 of 6 groups have no scores'):
        MultiGTDataset(_opt(demo, score_file=str(tmp_path / 'missing.npz')))
    with pytest.raises(ScoreFileError, match='no such file'):
        MultiGTDataset(_opt(demo, score_file=str(tmp_path / 'nope.npz')))
    (tmp_path / 'trunc.npz').write_bytes(open(piqe_scores, 'rb').read()[:200])
    with pytest.raises(ScoreFileError, match='not a readable score file'):
        load_score_table(str(tmp_path / 'trunc.npz'))
    np.savez(tmp_path / 'pickled.npz', meta=np.array([{'a': 1}], dtype=object), groups=np.array(['x']))
    with pytest.raises(ScoreFileError, match='needs pickle'):
        load_score_table(str(tmp_path / 'pickled.npz'))
    with pytest.raises(ScoreFileError, match="no scores for \\['musiq'\\]"):
        MultiGTDataset(_opt(demo, score_file=piqe_scores, score_metrics=['musiq']))
    table.scores['piqe'][2, 3] = np.nan
    save_score_table(str(tmp_path / 'nan.npz'), table)
    message = f'"piqe" has non-finite scores for 1 group\\(s\\), e.g. "{table.groups[2]}"'
    with pytest.raises(ScoreFileError, match=message):
        MultiGTDataset(_opt(demo, score_file=str(tmp_path / 'nan.npz')))
    with pytest.raises(ScoreFileError, match='grid is for 64px crops but gt_size is 96'):
        MultiGTDataset(_opt(demo, score_file=piqe_scores, gt_size=96))


def test_score_gts_resumes_without_rescoring(demo, piqe_scores, tmp_path, monkeypatch):
    from nriqa_basicsr.iqa import build_scorer

    source = MultiGTSource(osp.join(demo, 'train', 'images'), 'hggt')
    scorer = build_scorer('piqe', device='cpu')
    out = str(tmp_path / 'resumed.npz')
    reference = load_score_table(piqe_scores)
    # a run interrupted after two groups, the second line torn mid-write
    header = dict(reference.meta)
    records = [{'group': g, 'scores': {'piqe': reference.scores['piqe'][i].tolist()},
                'grid': {'piqe': reference.grids['piqe'][i].tolist()}} for i, g in enumerate(reference.groups[:2])]
    with open(out + '.partial.jsonl', 'w') as f:
        f.write(json.dumps(header) + '\n' + json.dumps(records[0]) + '\n' + json.dumps(records[1])[:50])
    calls = []
    original = type(scorer).forward
    monkeypatch.setattr(type(scorer), 'forward', lambda self, x, ref=None: calls.append(x.shape[0])
                        or original(self, x, ref))
    table = score_dataset(source, {'piqe': scorer}, out, batch_size=100, grid=(32, 64), progress=False)
    assert len(calls) == 2 * 5  # 5 groups left, one image pass + one grid pass each
    assert table.groups == reference.groups
    assert np.allclose(table.scores['piqe'], reference.scores['piqe'], atol=1e-5)
    assert not osp.exists(out + '.partial.jsonl')
    with open(out + '.partial.jsonl', 'w') as f:
        f.write(json.dumps(dict(header, grid={'stride': 16, 'crop': 64})) + '\n')
    with pytest.raises(ResumeError, match='different metrics, variants, dataset or grid'):
        score_dataset(source, {'piqe': scorer}, out, grid=(32, 64), progress=False)


def test_score_file_records_weight_file_hashes(demo, musiq_weights, tmp_path):
    from nriqa_basicsr.iqa import build_scorer

    source = MultiGTSource(osp.join(demo, 'val', 'images'), 'hggt')
    scorer = build_scorer('musiq', device='cpu', weights_dir=osp.dirname(musiq_weights))
    table = score_dataset(source, {'musiq': scorer}, str(tmp_path / 'm.npz'), progress=False)
    files = table.meta['metrics']['musiq']['weight_files']
    expected = hashlib.sha256(open(musiq_weights, 'rb').read()).hexdigest()
    assert files == {'musiq_koniq_ckpt-e95806b9.pth': expected}
    assert table.scores['musiq'].shape == (2, 5) and np.isfinite(table.scores['musiq']).all()


def test_interrupted_lmdb_build_leaves_nothing(demo, tmp_path, monkeypatch):
    import nriqa_basicsr.data.lmdb as tool

    source = MultiGTSource(osp.join(demo, 'train', 'images'), 'hggt')
    calls = []

    def failing_pack(path, items, desc, progress):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(path, items, desc, progress)

    original = tool._pack
    monkeypatch.setattr(tool, '_pack', failing_pack)
    with pytest.raises(KeyboardInterrupt):
        tool.create_lmdb(source, str(tmp_path / 'out'), progress=False)
    assert os.listdir(tmp_path) == []
    os.makedirs(tmp_path / 'existing')
    with pytest.raises(FileExistsError):
        tool.create_lmdb(source, str(tmp_path / 'existing'), progress=False)
    assert os.listdir(tmp_path / 'existing') == []


# ------------------------------------------------------------------------------------------------ bad inputs
def _copy(demo, tmp_path):
    root = str(tmp_path / 'copy')
    shutil.copytree(demo, root)
    return root


def test_missing_variant_file_is_named(demo, tmp_path):
    root = _copy(demo, tmp_path)
    victim = sorted(os.listdir(osp.join(root, 'train', 'images', '03')))[0]
    os.remove(osp.join(root, 'train', 'images', '03', victim))
    with pytest.raises(MultiGTLayoutError, match=f'missing 1 variant file.*"{victim[:-4]}\\.\\*"'):
        MultiGTDataset(_opt(root))


def test_variants_of_different_sizes_are_refused(demo, tmp_path):
    root = _copy(demo, tmp_path)
    ds = MultiGTDataset(_opt(root))
    path = ds.source.path(ds.groups[0], 2)
    cv2.imwrite(path, cv2.imread(path)[:120])
    with pytest.raises(MultiGTLayoutError, match=f'group "{ds.groups[0]}".*variants differ in size.*02 128x120'):
        ds[0]


def test_crop_larger_than_image(demo):
    with pytest.raises(MultiGTLayoutError, match='smaller than gt_size 256'):
        MultiGTDataset(_opt(demo, gt_size=256))[0]


def test_paired_lq_of_wrong_size(demo, tmp_path):
    root = _copy(demo, tmp_path)
    ds = MultiGTDataset(_opt(root))
    lq = osp.join(root, 'train', 'lq_x4', f'{ds.groups[0]}.png')
    cv2.imwrite(lq, cv2.imread(lq)[:30])
    with pytest.raises(MultiGTLayoutError, match='LQ is 32x30 .* must be 32x32'):
        ds[0]


@pytest.mark.parametrize('content, match', [
    (None, 'label file missing'),
    ('{not json', 'not a readable JSON label file'),
    ({'Picture_1': {'File': 'original', 'Label': None}}, "missing or malformed \\['Picture_2'"),
    ('unknown', "has label 'Excellent'"),
])
def test_label_file_problems_name_the_file(demo, tmp_path, content, match):
    root = _copy(demo, tmp_path)
    name = sorted(os.listdir(osp.join(root, 'train', 'labels', 'B')))[0]
    path = osp.join(root, 'train', 'labels', 'B', name)
    if content is None:
        os.remove(path)
    elif content == 'unknown':
        record = json.load(open(path))
        record['Picture_3']['Label'] = 'Excellent'
        json.dump(record, open(path, 'w'))
    else:
        with open(path, 'w') as f:
            f.write(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(LabelError, match=match) as info:
        MultiGTDataset(_opt(root))
    assert path in str(info.value)


def test_missing_lmdb_key_is_named(demo, tmp_path):
    lmdb_root = create_lmdb(MultiGTSource(osp.join(demo, 'train', 'images'), 'hggt'), str(tmp_path / 'lmdb'),
                            progress=False)
    meta = osp.join(lmdb_root, '02.lmdb', 'meta_info.txt')
    lines = open(meta).read().splitlines()
    open(meta, 'w').write('\n'.join(lines[1:]) + '\n')
    with pytest.raises(MultiGTLayoutError, match='02.lmdb: 1 group\\(s\\) have no key'):
        MultiGTDataset(_opt(demo, dataroot_gt=lmdb_root, io_backend={'type': 'lmdb'}, lq_mode='bicubic',
                            dataroot_lq=None))


def test_image_conversions_and_refusals():
    rgb = (np.random.default_rng(0).random((8, 8, 3)) * 255).astype(np.uint8)
    grey = rgb[..., 0]
    ok, buf = cv2.imencode('.png', grey)
    assert np.allclose(decode_image(buf.tobytes(), 'g.png'), np.repeat(grey[..., None], 3, 2) / 255)
    deep = (rgb.astype(np.uint16) * 257)
    ok, buf = cv2.imencode('.png', deep)
    assert np.allclose(decode_image(buf.tobytes(), 'd.png'), rgb / 255, atol=1e-6)
    opaque = np.dstack([rgb, np.full((8, 8), 255, np.uint8)])
    ok, buf = cv2.imencode('.png', opaque)
    assert np.allclose(decode_image(buf.tobytes(), 'o.png'), rgb / 255)
    opaque[0, 0, 3] = 10
    ok, buf = cv2.imencode('.png', opaque)
    with pytest.raises(ImageReadError, match='t.png: has a non-opaque alpha channel'):
        decode_image(buf.tobytes(), 't.png')
    with pytest.raises(ImageReadError, match='x.png: cannot be decoded'):
        decode_image(buf.tobytes()[:40], 'x.png')


def test_realesrgan_mode_gives_kernels_and_degradation_runs(demo):
    from nriqa_basicsr.data.degradation import degrade_realesrgan

    ds = MultiGTDataset(_opt(demo, lq_mode='realesrgan', dataroot_lq=None, kernel_list2=['iso'], kernel_prob2=[1]))
    batch = torch.utils.data.default_collate([ds[i] for i in range(3)])
    assert 'lq' not in batch
    assert batch['kernel1'].shape == (3, 21, 21) and batch['sinc_kernel'].shape == (3, 21, 21)
    assert torch.allclose(batch['kernel1'].sum((1, 2)), torch.ones(3), atol=1e-4)
    torch.manual_seed(0)
    lq = degrade_realesrgan(batch['gt'], batch['kernel1'], batch['sinc_kernel'], {}, 4, kernel2=batch['kernel2'],
                            generator=torch.Generator().manual_seed(0))
    assert lq.shape == (3, 3, 16, 16) and not lq.requires_grad
    assert lq.min() >= 0 and lq.max() <= 1 and torch.allclose(lq * 255, (lq * 255).round(), atol=1e-4)



def test_realesrgan_x4plus_degradation_of_small_crops():
    """Real-ESRGAN's own settings down-scale to 0.15 and then 0.3/4 of the size before a 21-tap blur: a 128 px
    (or smaller) GT crop used to fail there; it is now reflected out, degraded and cut back to its LR size."""
    from nriqa_basicsr.data.degradation import REALESRGAN_X4PLUS, KernelSampler, degrade_realesrgan

    sampler = KernelSampler(REALESRGAN_X4PLUS)
    for seed in range(12):
        k = sampler.sample(np.random.default_rng(seed))
        for size in (32, 128):
            gt = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(seed))
            torch.manual_seed(seed)
            lq = degrade_realesrgan(gt, k['kernel1'][None].repeat(2, 1, 1), k['sinc_kernel'][None].repeat(2, 1, 1),
                                    REALESRGAN_X4PLUS, 4, kernel2=k['kernel2'][None].repeat(2, 1, 1),
                                    generator=torch.Generator().manual_seed(seed))
            assert lq.shape == (2, 3, size // 4, size // 4)
            assert lq.min() >= 0 and lq.max() <= 1

FRAGMENTS = sorted(glob.glob(osp.join(REPO_ROOT, 'options', 'train', 'gt_selection', '*.yml')))


def test_every_policy_has_a_fragment():
    from nriqa_basicsr.data.selection import POLICIES

    assert sorted(osp.basename(p)[:-4] for p in FRAGMENTS) == sorted(POLICIES)


@pytest.mark.parametrize('path', FRAGMENTS, ids=osp.basename)
def test_policy_fragment_drives_dataset_and_selection(path, demo, piqe_scores):
    """Each fragment, pointed at the demo data, passes start-up checks, loads, and selects valid GTs."""
    from basicsr.utils.options import ordered_yaml

    from nriqa_basicsr.data.labels import POSITIVE
    from nriqa_basicsr.data.selection import parse_selection_options, select
    from nriqa_basicsr.iqa import build_scorer
    from nriqa_basicsr.options import prepare_options

    with open(path) as f:
        opt = yaml.load(f, Loader=ordered_yaml()[0])
    train, sel = dict(opt['datasets']['train']), dict(opt['train']['gt_selection'])
    train.update(dataroot_gt=osp.join(demo, 'train', 'images'), dataroot_label=osp.join(demo, 'train', 'labels'),
                 gt_size=64, phase='train', scale=4, report_counts=False)
    if 'score_file' in train:
        train['score_file'] = piqe_scores  # piqe with a 64 px grid instead of MUSIQ (offline)
    if 'metrics' in sel:
        sel['metrics'] = {'piqe': 1.0}
    prepare_options({'scale': 4, 'datasets': {'train': train}, 'train': {'gt_selection': sel}})
    config, problems = parse_selection_options(sel)
    assert not problems
    ds = MultiGTDataset(train)
    batch = torch.utils.data.default_collate([ds[i] for i in range(min(4, len(ds)))])
    b, k = batch['gts'].shape[:2]
    scores = {'sma': batch.get('scores'), 'smp': batch.get('scores'), 'amo_cached': batch.get('grid_scores')}
    if config.policy == 'amo':
        with torch.no_grad():
            scores['amo'] = build_scorer('piqe', device='cpu')(batch['gts'].flatten(0, 1)).view(b, k)
    chosen = select(config.policy, labels=batch['labels'], scores=scores.get(config.policy), tau=config.tau,
                    generator=torch.Generator().manual_seed(0), include_original=config.include_original,
                    exclude_negatives=config.exclude_negatives, num_variants=k)
    assert chosen.shape == (b,) and ((chosen >= 0) & (chosen < k)).all()
    if config.policy in ('upos', 'smp'):
        picked = batch['labels'][torch.arange(b), chosen]
        assert ((picked == POSITIVE) | ((chosen == 0) & ~(batch['labels'] == POSITIVE).any(1))).all()
    if config.policy in ('amo', 'amo_cached'):
        assert torch.equal(chosen, scores[config.policy].argmax(1))


def test_amo_cached_needs_a_grid_at_start_up(demo, piqe_scores, tmp_path):
    from nriqa_basicsr.options import OptionsError, prepare_options

    table = load_score_table(piqe_scores)
    save_score_table(str(tmp_path / 'nogrid.npz'), ScoreTable(dict(table.meta, grid=None), table.groups, table.scores))
    opt = {'scale': 4, 'datasets': {'train': {'type': 'MultiGTDataset', 'layout': 'hggt', 'gt_size': 64,
                                              'dataroot_gt': osp.join(demo, 'train', 'images'),
                                              'score_file': str(tmp_path / 'nogrid.npz')}},
           'train': {'gt_selection': {'policy': 'amo_cached'}}}
    with pytest.raises(OptionsError, match='has no score grid, which policy "amo_cached" needs; rescore with '
                                           '--grid STRIDE --crop 64'):
        prepare_options(opt)
