"""Every claim microgpt.py makes, checked: gradients against finite differences, the training
loop against the reference run, and the command line end to end."""
import gc
import json
import math
import os
import pty
import re
import signal
import random
import subprocess
import sys

import pytest

import microgpt
from microgpt import GPT, Value, adam, cross_entropy, document_loss, dot, linear, rmsnorm, sample

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, 'microgpt.py')

# The reference microgpt on these 16 names (seed 42, default model): the loss of each of its first
# 12 steps at full precision, and the 5 samples it then draws at temperature 0.5.
TINY_NAMES = ['emma', 'olivia', 'ava', 'isabella', 'sophia', 'charlotte', 'mia', 'amelia',
              'harper', 'evelyn', 'liam', 'noah', 'william', 'james', 'oliver', 'benjamin']
TINY_LOSSES = [3.015782942630595, 2.9235750346957814, 2.9383463025373726, 3.112198174317565,
               2.873031292053204, 2.6050812080510912, 2.536181709685409, 2.9094401184865633,
               2.370171390965258, 2.5437772900710196, 3.1355101450951173, 3.1378906732989402]
TINY_SAMPLES = ['acorlrliasemyhay', 'en', 'lyrv', 'asjramenrpncrwoa', 'cbaoyrwncyrwmtar']


# --- The documented values of Value ---------------------------------------------------------

def test_add_documented_values():
    x, y = Value(3.0), Value(4.0)
    z = x + y
    z.backward()
    assert (z.data, x.grad, y.grad) == (7.0, 1.0, 1.0)


def test_mul_documented_values():
    # An early draft gave every binary operator the local gradients (1, 1) and "passed" by printing
    # 1 and 1 here. d(a*b)/da = b and d(a*b)/db = a, so the grads are 5 and 2.
    a, b = Value(2.0), Value(5.0)
    c = a * b
    c.backward()
    assert (c.data, a.grad, b.grad) == (10.0, 5.0, 2.0)


def test_pow_documented_values():
    a = Value(2.0)
    c = a ** 3
    c.backward()
    assert (c.data, a.grad) == (8.0, 12.0)


def test_log_documented_values():
    a = Value(4.0)
    b = a.log()
    b.backward()
    assert (b.data, a.grad) == (1.3862943611198906, 0.25)


def test_repr_shows_data_and_grad():
    assert repr(Value(2.5)) == 'Value(data=2.5, grad=0.0)'


# --- Every local-gradient rule against central finite differences ---------------------------

def numeric_grads(f, args, h=1e-6):
    """Central differences of the float function f at args."""
    grads = []
    for i in range(len(args)):
        up, down = list(args), list(args)
        up[i] += h
        down[i] -= h
        grads.append((f(*up) - f(*down)) / (2 * h))
    return grads


BINARY = {  # name: (expression on Values and/or floats, the same on floats)
    'add': lambda a, b: a + b, 'sub': lambda a, b: a - b, 'mul': lambda a, b: a * b,
    'truediv': lambda a, b: a / b, 'pow': lambda a, b: a ** b}
POINTS = [(1.7, 0.6), (2.5, -1.3), (0.4, 2.2)]  # positive bases keep a ** b real


@pytest.mark.parametrize('name', BINARY)
@pytest.mark.parametrize('x, y', POINTS)
def test_binary_operator_matches_finite_differences(name, x, y):
    op = BINARY[name]
    a, b = Value(x), Value(y)
    out = op(a, b)
    out.backward()
    assert out.data == op(x, y)
    assert [a.grad, b.grad] == pytest.approx(numeric_grads(op, [x, y]), rel=1e-6, abs=1e-8)


@pytest.mark.parametrize('name', BINARY)
@pytest.mark.parametrize('x, y', POINTS)
def test_operator_with_a_number_on_the_right(name, x, y):
    op = BINARY[name]
    a = Value(x)
    out = op(a, y)  # forward method, a plain number as constant
    out.backward()
    assert out.data == op(x, y)
    assert a.grad == pytest.approx(numeric_grads(lambda s: op(s, y), [x])[0], rel=1e-6, abs=1e-8)


@pytest.mark.parametrize('name', BINARY)
@pytest.mark.parametrize('x, y', POINTS)
def test_reflected_operator_with_a_number_on_the_left(name, x, y):
    op = BINARY[name]
    b = Value(y)
    out = op(x, b)  # reflected method: 2 - v, 1 / v, 2 ** v ...
    out.backward()
    assert out.data == op(x, y)
    assert b.grad == pytest.approx(numeric_grads(lambda s: op(x, s), [y])[0], rel=1e-6, abs=1e-8)


UNARY = {'neg': (lambda v: -v, lambda f: -f), 'log': (Value.log, math.log),
         'exp': (Value.exp, math.exp), 'relu': (Value.relu, lambda f: max(0.0, f))}


@pytest.mark.parametrize('name, x', [(name, x) for name in UNARY for x in (0.7, 2.3, -1.1)
                                     if name != 'log' or x > 0])  # log: positive numbers only
def test_unary_function_matches_finite_differences(name, x):
    method, floats = UNARY[name]
    a = Value(x)
    out = method(a)
    out.backward()
    assert out.data == floats(x)
    assert a.grad == pytest.approx(numeric_grads(floats, [x])[0], rel=1e-6, abs=1e-8)


def test_power_data_is_the_power_not_the_exponent():
    v = Value(-3.0)
    w = v ** 2
    w.backward()
    assert (w.data, v.grad) == (9.0, -6.0)  # a constant exponent needs no log of the base


def test_value_exponent_gets_its_gradient():
    a, b = Value(2.0), Value(3.0)
    c = a ** b
    c.backward()
    assert b.grad == pytest.approx(8.0 * math.log(2.0))
    assert a.grad == pytest.approx(12.0)


@pytest.mark.parametrize('expression', [
    lambda v: v + 'text', lambda v: 'text' + v, lambda v: v * None, lambda v: None - v,
    lambda v: v / [1.0], lambda v: {} ** v, lambda v: v @ v])
def test_foreign_operands_raise_type_error(expression):
    with pytest.raises(TypeError):
        expression(Value(1.0))


def test_backward_handles_a_200000_node_chain_without_recursion():
    x = Value(1.0)
    y = x
    for _ in range(200_000):
        y = y * 1.0 + 0.0
    y.backward()
    assert x.grad == 1.0


def test_value_used_twice_gets_both_contributions():
    x = Value(3.0)
    y = x * x + x
    y.backward()
    assert x.grad == 7.0  # 2x + 1


def test_backward_twice_accumulates():
    x = Value(2.0)
    y = x * 5
    y.backward()
    y.backward()
    assert x.grad == 10.0


# --- Helpers ----------------------------------------------------------------------------------

def test_dot_has_the_same_floats_as_a_chain_of_nodes_and_the_right_gradients():
    rng = random.Random(0)
    ws = [Value(rng.uniform(-1, 1)) for _ in range(37)]
    xs = [Value(rng.uniform(-1, 1)) for _ in range(37)]
    chain = 0
    for w, x in zip(ws, xs):
        chain = chain + w * x
    fused = dot(ws, xs)
    assert fused.data == chain.data  # bit for bit
    assert len(fused.children) == 74  # one node, where the chain built 2 * 37
    fused.backward()
    assert [w.grad for w in ws] == [x.data for x in xs]
    assert [x.grad for x in xs] == [w.data for w in ws]


def test_linear_is_one_dot_per_row():
    w = [[Value(1.0), Value(2.0)], [Value(-3.0), Value(0.5)]]
    out = linear([Value(4.0), Value(-1.0)], w)
    assert [o.data for o in out] == [2.0, -12.5]


def test_rmsnorm_gives_unit_root_mean_square():
    out = rmsnorm([Value(v) for v in (3.0, -4.0, 12.0, 0.5)])
    assert math.sqrt(sum(o.data ** 2 for o in out) / 4) == pytest.approx(1.0, abs=1e-5)


def test_cross_entropy_is_minus_log_softmax_with_its_gradient():
    zs = [0.3, -1.2, 2.0, 0.0]
    logits = [Value(z) for z in zs]
    loss = cross_entropy(logits, 2)
    loss.backward()

    def floats(*z):
        return -math.log(math.exp(z[2]) / sum(math.exp(v) for v in z))
    assert loss.data == pytest.approx(floats(*zs), rel=1e-12)
    assert [z.grad for z in logits] == pytest.approx(numeric_grads(floats, zs), rel=1e-6, abs=1e-8)


def test_cross_entropy_is_stable_for_huge_logits():
    loss = cross_entropy([Value(1000.0), Value(0.0)], 1)
    assert loss.data == pytest.approx(1000.0)


# --- The whole model ----------------------------------------------------------------------

def test_model_gradients_match_finite_differences():
    random.seed(3)
    model = GPT(list('abc'), n_layer=2, n_embd=8, n_head=2, block_size=5)
    tokens = [model.BOS, 0, 2, 1, 1, 0, model.BOS]  # longer than the block: cut to 5 predictions
    document_loss(model, tokens).backward()
    checked = random.Random(1).sample(model.params, 40)
    h = 1e-6
    for p in checked:
        original = p.data
        p.data = original + h
        up = document_loss(model, tokens).data
        p.data = original - h
        down = document_loss(model, tokens).data
        p.data = original
        assert p.grad == pytest.approx((up - down) / (2 * h), rel=1e-4, abs=1e-8)


def test_parameters_are_created_in_the_reference_order_and_count():
    random.seed(0)
    model = GPT(list('ab'), n_layer=2, n_embd=4, n_head=2, block_size=3)
    random.seed(0)
    first = random.gauss(0, 0.08)
    assert model.params[0].data == first  # wte[0][0] is drawn first
    # wte, wpe, lm_head, then per layer 4 square attention matrices and the 4x-wide MLP
    assert len(model.params) == 3 * 4 + 3 * 4 + 3 * 4 + 2 * (4 * 16 + 2 * 64)


@pytest.mark.parametrize('n_layer, n_embd, n_head, block_size', [(1, 16, 4, 16), (2, 8, 1, 4),
                                                                 (3, 6, 3, 2)])
def test_model_runs_at_any_size(n_layer, n_embd, n_head, block_size):
    model = GPT(list('xyz'), n_layer, n_embd, n_head, block_size)
    keys, values = [[] for _ in range(n_layer)], [[] for _ in range(n_layer)]
    for pos in range(block_size):
        logits = model(model.BOS if pos == 0 else 1, pos, keys, values)
        assert len(logits) == model.vocab_size
    assert all(len(k) == block_size for k in keys)


# --- Adam, training, sampling ---------------------------------------------------------------

def test_adam_on_a_hand_checkable_case():
    p = Value(1.0)
    p.grad = 2.0
    m, v = [0.0], [0.0]
    adam([p], m, v, step=0, num_steps=10, lr=0.1)
    # first step: m = 0.15 * 2 = 0.3, v = 0.01 * 4 = 0.04; the bias corrections undo the 0.15 and
    # 0.01, so the step is lr * 2 / (sqrt(4) + eps): about lr, against the gradient.
    assert m == [pytest.approx(0.3)] and v == [pytest.approx(0.04)]
    assert p.data == pytest.approx(1.0 - 0.1 * 2.0 / (2.0 + 1e-8), rel=1e-12)
    assert p.grad == 0.0
    p.grad = 2.0
    adam([p], m, v, step=5, num_steps=10, lr=0.1)  # learning rate has decayed to half
    m_hat, v_hat = (0.85 * 0.3 + 0.3) / (1 - 0.85 ** 6), (0.99 * 0.04 + 0.04) / (1 - 0.99 ** 6)
    assert p.data == pytest.approx(0.9 - 0.05 * m_hat / (v_hat ** 0.5 + 1e-8), rel=1e-9)


def test_training_matches_the_reference_losses_and_samples():
    random.seed(42)
    docs = list(TINY_NAMES)
    random.shuffle(docs)
    model = GPT(sorted(set(''.join(docs))))
    assert (model.vocab_size, len(model.params)) == (19, 3936)
    losses = [loss for _, loss in microgpt.train(model, docs, 12)]
    assert losses == pytest.approx(TINY_LOSSES, rel=0, abs=1e-12)
    assert [sample(model, 0.5) for _ in range(5)] == TINY_SAMPLES


def test_samples_stay_within_the_vocabulary_and_the_block():
    random.seed(7)
    model = GPT(list('ab'), block_size=5)
    texts = [sample(model, temperature=3.0) for _ in range(100)]
    assert all(set(t) <= {'a', 'b'} and len(t) <= 5 for t in texts)
    assert max(len(t) for t in texts) == 5  # hot sampling from an untrained model runs long


# --- Command line ---------------------------------------------------------------------------

def run(*args, **kwargs):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                          timeout=60, **kwargs)


@pytest.fixture
def tiny_file(tmp_path):
    path = tmp_path / 'tiny.txt'
    path.write_text('\n'.join(TINY_NAMES) + '\n', encoding='utf-8')
    return str(path)


def test_cli_end_to_end(tiny_file):
    result = run('--data', tiny_file, '--steps', '12', '--samples', '5')
    assert result.returncode == 0 and result.stderr == ''
    lines = result.stdout.splitlines()
    assert lines[:3] == ['num docs: 16', 'vocab size: 19', 'num params: 3936']
    assert lines[3:15] == [f'step {i + 1:4d} /   12 | loss {x:.4f}' for i, x in enumerate(TINY_LOSSES)]
    assert lines[15:17] == ['', '--- inference (new, hallucinated names) ---']
    assert lines[17:] == [f'sample {i + 1:2d}: {s}' for i, s in enumerate(TINY_SAMPLES)]


def test_cli_steps_0_and_samples_0_skip_training_and_sampling(tiny_file):
    result = run('--data', tiny_file, '--steps', '0', '--samples', '0')
    assert result.returncode == 0
    assert result.stdout.splitlines() == ['num docs: 16', 'vocab size: 19', 'num params: 3936']


def test_cli_finds_its_data_from_any_folder(tmp_path):
    result = run('--steps', '1', '--samples', '1', cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith('num docs: 32469\nvocab size: 27\n')


def test_main_in_process_restores_the_callers_process(tiny_file, capsys):
    handler = signal.getsignal(signal.SIGINT)
    assert microgpt.main(['--data', tiny_file, '--steps', '2', '--samples', '1']) == 0
    assert signal.getsignal(signal.SIGINT) is handler and gc.isenabled()
    assert 'sample  1: ' in capsys.readouterr().out


def test_importing_runs_nothing():
    result = subprocess.run([sys.executable, '-c', 'import microgpt'], capture_output=True,
                            text=True, cwd=HERE)
    assert (result.returncode, result.stdout, result.stderr) == (0, '', '')


BAD_INPUTS = {
    'missing file': (['--data', 'no/such/file.txt'], 'No such file'),
    'folder as data': (['--data', '.'], 'directory'),
    'non-UTF-8 data': (['--data', '{latin1}'], 'utf-8'),
    'empty data': (['--data', '{empty}'], 'no documents'),
    'zero temperature': (['--temperature', '0'], '--temperature'),
    'negative temperature': (['--temperature', '-1'], '--temperature'),
    'negative steps': (['--steps', '-1'], '--steps'),
    'negative samples': (['--samples', '-3'], '--samples'),
    'zero learning rate': (['--lr', '0'], '--lr'),
    'zero block size': (['--block-size', '0'], '--block-size'),
    'zero layers': (['--n-layer', '0'], '--n-layer'),
    'zero width': (['--n-embd', '0'], '--n-embd'),
    'zero heads': (['--n-head', '0'], '--n-head'),
    'width not divisible by heads': (['--n-embd', '10', '--n-head', '4'], 'must divide'),
    'unknown flag': (['--epochs', '3'], 'unrecognized arguments: --epochs'),
    'not a number': (['--steps', 'many'], "invalid int value: 'many'"),
}


@pytest.mark.parametrize('case', BAD_INPUTS)
def test_bad_input_gets_one_line_and_exit_status_2(case, tmp_path):
    (tmp_path / 'latin1.txt').write_bytes('jos\xe9\n'.encode('latin-1'))
    (tmp_path / 'empty.txt').write_text('\n  \n', encoding='utf-8')
    args, expected = BAD_INPUTS[case]
    args = [a.format(latin1=tmp_path / 'latin1.txt', empty=tmp_path / 'empty.txt') for a in args]
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ''
    assert len(result.stderr.splitlines()) == 1 and 'Traceback' not in result.stderr
    assert result.stderr.startswith('microgpt: error: ') and expected in result.stderr


# --- Checkpoints, prompts, progress, Ctrl-C -------------------------------------------------

def trained_tiny_model(steps=5):
    random.seed(42)
    docs = list(TINY_NAMES)
    random.shuffle(docs)
    model = GPT(sorted(set(''.join(docs))), n_layer=2, n_embd=8, n_head=2, block_size=10)
    for _ in microgpt.train(model, docs, steps):
        pass
    return model


def test_save_then_load_gives_identical_parameters_and_samples(tmp_path):
    model = trained_tiny_model()
    path = str(tmp_path / 'model.json')
    microgpt.save(model, path)
    loaded = microgpt.load(path)
    assert [p.data for p in loaded.params] == [p.data for p in model.params]  # exactly
    assert (loaded.uchars, loaded.n_layer, loaded.n_embd, loaded.n_head, loaded.block_size) == (
        model.uchars, 2, 8, 2, 10)
    random.seed(5)
    before = [sample(model, 0.8) for _ in range(10)]
    random.seed(5)
    assert [sample(loaded, 0.8) for _ in range(10)] == before
    assert not os.path.exists(path + '.tmp')


def test_checkpoint_is_json_with_format_version_settings_vocab_and_params(tmp_path):
    path = tmp_path / 'model.json'
    microgpt.save(trained_tiny_model(1), str(path))
    ckpt = json.loads(path.read_text(encoding='utf-8'))
    assert (ckpt['format'], ckpt['version']) == ('microgpt', 1)
    assert ckpt['config'] == {'n_layer': 2, 'n_embd': 8, 'n_head': 2, 'block_size': 10}
    assert ckpt['vocab'] == ''.join(sorted(set(''.join(TINY_NAMES))))
    assert len(ckpt['params']) == len(trained_tiny_model(0).params)


def test_a_checkpoint_written_by_one_run_is_loaded_by_another(tiny_file, tmp_path):
    path = str(tmp_path / 'model.json')
    first = run('--data', tiny_file, '--steps', '8', '--samples', '0', '--save', path)
    assert first.returncode == 0 and f'saved the model to {path}' in first.stdout
    second = run('--load', path, '--steps', '0', '--samples', '6', '--temperature', '0.8',
                 '--seed', '3')
    assert second.returncode == 0, second.stderr
    assert 'num docs' not in second.stdout  # sampling from a checkpoint reads no data
    random.seed(3)
    model = microgpt.load(path)
    expected = [f'sample {i + 1:2d}: {sample(model, 0.8)}' for i in range(6)]
    assert second.stdout.splitlines()[-6:] == expected


def test_training_a_loaded_model_further(tiny_file, tmp_path):
    path = str(tmp_path / 'model.json')
    assert run('--data', tiny_file, '--steps', '3', '--samples', '0', '--save', path).returncode == 0
    more = run('--load', path, '--data', tiny_file, '--steps', '4', '--samples', '2', '--save', path)
    assert more.returncode == 0, more.stderr
    assert 'step    4 /    4 | loss' in more.stdout and 'sample  2: ' in more.stdout


def test_prompt_starts_every_sample(tiny_file):
    result = run('--data', tiny_file, '--steps', '20', '--samples', '15', '--prompt', 'ja')
    assert result.returncode == 0, result.stderr
    samples = [line.split(': ', 1)[1] for line in result.stdout.splitlines()
               if line.startswith('sample')]
    assert len(samples) == 15 and all(s.startswith('ja') for s in samples)
    assert all(len(s) <= 16 for s in samples)


def test_prompt_up_to_one_short_of_the_block_is_continued():
    random.seed(0)
    model = GPT(list('ab'), block_size=4)
    texts = [sample(model, 1.0, prompt='aba') for _ in range(20)]
    assert all(t.startswith('aba') and len(t) <= 4 for t in texts)


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / 'good.json'
    microgpt.save(trained_tiny_model(1), str(path))
    return path


CHECKPOINT_ERRORS = {
    'missing checkpoint': (lambda p: str(p.parent / 'nothing.json'), 'cannot read --load'),
    'corrupt checkpoint': (lambda p: p.write_text('{"format": nonsense') and str(p), 'not a valid'),
    'truncated checkpoint': (lambda p: p.write_text(p.read_text()[:-500]) and str(p), 'not a valid'),
    'wrong format': (lambda p: p.write_text(p.read_text().replace('"microgpt"', '"other"'))
                     and str(p), 'format is not microgpt'),
    'wrong version': (lambda p: p.write_text(p.read_text().replace('"version": 1', '"version": 2'))
                      and str(p), 'format is not microgpt version 1'),
    'too many parameters': (lambda p: p.write_text(p.read_text().replace(']}', ', 1.0]}'))
                            and str(p), 'more parameters'),
    'a JSON list': (lambda p: p.write_text('[1, 2]') and str(p), 'not a valid'),
    'zero heads': (lambda p: p.write_text(p.read_text().replace('"n_head": 2', '"n_head": 0'))
                   and str(p), 'not a valid'),
}


@pytest.mark.parametrize('case', CHECKPOINT_ERRORS)
def test_bad_checkpoint_is_a_one_line_error(case, checkpoint):
    make, expected = CHECKPOINT_ERRORS[case]
    result = run('--load', make(checkpoint), '--steps', '0', '--samples', '3')
    assert result.returncode == 2 and result.stdout == ''
    assert len(result.stderr.splitlines()) == 1 and 'Traceback' not in result.stderr
    assert expected in result.stderr


@pytest.mark.parametrize('args, expected', [
    (['--n-embd', '16'], 'the checkpoint sets the sizes'),
    (['--block-size=8'], 'the checkpoint sets the sizes'),
    (['--prompt', 'Za'], "'Z' is not in the vocabulary"),
    (['--prompt', 'emmaemmaem'], 'fills the whole block'),
    (['--steps', '2', '--data', '{accented}'], "'é' is not in the vocabulary"),
])
def test_load_rejects_conflicting_or_unknown_input(args, expected, checkpoint, tmp_path):
    (tmp_path / 'accented.txt').write_text('emma\nrenée\n', encoding='utf-8')
    args = [a.format(accented=tmp_path / 'accented.txt') for a in args]
    result = run('--load', str(checkpoint), '--steps', '0', '--samples', '2', *args)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
    assert expected in result.stderr


def test_save_into_a_missing_folder_fails_before_training(tiny_file, tmp_path):
    result = run('--data', tiny_file, '--save', str(tmp_path / 'no' / 'm.json'))
    assert result.returncode == 2 and 'folder does not exist' in result.stderr
    assert result.stdout == ''


def test_progress_on_a_terminal_is_one_line_rewritten_in_place(tiny_file):
    parent, child = pty.openpty()
    proc = subprocess.Popen([sys.executable, SCRIPT, '--data', tiny_file, '--steps', '30',
                             '--samples', '1'], stdout=child, stderr=child,
                            stdin=subprocess.DEVNULL)
    os.close(child)
    output = b''
    while True:
        try:
            chunk = os.read(parent, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        output += chunk
    os.close(parent)
    assert proc.wait(timeout=60) == 0
    step_lines = [line for line in output.decode().split('\n') if 'step' in line]
    assert len(step_lines) == 1  # 30 updates, one line
    assert step_lines[0].count('\rstep') == 30
    assert 'step   30 /   30 | loss ' in step_lines[0] and 'steps/s' in step_lines[0]
    assert 's left' in step_lines[0]


def test_progress_through_a_pipe_is_the_plain_step_lines(tiny_file):
    result = run('--data', tiny_file, '--steps', '30', '--samples', '0')
    steps = [line for line in result.stdout.splitlines() if line.startswith('step')]
    assert len(steps) == 30 and '\r' not in result.stdout and 'steps/s' not in result.stdout
    assert all(re.fullmatch(r'step +\d+ /   30 \| loss \d\.\d{4}', line) for line in steps)


def start_and_interrupt(args, wait_for):
    proc = subprocess.Popen([sys.executable, SCRIPT, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, 'PYTHONUNBUFFERED': '1'})
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith(wait_for):
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, ''.join(seen) + out, err


def test_ctrl_c_in_training_saves_a_loadable_checkpoint_and_exits_130(tmp_path):
    path = tmp_path / 'model.json'
    code, out, err = start_and_interrupt(['--steps', '100000', '--save', str(path)], 'step    3')
    assert code == 130
    assert 'Traceback' not in err and f'interrupted: the model is saved in {path}' in err
    assert 'sample' not in out
    model = microgpt.load(str(path))
    assert len(model.params) == 4192


def test_ctrl_c_in_training_without_save_says_how_to_keep_the_model():
    code, _, err = start_and_interrupt(['--steps', '100000'], 'step    2')
    assert code == 130 and 'add --save PATH' in err and 'Traceback' not in err


def test_ctrl_c_in_sampling_keeps_what_was_sampled(tiny_file):
    code, out, err = start_and_interrupt(['--data', tiny_file, '--steps', '0', '--samples',
                                          '1000000', '--temperature', '2'], 'sample  2')
    assert code == 130 and 'Traceback' not in err
    samples = [line for line in out.splitlines() if line.startswith('sample')]
    assert 2 <= len(samples) < 1000000
