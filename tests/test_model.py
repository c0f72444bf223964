"""NRIQAModel: GT selection inside training, NR-IQA loss, GAN-optional, LoRA FT, checkpoints and resume."""

import copy
import os
import os.path as osp
import re
import subprocess
import sys
import uuid

import pytest
import torch
import yaml
from conftest import REPO_ROOT

from nriqa_basicsr.data.labels import POSITIVE
from nriqa_basicsr.data.multigt_dataset import MultiGTDataset
from nriqa_basicsr.data.selection import POLICIES, selection_probabilities
from nriqa_basicsr.iqa import build_scorer

NET_G = {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4,
         'scale': 4}


def _dataset_opt(root, scores=None, **kw):
    opt = {'name': 'demo', 'type': 'MultiGTDataset', 'layout': 'hggt', 'gt_size': 64,
           'dataroot_gt': osp.join(root, 'train', 'images'), 'dataroot_label': osp.join(root, 'train', 'labels'),
           'dataroot_lq': osp.join(root, 'train', 'lq_x4'), 'num_worker_per_gpu': 0, 'batch_size_per_gpu': 3,
           'dataset_enlarge_ratio': 1, 'prefetch_mode': None, 'report_counts': False}
    if scores:
        opt['score_file'] = scores
    opt.update(kw)
    return opt


def _selection(policy):
    sel = {'policy': policy}
    if policy == 'amo':
        sel['metrics'] = {'piqe': 1.0}
    if policy in ('sma', 'smp'):
        sel['tau'] = 5.0
    return sel


def _model_opt(root, scores, policy, tmp, gan=False, lora=None, pretrain=None, iqa=False):
    opt = {
        'name': 'inproc', 'model_type': 'NRIQAModel', 'scale': 4, 'num_gpu': 0, 'manual_seed': 0, 'is_train': True,
        'dist': False, 'rank': 0, 'world_size': 1, 'auto_resume': False,
        'datasets': {'train': dict(_dataset_opt(root, scores), phase='train', scale=4)},
        'network_g': dict(NET_G),
        'path': {'pretrain_network_g': pretrain, 'param_key_g': 'params_ema', 'strict_load_g': True,
                 'resume_state': None, 'models': str(tmp / 'models'), 'training_states': str(tmp / 'states'),
                 'experiments_root': str(tmp)},
        'train': {'ema_decay': 0.9, 'optim_g': {'type': 'Adam', 'lr': 1e-3, 'betas': [0.9, 0.99]},
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5}, 'total_iter': 10,
                  'warmup_iter': -1, 'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'},
                  'gt_selection': _selection(policy)},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': False},
    }
    if gan:
        opt['network_d'] = {'type': 'UNetDiscriminatorSN', 'num_in_ch': 3, 'num_feat': 8, 'skip_connection': True}
        opt['train']['optim_d'] = {'type': 'Adam', 'lr': 1e-3, 'betas': [0.9, 0.99]}
        opt['train']['gan_opt'] = {'type': 'GANLoss', 'gan_type': 'vanilla', 'loss_weight': 0.1}
    if lora:
        opt['network_g_lora'] = lora
    if iqa:
        opt['train']['iqa_opt'] = {'type': 'NRIQALoss', 'metrics': {'musiq': 1.0}, 'loss_weight': 0.01,
                                   'normalize': True}
    os.makedirs(opt['path']['models'], exist_ok=True)
    os.makedirs(opt['path']['training_states'], exist_ok=True)
    return opt


def _build(opt):
    from basicsr.models import build_model

    from nriqa_basicsr.options import prepare_options

    torch.manual_seed(0)  # networks independent of test order
    prepare_options(opt)
    return build_model(copy.deepcopy(opt))


def _batch(root, scores, n=3, **kw):
    ds = MultiGTDataset(dict(_dataset_opt(root, scores, **kw), phase='train', scale=4))
    return torch.utils.data.default_collate([ds[i] for i in range(n)])


@pytest.mark.parametrize('policy', POLICIES)
def test_selected_gt_reaching_the_loss_matches_the_policy(data, tmp_path, policy):
    root, scores = data
    model = _build(_model_opt(root, scores, policy, tmp_path))
    batch = _batch(root, scores)
    model.feed_data(batch)
    chosen, labels = model.selected, batch['labels']
    b = torch.arange(len(chosen))
    assert torch.equal(model.gt, batch['gts'][b, chosen])  # the target of L1/perceptual/GAN
    if policy == 'original':
        assert chosen.tolist() == [0, 0, 0]
    elif policy == 'upos':
        has_pos = (labels == POSITIVE).any(1)
        assert ((labels[b, chosen] == POSITIVE) | (~has_pos & (chosen == 0))).all()
    elif policy == 'amo':
        with torch.no_grad():
            q = build_scorer('piqe', device='cpu')(batch['gts'].flatten(0, 1)).view(3, 5)
        assert torch.equal(chosen, q.argmax(1))
    elif policy == 'amo_cached':
        assert torch.equal(chosen, batch['grid_scores'].argmax(1))
    else:  # sma / smp: the same seeded draw as the pure function
        probs = selection_probabilities(policy, labels, batch['scores'], tau=5.0)
        expected = torch.multinomial(probs.double(), 1, generator=torch.Generator().manual_seed(0)).squeeze(1)
        assert torch.equal(chosen, expected)
    model.optimize_parameters(1)
    log = model.get_current_log()
    assert abs(sum(v for k, v in log.items() if k.startswith('sel_')) - 1.0) < 1e-6
    assert log['sel_original'] == pytest.approx(float((chosen == 0).float().mean()))
    assert 'l_g_pix' in log and 'l_d_real' not in log  # GAN-free without network_d


def test_gan_and_iqa_loss_terms_are_logged(data, tmp_path):
    root, scores = data
    model = _build(_model_opt(root, scores, 'amo', tmp_path, gan=True, iqa=True))
    model.feed_data(_batch(root, scores))
    model.optimize_parameters(1)
    log = model.get_current_log()
    for key in ('l_g_pix', 'l_g_gan', 'l_g_iqa', 'iqa_musiq', 'l_d_real', 'l_d_fake', 'out_d_real'):
        assert key in log, key


def _stage_one(data, tmp_path):
    root, scores = data
    model = _build(_model_opt(root, scores, 'original', tmp_path / 'stage1'))
    model.feed_data(_batch(root, scores))
    model.optimize_parameters(1)
    model.save(0, -1)
    return osp.join(tmp_path / 'stage1' / 'models', 'net_g_latest.pth')


def test_ft_trains_only_adapters_and_merged_checkpoint_is_stock(data, tmp_path):
    from basicsr.archs.rrdbnet_arch import RRDBNet

    root, scores = data
    base = _stage_one(data, tmp_path)
    model = _build(_model_opt(root, scores, 'amo', tmp_path / 'ft', lora={'rank': 2, 'alpha': 2}, pretrain=base,
                              iqa=True))
    before = {k: v.clone() for k, v in model.net_g.state_dict().items()}
    trainable = {n for n, p in model.net_g.named_parameters() if p.requires_grad}
    assert trainable and all('lora_' in n for n in trainable)
    for it in (1, 2, 3):
        model.feed_data(_batch(root, scores))
        model.optimize_parameters(it)
    after = model.net_g.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed and all('lora_' in k for k in changed)
    assert any('lora_B' in k for k in changed)

    model.save(0, -1)
    models = tmp_path / 'ft' / 'models'
    adapters = torch.load(models / 'net_g_lora_latest.pth', weights_only=True)
    assert set(adapters) == {'params', 'params_ema'} and all('lora_' in k for k in adapters['params'])
    merged = torch.load(models / 'net_g_latest.pth', weights_only=True)
    x = torch.rand(2, 3, 16, 16)
    for key, net in (('params', model.net_g), ('params_ema', model.net_g_ema)):
        stock = RRDBNet(**{k: v for k, v in NET_G.items() if k != 'type'})
        stock.load_state_dict(merged[key], strict=True)
        with torch.no_grad():
            assert (stock(x) - net.eval()(x)).abs().max() <= 1e-5


def test_merge_script_matches_saved_merge(data, tmp_path):
    from nriqa_basicsr.merge_lora import merge

    root, scores = data
    base = _stage_one(data, tmp_path)
    opt = _model_opt(root, scores, 'original', tmp_path / 'ft', lora={'rank': 2}, pretrain=base)
    model = _build(opt)
    for p in model.net_g.parameters():
        if p.requires_grad:
            p.data.normal_(0, 0.1)
    model.save(0, 5)
    model.save(0, -1)
    merged = merge(opt, str(tmp_path / 'ft' / 'models' / 'net_g_lora_5.pth'))
    saved = torch.load(tmp_path / 'ft' / 'models' / 'net_g_latest.pth', weights_only=True)
    for key in ('params', 'params_ema'):
        assert all(torch.allclose(merged[key][k], saved[key][k], atol=1e-6) for k in saved[key])


def test_bad_model_options(data, tmp_path):
    from nriqa_basicsr.checkpoint import CheckpointMismatchError
    from nriqa_basicsr.options import OptionsError, prepare_options

    root, scores = data
    opt = _model_opt(root, scores, 'original', tmp_path, lora={'rank': 2, 'alhpa': 2})
    with pytest.raises(OptionsError) as info:
        prepare_options(opt)
    assert 'network_g_lora (FT stage) needs path.pretrain_network_g' in str(info.value)
    assert "network_g_lora.alhpa: unknown option; valid keys: ['alpha', 'dropout', 'rank', 'target_modules']" in \
        str(info.value)
    opt = _model_opt(root, scores, 'original', tmp_path)
    opt['train']['gt_selection'] = {'policy': 'amo'}
    opt['train']['iqa_opt'] = {'type': 'NRIQALoss', 'metrics': {'niqe': 1}, 'weight': 2}
    opt['train']['amp'] = 'fp8'
    with pytest.raises(OptionsError) as info:
        prepare_options(opt)
    text = str(info.value)
    assert 'policy "amo" scores candidates online; name the NR metric' in text
    assert 'train.iqa_opt.weight: unknown option; valid keys:' in text and "'loss_weight'" in text
    assert "train.amp: must be bf16, fp16 or false, got 'fp8'" in text
    bad_ckpt = tmp_path / 'other.pth'
    torch.save({'params': {'conv_first.weight': torch.zeros(4, 3, 3, 3), 'extra.bias': torch.zeros(1)}}, bad_ckpt)
    expected = (r'missing keys: .*unexpected keys: extra\.bias; shape mismatches: conv_first\.weight '
                r'\(4, 3, 3, 3\) vs \(8, 3, 3, 3\)')
    with pytest.raises(CheckpointMismatchError, match=expected):
        _build(_model_opt(root, scores, 'original', tmp_path, pretrain=str(bad_ckpt)))
    with pytest.raises(OptionsError, match='read only by model_type NRIQAModel'):
        prepare_options(dict(_model_opt(root, scores, 'upos', tmp_path), model_type='SRModel'))


# ------------------------------------------------------------------------------------ through train.py
def _cli_opt(root, scores, name, policy, **kw):
    opt = _model_opt(root, scores, policy, __import__('pathlib').Path('/unused'), **kw)
    for key in ('is_train', 'dist', 'rank', 'world_size', 'auto_resume'):
        opt.pop(key)
    opt['name'] = name
    opt['path'] = {k: v for k, v in opt['path'].items()
                   if k in ('pretrain_network_g', 'param_key_g', 'strict_load_g', 'resume_state')}
    opt['train']['total_iter'] = 2
    opt['logger']['use_tb_logger'] = True
    opt['logger']['wandb'] = {'project': None, 'resume_id': None}
    opt['dist_params'] = {'backend': 'gloo', 'port': 29500}
    return opt


def _train(opt, tmp_path, *flags):
    path = tmp_path / f'{opt["name"]}.yml'
    path.write_text(yaml.safe_dump(opt))
    out = subprocess.run([sys.executable, osp.join(REPO_ROOT, 'nriqa_basicsr', 'train.py'), '-opt', str(path),
                          *flags], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    exp = osp.join(REPO_ROOT, 'experiments', opt['name'])
    return ''.join(open(osp.join(exp, f)).read() for f in sorted(os.listdir(exp)) if f.endswith('.log'))


@pytest.mark.slow
def test_every_policy_runs_through_train_py(data, tmp_path, run_names):
    root, scores = data
    for policy in POLICIES:
        name = f'pytest_policy_{policy}_{uuid.uuid4().hex[:6]}'
        run_names.append(name)
        log = _train(_cli_opt(root, scores, name, policy, gan=policy == 'amo'), tmp_path)
        fractions = re.findall(r'sel_original: ([\d.e+-]+)', log)
        assert len(fractions) == 2, policy
        if policy == 'original':
            assert all(float(f) == 1.0 for f in fractions)
        assert osp.isfile(osp.join(REPO_ROOT, 'experiments', name, 'models', 'net_g_latest.pth'))


@pytest.mark.slow
def test_ft_resume_restores_adapters_and_optimizer(data, tmp_path, run_names):
    from nriqa_basicsr.pipeline import load_resume_state

    root, scores = data
    base = _stage_one(data, tmp_path)
    name = f'pytest_ft_{uuid.uuid4().hex[:6]}'
    run_names.append(name)
    opt = _cli_opt(root, scores, name, 'amo', lora={'rank': 2}, pretrain=base, iqa=True)
    _train(opt, tmp_path)
    exp = osp.join(REPO_ROOT, 'experiments', name)
    assert sorted(os.listdir(osp.join(exp, 'models'))) == ['net_g_latest.pth', 'net_g_lora_2.pth',
                                                           'net_g_lora_latest.pth']
    # what --auto_resume resolves: the stage-one base stays, adapters come from the run, param key kept
    resolved = dict(copy.deepcopy(opt), auto_resume=True, is_train=True, dist=False, rank=0, world_size=1)
    resolved['path'].update(models=osp.join(exp, 'models'), training_states=osp.join(exp, 'training_states'),
                            experiments_root=exp)
    state = load_resume_state(resolved)
    assert state['iter'] == 2
    assert resolved['path']['pretrain_network_g'] == base and resolved['path']['param_key_g'] == 'params_ema'
    assert resolved['path']['pretrain_network_g_lora'].endswith('net_g_lora_2.pth')
    model = _build(resolved)
    model.resume_training(state)
    saved = torch.load(osp.join(exp, 'models', 'net_g_lora_2.pth'), weights_only=True)['params']
    from nriqa_basicsr.archs.lora import lora_state_dict

    assert all(torch.equal(v, saved[k]) for k, v in lora_state_dict(model.net_g).items())
    saved_optim = state['optimizers'][0]['state']
    live_optim = model.optimizer_g.state_dict()['state']
    assert saved_optim and all(torch.equal(saved_optim[i]['exp_avg'], live_optim[i]['exp_avg']) for i in saved_optim)
    # and the real thing: resume through train.py to 4 iterations
    log = _train(opt, tmp_path, '--auto_resume', '--force_yml', 'train:total_iter=4')
    assert 'Resuming training from epoch' in log and 'net_g_lora_2.pth' in log
    assert osp.isfile(osp.join(exp, 'models', 'net_g_lora_4.pth'))


def test_negative_weight_map_follows_hggt():
    from nriqa_basicsr.losses.negative_loss import negative_loss, negative_weight_map, pick_negative_pairs

    torch.manual_seed(0)
    original = torch.rand(2, 3, 16, 16)
    positive = original + 0.3 * torch.rand(2, 3, 16, 16)   # changes the image a lot
    negative = original + 0.01 * torch.rand(2, 3, 16, 16)  # changes it little
    votes = torch.tensor([3, 3])
    m = negative_weight_map(original, positive, negative, votes, votes, torch.tensor([True, False]))
    assert m.shape == (2, 1, 16, 16)
    assert m[0].abs().sum() == 0  # the positive changed more everywhere: nothing to push away from
    assert (m[1] > 0).float().mean() > 0.9  # no real positive (original stands in): the map stays
    labels = torch.tensor([[0, 1, 3, 2, 3], [0, 2, 2, 2, 2]])
    neg, pos, has_neg, has_pos = pick_negative_pairs(labels, torch.Generator().manual_seed(0))
    assert neg[0] in (2, 4) and pos[0] == 1 and has_neg.tolist() == [True, False] and has_pos.tolist() == [True, False]
    out = torch.zeros(2, 3, 16, 16, requires_grad=True)
    loss = negative_loss(out, negative, m, has_neg)
    loss.backward()
    assert loss <= 0 and out.grad[1].abs().sum() == 0  # the sample without a negative gets no gradient


def test_negative_loss_term_in_training(data, tmp_path):
    root, scores = data
    opt = _model_opt(root, scores, 'upos', tmp_path)
    opt['train']['neg_opt'] = {'loss_weight': 300}
    model = _build(opt)
    ds = MultiGTDataset(dict(_dataset_opt(root, scores), phase='train', scale=4))
    with_neg = [i for i in range(len(ds)) if (ds.labels[i] == 3).any()]
    assert with_neg, 'demo data should contain effective negatives'
    model.feed_data(torch.utils.data.default_collate([ds[i] for i in with_neg[:2]]))
    model.optimize_parameters(1)
    assert model.get_current_log()['l_g_neg'] <= 0


def test_auto_resume_takes_the_newest_loadable_state(data, tmp_path, basicsr_log):
    from nriqa_basicsr.pipeline import load_resume_state

    root, scores = data
    opt = _model_opt(root, scores, 'sma', tmp_path)
    model = _build(opt)
    for it in (1, 2, 3, 4):
        model.feed_data(_batch(root, scores))
        model.optimize_parameters(it)
        if it % 2 == 0:
            model.save(0, it)
    rng_at_4 = model.sel_generator.get_state()
    states, models = tmp_path / 'states', tmp_path / 'models'
    assert sorted(p.name for p in states.iterdir()) == ['2.state', '4.state']  # no temporary files left
    assert not [p for p in models.iterdir() if '.tmp' in p.name]

    def resolve():
        o = dict(copy.deepcopy(opt), auto_resume=True, name='inproc')
        return o, load_resume_state(o)

    resolved, state = resolve()
    assert state['iter'] == 4 and torch.equal(state['selection_rng'], rng_at_4)
    resumed = _build(resolved)
    resumed.resume_training(state)
    assert torch.equal(resumed.sel_generator.get_state(), rng_at_4)  # the same GT draws continue

    (states / '4.state').write_bytes((states / '4.state').read_bytes()[:100])  # killed mid-write (pre-atomic)
    resolved, state = resolve()
    assert state['iter'] == 2 and resolved['path']['resume_state'].endswith('2.state')
    assert 'cannot be loaded' in basicsr_log.text
    os.remove(models / 'net_g_2.pth')
    from nriqa_basicsr.pipeline import ResumeError

    with pytest.raises(ResumeError, match='none of the 2 training state'):  # no usable state: stop, not restart
        resolve()
    assert 'has no matching checkpoint' in basicsr_log.text


def test_compile_option_keeps_checkpoint_keys(data, tmp_path):
    root, scores = data
    opt = _model_opt(root, scores, 'amo', tmp_path, iqa=True)
    opt['train']['compile'] = {'backend': 'eager'}  # the wiring; inductor needs a C++ toolchain
    model = _build(opt)
    bare = model.get_bare_model(model.net_g)
    assert bare._compiled_call_impl is not None
    assert all(s._compiled_call_impl is not None for s in model.amo_scorers.values())
    model.feed_data(_batch(root, scores))
    model.optimize_parameters(1)
    model.save(0, 1)
    saved = torch.load(tmp_path / 'models' / 'net_g_1.pth', weights_only=True)['params']
    assert not [k for k in saved if '_orig_mod' in k]
    from basicsr.archs.rrdbnet_arch import RRDBNet

    stock = RRDBNet(**{k: v for k, v in NET_G.items() if k != 'type'})
    stock.load_state_dict(saved, strict=True)
    with torch.no_grad():
        assert torch.allclose(stock(model.lq), bare(model.lq), atol=1e-6)
    from nriqa_basicsr.options import OptionsError, prepare_options

    opt['train']['compile'] = {'backnd': 'eager'}
    with pytest.raises(OptionsError, match=r'train.compile.backnd: unknown option'):
        prepare_options(opt)


def test_model_and_loss_own_the_scorers_they_compile(data, tmp_path):
    root, scores = data
    opt = _model_opt(root, scores, 'amo', tmp_path, iqa=True)
    opt['train']['compile'] = {'backend': 'eager'}
    model = _build(opt)
    loss_scorers = model.cri_iqa.scorers(model.device)
    assert all(s._compiled_call_impl is not None for s in [*model.amo_scorers.values(), *loss_scorers.values()])
    from nriqa_basicsr.iqa import scorer as scorer_module

    cached = set(scorer_module._SHARED._scorers)
    shared = [build_scorer('piqe', 'NR', 'cpu', check_range=False),
              build_scorer('musiq', 'NR', 'cpu', normalize=True, weights_dir=None)]
    assert set(scorer_module._SHARED._scorers) == cached  # the very scorers the model's copies were made from
    assert shared[0] is not model.amo_scorers['piqe'] and shared[1] is not loss_scorers['musiq']
    assert all(s._compiled_call_impl is None for s in shared)  # the process-wide cache is never changed


def test_generator_and_ema_read_the_base_with_one_key(data, tmp_path):
    from nriqa_basicsr.checkpoint import network_state

    root, scores = data
    params, ema = (_build(_model_opt(root, scores, 'original', tmp_path / f'src{i}')).net_g for i in (0, 1))
    for p in ema.parameters():
        p.data.add_(0.5)
    base = tmp_path / 'base.pth'
    torch.save({'params': network_state(params), 'params_ema': network_state(ema)}, base)
    opt = _model_opt(root, scores, 'original', tmp_path / 'run', pretrain=str(base))
    opt['path']['param_key_g'] = 'params'
    model = _build(opt)
    for net in (model.net_g, model.net_g_ema):
        assert all(torch.equal(v, network_state(params)[k]) for k, v in network_state(net).items())
    # resuming a run reads its own checkpoint by set: the EMA continues from params_ema
    opt['path']['resume_state'] = str(tmp_path / 'run' / 'states' / '1.state')
    resumed = _build(opt)
    assert all(torch.equal(v, network_state(ema)[k]) for k, v in network_state(resumed.net_g_ema).items())
    assert all(torch.equal(v, network_state(params)[k]) for k, v in network_state(resumed.net_g).items())
