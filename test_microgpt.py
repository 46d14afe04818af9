"""Every claim microgpt.py makes, checked: gradients against finite differences, the training
loop against the reference run, checkpoints and resumed runs against uninterrupted ones, and the
command line end to end (in-process through main(), and as a real process where signals, the
terminal or the exit status of the interpreter matter)."""
import errno
import gc
import hashlib
import json
import math
import os
import pty
import random
import re
import signal
import stat
import subprocess
import sys
import time
from statistics import fmean

import pytest

import microgpt
from microgpt import (
    GPT,
    Tokenizer,
    Value,
    adam,
    cross_entropy,
    document_loss,
    dot,
    explain,
    linear,
    load,
    read_documents,
    rmsnorm,
    sample,
    save,
    softmax,
    sparkline,
    train,
)

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
SMALL = ['--n-embd', '4', '--n-head', '1', '--block-size', '8']  # a model that trains in ~2 ms/step
BLOCKS, RAMP = '\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588', '_.-~=+*#'


@pytest.fixture
def tiny_file(tmp_path):
    path = tmp_path / 'tiny.txt'
    path.write_text('\n'.join(TINY_NAMES) + '\n', encoding='utf-8')
    return str(path)


def cli(capsys, *args):
    """main() in-process: (exit status, stdout, stderr)."""
    status = microgpt.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def run(*args, env=None, **kwargs):
    """microgpt.py as a process, under the interpreter running the tests."""
    return subprocess.run([sys.executable, SCRIPT, *map(str, args)], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **(env or {})}, check=False,
                          **kwargs)


def one_error_line(err, *expected):
    """main()'s error report: one line, `microgpt: error: ...`, naming what is wrong."""
    assert len(err.splitlines()) == 1 and 'Traceback' not in err, err
    assert err.startswith('microgpt: error: ') and all(e in err for e in expected), err


def step_lines(out):
    return [line for line in out.splitlines() if line.startswith('step ')]


def samples_of(out):
    return [line.split(': ', 1)[1] for line in out.splitlines() if line.startswith('sample ')]


def small_model_as_the_cli_trains_it(data, steps):
    """The documents and the SMALL model that `--data data --steps steps` (seed 42) trains."""
    random.seed(42)
    docs = shuffled_documents(data)
    model = GPT(Tokenizer(''.join(docs)), n_embd=4, n_head=1, block_size=8)
    for _ in train(model, docs, steps):
        pass
    return docs, model


def shuffled_documents(path):
    """The documents as the command line reads them: shuffled, as the random stream's first draw."""
    return microgpt.read_data(path)[0]


def shuffled_tiny_names(seed=42):
    random.seed(seed)
    docs = list(TINY_NAMES)
    random.shuffle(docs)
    return docs


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


def test_relu_makes_a_leaf_for_a_negative_so_backward_skips_what_only_it_used():
    x = Value(-2.0)
    hidden = x * 3.0  # a value that only the relu uses
    zero, kept = hidden.relu(), Value(2.0).relu()
    assert (zero.data, zero.children) == (0.0, ())  # a constant: nothing to pass back
    assert (kept.data, kept.local_grads) == (2.0, (1.0,))
    loss = zero + kept
    loss.backward()
    assert (x.grad, hidden.grad) == (0.0, 0.0)  # the same 0 the chain rule would give


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


def test_backward_through_a_sum_of_2000_values_deeper_than_the_recursion_limit():
    values = [Value(float(i)) for i in range(2000)]
    assert sys.getrecursionlimit() < 2000  # so a recursive search of this sum would fail
    sum(values).backward()
    assert all(value.grad == 1.0 for value in values)


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


# --- Data and tokenizer -------------------------------------------------------------------------

def test_read_documents_strips_and_drops_blank_lines_in_the_file_order(tmp_path):
    path = tmp_path / 'docs.txt'
    path.write_text('  emma \n\n\t\nolivia\r\nava\n  \nmia', encoding='utf-8')
    state = random.getstate()
    assert read_documents(str(path)) == ['emma', 'olivia', 'ava', 'mia']
    assert random.getstate() == state  # no draw from the random stream


def test_read_data_shuffles_with_the_first_draw_and_hashes_the_bytes(tmp_path, capsys):
    path = tmp_path / 'docs.txt'
    path.write_bytes(b'emma\nolivia\nava\nmia\n')
    random.seed(7)
    docs, digest = microgpt.read_data(str(path))
    random.seed(7)
    expected = ['emma', 'olivia', 'ava', 'mia']
    random.shuffle(expected)  # the random stream's first use, as in the reference
    assert docs == expected
    assert digest == hashlib.sha256(b'emma\nolivia\nava\nmia\n').hexdigest()
    assert capsys.readouterr().out == 'num docs: 4\n'


def test_read_documents_refuses_a_file_without_documents(tmp_path):
    path = tmp_path / 'blank.txt'
    path.write_text(' \n\n \t\n', encoding='utf-8')
    with pytest.raises(ValueError, match='no documents'):
        read_documents(str(path))


def test_read_documents_refuses_non_utf8_with_a_value_error(tmp_path):
    path = tmp_path / 'latin1.txt'
    path.write_bytes('jos\xe9\n'.encode('latin-1'))
    with pytest.raises(UnicodeDecodeError):
        read_documents(str(path))
    assert issubclass(UnicodeDecodeError, ValueError)  # so main() reports it as bad input


def test_read_documents_lets_a_missing_file_raise_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_documents(str(tmp_path / 'nothing.txt'))


def test_read_documents_drops_a_byte_order_mark(tmp_path):
    path = tmp_path / 'bom.txt'
    path.write_bytes('\ufeffemma\nava\n'.encode('utf-8'))
    assert sorted(read_documents(str(path))) == ['ava', 'emma']  # no '\ufeff' in the vocabulary


def test_tokenizer_ids_are_the_sorted_characters_then_bos():
    tok = Tokenizer('banana\ncab')
    assert tok.chars == ['\n', 'a', 'b', 'c', 'n']
    assert (tok.BOS, tok.vocab_size) == (5, 6)
    assert tok.encode('cab') == [5, 3, 1, 2]  # BOS first: the beginning of a document
    assert tok.encode('') == [5]
    assert tok.decode([5, 3, 1, 2, 5]) == 'cab'  # BOS dropped wherever it is


def test_tokenizer_refuses_unknown_characters_naming_them():
    with pytest.raises(ValueError, match="'z'"):
        Tokenizer('abc').encode('abz')


# --- Helpers ----------------------------------------------------------------------------------

def test_dot_is_one_node_whose_local_gradients_are_the_other_sides_data():
    rng = random.Random(0)
    ws = [Value(rng.uniform(-1, 1)) for _ in range(37)]
    xs = [Value(rng.uniform(-1, 1)) for _ in range(37)]
    chain = 0
    for w, x in zip(ws, xs):
        chain = chain + w * x  # the reference's chain of * and + nodes
    fused = dot(ws, xs)
    # sum() adds left to right up to Python 3.11 and on PyPy 3.9 (the same floats as the chain);
    # from 3.12 it rounds more exactly, so the last bit may differ.
    assert fused.data == pytest.approx(chain.data, rel=1e-15, abs=1e-15)
    assert fused.children == [*ws, *xs]  # one node, where the chain built 2 * 37
    fused.backward()
    assert [w.grad for w in ws] == [x.data for x in xs]
    assert [x.grad for x in xs] == [w.data for w in ws]


def test_backward_follows_a_topological_order_on_a_diamond():
    # d reaches a both directly and through b and c, by paths of different lengths: a value's
    # gradient must be complete before it is passed on, or a.grad would miss a contribution.
    a = Value(2.0)
    b = a * 3.0
    c = b + a
    d = b * c + a

    def floats(x):
        y = x * 3.0
        return (y + x) * y + x
    d.backward()
    assert d.data == floats(2.0) == 50.0  # d = (3a + a) * 3a + a = 12a^2 + a
    assert a.grad == 24 * 2.0 + 1 == pytest.approx(numeric_grads(floats, [2.0])[0], rel=1e-9)


def test_linear_is_one_dot_per_row():
    w = [[Value(1.0), Value(2.0)], [Value(-3.0), Value(0.5)]]
    x = [Value(4.0), Value(-1.0)]
    out = linear(x, w)
    assert [o.data for o in out] == [2.0, -12.5]
    assert [o.children for o in out] == [row + x for row in w]  # one node each: row, then x


def test_softmax_is_exp_over_the_sum_and_stable_for_huge_logits():
    probs = [p.data for p in softmax([Value(1.0), Value(2.0), Value(3.0)])]
    total = math.exp(-2) + math.exp(-1) + 1
    assert probs == pytest.approx([math.exp(-2) / total, math.exp(-1) / total, 1 / total],
                                  rel=1e-15)
    assert [p.data for p in softmax([Value(1000.0), Value(1000.0)])] == [0.5, 0.5]


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
    model = GPT(Tokenizer('abc'), n_layer=2, n_embd=8, n_head=2, block_size=5)
    doc = 'acbba'  # BOS + 5 characters + BOS: 6 predictions, cut to the block's 5
    document_loss(model, doc).backward()
    checked = random.Random(1).sample(model.params, 40)
    h = 1e-6
    for p in checked:
        original = p.data
        p.data = original + h
        up = document_loss(model, doc).data
        p.data = original - h
        down = document_loss(model, doc).data
        p.data = original
        assert p.grad == pytest.approx((up - down) / (2 * h), rel=1e-4, abs=1e-8)


def test_document_loss_is_the_mean_cross_entropy_of_bos_doc_bos():
    random.seed(4)
    model = GPT(Tokenizer('ab'), n_embd=4, n_head=2, block_size=8)
    tokens = [2, 0, 1, 1, 2]  # BOS a b b BOS
    cache = model.empty_cache()
    expected = 0.0
    for i in range(4):
        logits = [z.data for z in model(tokens[i], i, cache)]
        expected -= math.log(math.exp(logits[tokens[i + 1]]) / sum(map(math.exp, logits)))
    assert document_loss(model, 'abb').data == pytest.approx(expected / 4, rel=1e-12)


def test_parameters_are_created_in_the_reference_order_and_count():
    random.seed(0)
    model = GPT(Tokenizer('ab'), n_layer=2, n_embd=4, n_head=2, block_size=3)
    random.seed(0)
    first = random.gauss(0, 0.08)
    assert model.params[0].data == first  # wte[0][0] is drawn first
    # wte, wpe, lm_head, then per layer 4 square attention matrices and the 4x-wide MLP
    assert len(model.params) == 3 * 4 + 3 * 4 + 3 * 4 + 2 * (4 * 16 + 2 * 64)


@pytest.mark.parametrize('n_layer, n_embd, n_head, block_size', [(1, 16, 4, 16), (2, 8, 1, 4),
                                                                 (3, 6, 3, 2)])
def test_model_runs_at_any_size(n_layer, n_embd, n_head, block_size):
    model = GPT(Tokenizer('xyz'), n_layer, n_embd, n_head, block_size)
    cache = model.empty_cache()
    for pos in range(block_size):
        logits = model(model.tokenizer.BOS if pos == 0 else 1, pos, cache)
        assert len(logits) == model.tokenizer.vocab_size == 4
    assert all(len(keys) == len(values) == block_size for keys, values, _ in cache)
    assert len(cache) == n_layer


@pytest.mark.parametrize('sizes', [{'n_layer': 0}, {'n_embd': 0}, {'n_head': 0},
                                   {'block_size': 0}, {'n_embd': 10, 'n_head': 4},
                                   {'n_layer': -1}])
def test_gpt_refuses_sizes_that_make_no_model_with_a_value_error(sizes):
    with pytest.raises(ValueError, match='at least 1|divide'):  # a ValueError, not SystemExit
        GPT(Tokenizer('ab'), **sizes)


# --- Adam, training, sampling ---------------------------------------------------------------

def test_adam_on_a_hand_checkable_case():
    p = Value(1.0)
    p.grad = 2.0
    m, v = [0.0], [0.0]
    adam([p], m, v, step=0, lr=0.1)
    # first step: m = 0.15 * 2 = 0.3, v = 0.01 * 4 = 0.04; the bias corrections undo the 0.15 and
    # 0.01, so the step is lr * 2 / (sqrt(4) + eps): about lr, against the gradient.
    assert m == [pytest.approx(0.3)] and v == [pytest.approx(0.04)]
    assert p.data == pytest.approx(1.0 - 0.1 * 2.0 / (2.0 + 1e-8), rel=1e-12)
    assert p.grad == 0.0
    p.grad = 2.0
    adam([p], m, v, step=5, lr=0.05)
    m_hat, v_hat = (0.85 * 0.3 + 0.3) / (1 - 0.85 ** 6), (0.99 * 0.04 + 0.04) / (1 - 0.99 ** 6)
    assert p.data == pytest.approx(0.9 - 0.05 * m_hat / (v_hat ** 0.5 + 1e-8), rel=1e-9)


def test_train_decays_the_learning_rate_linearly_to_0_from_any_start(monkeypatch):
    rates = []
    monkeypatch.setattr(microgpt, 'adam', lambda params, m, v, step, lr: rates.append((step, lr)))
    model = GPT(Tokenizer('ab'), n_embd=4, n_head=1, block_size=4)
    list(train(model, ['ab', 'ba'], 4, lr=0.1))
    list(train(model, ['ab', 'ba'], 4, lr=0.1, start=2))
    expected = [(0, 0.1), (1, 0.075), (2, 0.05), (3, 0.025), (2, 0.05), (3, 0.025)]
    assert rates == [(step, pytest.approx(lr, rel=1e-12)) for step, lr in expected]


def test_training_matches_the_reference_losses_and_samples():
    docs = shuffled_tiny_names()
    model = GPT(Tokenizer(''.join(docs)))
    assert (model.tokenizer.vocab_size, len(model.params)) == (19, 3936)
    steps_and_losses = list(train(model, docs, 12))
    assert [step for step, _ in steps_and_losses] == list(range(12))
    assert [loss for _, loss in steps_and_losses] == pytest.approx(TINY_LOSSES, rel=0, abs=1e-12)
    assert [sample(model, 0.5) for _ in range(5)] == TINY_SAMPLES


def test_train_refuses_a_step_whose_loss_is_not_finite():
    docs = shuffled_tiny_names()
    model = GPT(Tokenizer(''.join(docs)), n_embd=4, n_head=1, block_size=8)
    losses = []
    with pytest.raises(FloatingPointError) as raised:
        for _, loss in train(model, docs, 5, lr=1e300):  # step 1 throws the weights to ~1e300
            losses.append(loss)
            after_last_step = [p.data for p in model.params]
    assert losses and all(math.isfinite(loss) for loss in losses)
    assert str(raised.value) == 'the loss is nan'  # the caller knows the step: it was counting
    assert [p.data for p in model.params] == after_last_step  # the refused step changed nothing
    assert not math.isfinite(document_loss(model, docs[len(losses)]).data)  # the refused step


@pytest.mark.parametrize('kwargs, expected', [
    ({'temperature': 0}, 'temperature'), ({'temperature': -1.0}, 'temperature'),
    ({'temperature': math.inf}, 'temperature'), ({'temperature': math.nan}, 'temperature'),
    ({'top_k': -1}, 'top_k'), ({'prompt': 'abab'}, 'prompt')])
def test_sample_refuses_arguments_that_make_no_sense_with_a_value_error(kwargs, expected):
    model = GPT(Tokenizer('ab'), n_embd=4, n_head=1, block_size=4)
    with pytest.raises(ValueError, match=expected):
        sample(model, **kwargs)


def test_train_refuses_an_empty_list_of_documents_with_a_value_error():
    model = GPT(Tokenizer('ab'), n_embd=4, n_head=1, block_size=4)
    with pytest.raises(ValueError, match='no documents'):
        next(train(model, [], 3))
    assert list(train(model, [], 0)) == []  # nothing to train: nothing needed


def test_a_document_longer_than_the_block_is_cut_before_it_is_encoded():
    random.seed(1)
    model = GPT(Tokenizer('ab'), n_embd=4, n_head=1, block_size=4)
    # 'Z' is not in the vocabulary, but it lies past the block: only 'abab' is read, as the
    # reference reads it. A 20 MB line costs no more than its first block.
    assert document_loss(model, 'ababZZZ' * 1000).data == document_loss(model, 'abab').data


def test_samples_stay_within_the_vocabulary_and_the_block():
    random.seed(7)
    model = GPT(Tokenizer('ab'), block_size=5)
    texts = [sample(model, temperature=3.0) for _ in range(100)]
    assert all(set(t) <= {'a', 'b'} and len(t) <= 5 for t in texts)
    assert max(len(t) for t in texts) == 5  # hot sampling from an untrained model runs long


def test_prompt_up_to_one_short_of_the_block_is_continued():
    random.seed(0)
    model = GPT(Tokenizer('ab'), block_size=4)
    texts = [sample(model, 1.0, prompt='aba') for _ in range(20)]
    assert all(t.startswith('aba') and len(t) <= 4 for t in texts)


def trained_tiny_model(steps=5):
    docs = shuffled_tiny_names()
    model = GPT(Tokenizer(''.join(docs)), n_layer=2, n_embd=8, n_head=2, block_size=10)
    for _ in train(model, docs, steps):
        pass
    return model


def greedy_next_tokens(model, tokens):
    """The argmax of the logits after each of tokens, recomputed from the model."""
    cache = model.empty_cache()
    best = []
    for pos, token in enumerate(tokens):
        logits = [z.data for z in model(token, pos, cache)]
        best.append(max(range(len(logits)), key=logits.__getitem__))
    return best


def test_top_k_1_picks_the_likeliest_token_at_every_position():
    model = trained_tiny_model()
    random.seed(11)
    texts = [sample(model, 0.5, top_k=1) for _ in range(3)] + [sample(model, 2.0, 'ja', top_k=1)]
    assert texts[0] == texts[1] == texts[2]  # no choice left to chance
    for text, prompt in zip(texts, ['', '', '', 'ja']):
        tokens = model.tokenizer.encode(text)
        ended = len(text) < model.block_size  # it stopped by drawing BOS, not at the block's end
        drawn = (tokens + [model.tokenizer.BOS] * ended)[len(prompt) + 1:]
        context = tokens if ended else tokens[:-1]  # the tokens each drawn token was drawn after
        assert greedy_next_tokens(model, context)[len(prompt):] == drawn


def test_top_k_draws_only_among_the_k_likeliest(monkeypatch):
    random.seed(5)
    model = GPT(Tokenizer('abcdef'), n_embd=4, n_head=1, block_size=6)
    draws = []
    choices = random.choices

    def recording_choices(population, weights):
        draws.append((weights, choices(population, weights=weights)[0]))
        return [draws[-1][1]]
    monkeypatch.setattr(random, 'choices', recording_choices)
    texts = [sample(model, 3.0, top_k=2) for _ in range(30)]
    monkeypatch.undo()
    for text in texts:  # every drawn token is among the 2 largest logits where it was drawn
        tokens = model.tokenizer.encode(text)
        tokens += [model.tokenizer.BOS] * (len(text) < model.block_size)
        cache = model.empty_cache()
        for pos in range(len(tokens) - 1):
            logits = [z.data for z in model(tokens[pos], pos, cache)]
            assert tokens[pos + 1] in sorted(range(7), key=logits.__getitem__)[-2:]
    assert all(sum(w > 0 for w in weights) == 2 for weights, _ in draws)
    assert len({token for _, token in draws}) > 2  # the top 2 differ from position to position


def test_explain_gives_the_softmax_of_the_logits_top_5_descending():
    model = trained_tiny_model()
    predictions, _ = explain(model, 'emma')
    names = model.tokenizer.chars + ['<end>']
    tokens = model.tokenizer.encode('emma')
    cache = model.empty_cache()
    assert len(predictions) == 5  # after BOS, e, em, emm, emma
    for pos, top in enumerate(predictions):
        logits = [z.data for z in model(tokens[pos], pos, cache)]
        exps = [math.exp(z - max(logits)) for z in logits]
        expected = sorted(zip([e / sum(exps) for e in exps], names), reverse=True)[:5]
        assert [char for _, char in top] == [char for _, char in expected]
        assert [p for p, _ in top] == pytest.approx([p for p, _ in expected], rel=1e-12)
        assert len(top) == 5 and all(a[0] >= b[0] for a, b in zip(top, top[1:]))


def test_explain_names_bos_end_and_covers_a_small_vocabulary_whole():
    random.seed(2)
    model = GPT(Tokenizer('ab'), n_embd=4, n_head=1, block_size=4)
    for top in explain(model, 'ab')[0]:
        assert sorted(char for _, char in top) == ['<end>', 'a', 'b']
        assert sum(p for p, _ in top) == pytest.approx(1.0, rel=1e-12)


def test_explain_refuses_a_text_as_long_as_the_block_with_a_value_error():
    model = GPT(Tokenizer('ab'), n_embd=4, n_head=1, block_size=4)
    assert len(explain(model, 'aba')[0]) == 4  # BOS and 3 characters: the whole block
    with pytest.raises(ValueError, match='shorter than the block, 4 characters'):
        explain(model, 'abab')


def test_attention_rows_are_probabilities_one_weight_per_position_so_far():
    model = trained_tiny_model()  # 2 layers, 2 heads
    _, attention = explain(model, 'olivia')
    assert len(attention) == 2 and all(len(heads) == 2 for heads in attention)
    for heads in attention:
        for rows in heads:
            assert [len(row) for row in rows] == [1, 2, 3, 4, 5, 6, 7]  # BOS and 6 characters
            assert all(sum(row) == pytest.approx(1.0, rel=1e-12) for row in rows)
            assert all(0 < weight < 1 for row in rows[1:] for weight in row)


def test_attention_weights_are_the_softmax_of_scaled_dot_products_by_hand():
    numbers = iter([math.sin(i + 1) for i in range(10_000)])  # known parameters
    model = GPT(Tokenizer('ab'), n_layer=1, n_embd=4, n_head=2, block_size=4,
                init=lambda: next(numbers))

    def rms(x):
        scale = (sum(v * v for v in x) / len(x) + 1e-5) ** -0.5
        return [v * scale for v in x]

    def times(w, x):
        return [sum(wi.data * xi for wi, xi in zip(row, x)) for row in w]
    layer, tokens = model.layers[0], model.tokenizer.encode('bab')  # BOS b a b
    inputs = [rms(rms([t.data + p.data for t, p in zip(model.wte[token], model.wpe[pos])]))
              for pos, token in enumerate(tokens)]  # what the first layer's attention reads
    queries = [times(layer['wq'], x) for x in inputs]
    keys = [times(layer['wk'], x) for x in inputs]
    _, attention = explain(model, 'bab')
    for head in range(2):
        part = slice(2 * head, 2 * head + 2)  # head_dim 2
        for i in range(4):
            scores = [sum(q * k for q, k in zip(queries[i][part], keys[t][part])) / math.sqrt(2)
                      for t in range(i + 1)]
            exps = [math.exp(s - max(scores)) for s in scores]
            expected = [e / sum(exps) for e in exps]
            assert attention[0][head][i] == pytest.approx(expected, rel=1e-12)


# --- The loss curve -------------------------------------------------------------------------

@pytest.mark.parametrize('losses, width, line', [
    ([float(i) for i in range(8)], 40,
     f'loss curve: 0.0000 {BLOCKS} 7.0000 (8 slices of the steps)'),
    # 8 losses in 4 slices of 2: means 3, 3, 1, 2; 2 is half way, 3.5 of 7, rounded to even: 4
    ([4.0, 2.0, 3.0, 3.0, 1.0, 1.0, 2.0, 2.0], 4,
     'loss curve: 3.0000 \u2588\u2588\u2581\u2585 2.0000 (4 slices of the steps)'),
    # 10 losses in 4 slices of 2, 3, 2, 3 steps: means 1, 2, 5, 8
    ([1, 1, 2, 2, 2, 5, 5, 8, 8, 8], 4,
     'loss curve: 1.0000 \u2581\u2582\u2585\u2588 8.0000 (4 slices of the steps)'),
    ([2.5, 2.5, 2.5], 40, 'loss curve: 2.5000 \u2581\u2581\u2581 2.5000 (3 slices of the steps)'),
])
def test_sparkline_of_known_losses(losses, width, line):
    assert sparkline(losses, 'utf-8', width) == line
    ascii_line = line.translate(str.maketrans(BLOCKS, RAMP))
    assert sparkline(losses, 'ascii', width) == ascii_line  # when the blocks cannot be printed
    assert sparkline(losses, 'cp1252', width) == ascii_line


def test_sparkline_has_at_most_width_characters():
    line = sparkline([3.0 - i / 100 for i in range(1000)], 'utf-8')
    curve = line.split(' ')[3]
    assert len(curve) == 40 and curve[0] == BLOCKS[-1] and curve[-1] == BLOCKS[0]
    assert line.endswith('(40 slices of the steps)')


# --- Checkpoints ------------------------------------------------------------------------------

def a_run(model, **fields):
    """A run like the command line's: its settings, then its state."""
    n = len(model.params)
    return {'seed': 42, 'steps': 5, 'lr': 0.01, 'samples': 20, 'temperature': 0.5, 'top_k': 0,
            'prompt': '', 'losses': [], 'm': [0.0] * n, 'v': [0.0] * n, 'data': '', 'sha256': '',
            'pretrained': False, **fields}


def test_save_then_load_gives_identical_parameters_run_and_samples(tmp_path):
    model = trained_tiny_model()
    path = str(tmp_path / 'model.json')
    run_in = a_run(model, losses=[3.1, 2.9], m=[0.1] * len(model.params), samples=7, prompt='e')
    save(model, path, run_in)
    loaded, run_out = load(path)
    assert [p.data for p in loaded.params] == [p.data for p in model.params]  # exactly
    assert (loaded.tokenizer.chars, loaded.n_layer, loaded.n_embd, loaded.n_head,
            loaded.block_size) == (model.tokenizer.chars, 2, 8, 2, 10)
    assert {k: run_out[k] for k in run_in} == run_in
    random.seed(5)
    before = [sample(model, 0.8) for _ in range(10)]
    random.seed(5)
    assert [sample(loaded, 0.8) for _ in range(10)] == before
    assert os.listdir(tmp_path) == ['model.json']  # no temporary file left behind


def test_checkpoint_is_json_version_3_with_settings_vocab_params_run_and_random_state(tmp_path):
    path = tmp_path / 'model.json'
    model = trained_tiny_model(1)
    random.seed(9)
    state = random.getstate()
    save(model, str(path), a_run(model))
    ckpt = json.loads(path.read_text(encoding='utf-8'))
    assert (ckpt['format'], ckpt['version']) == ('microgpt', 3)
    assert ckpt['config'] == {'n_layer': 2, 'n_embd': 8, 'n_head': 2, 'block_size': 10}
    assert ckpt['vocab'] == ''.join(sorted(set(''.join(TINY_NAMES))))
    assert ckpt['params'] == [p.data for p in model.params]
    assert json.loads(json.dumps(state)) == ckpt['run']['random']  # the stream, to continue it
    assert {k: ckpt['run'][k] for k in ('samples', 'temperature', 'top_k', 'prompt')} == {
        'samples': 20, 'temperature': 0.5, 'top_k': 0, 'prompt': ''}  # what the run samples


def test_save_refuses_a_model_that_is_not_finite_and_keeps_the_old_file(tmp_path):
    model = trained_tiny_model(1)
    path = tmp_path / 'model.json'
    save(model, str(path), a_run(model))
    old = path.read_bytes()
    model.params[7].data = math.nan
    with pytest.raises(FloatingPointError):
        save(model, str(path), a_run(model))
    model.params[7].data = math.inf
    with pytest.raises(FloatingPointError):
        save(model, str(path), a_run(model))
    assert path.read_bytes() == old


def test_a_full_disk_during_save_leaves_the_old_checkpoint_and_no_temporary_file(tmp_path,
                                                                                 monkeypatch):
    model = trained_tiny_model(1)
    path = tmp_path / 'model.json'
    save(model, str(path), a_run(model))
    old = path.read_bytes()

    def disk_full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(os, 'fsync', disk_full)
    saved = model.params[0].data
    model.params[0].data = 1.5  # a different model, that must not reach the file
    with pytest.raises(OSError) as raised:
        save(model, str(path), a_run(model))
    assert raised.value.errno == errno.ENOSPC
    assert path.read_bytes() == old and os.listdir(tmp_path) == ['model.json']
    monkeypatch.undo()
    assert load(str(path))[0].params[0].data == saved


def test_a_symlink_planted_where_a_temporary_file_might_go_is_not_followed(tmp_path):
    model = trained_tiny_model(1)
    victim = tmp_path / 'victim.txt'
    victim.write_text('keep me', encoding='utf-8')
    for name in ('model.json.tmp', 'model.json~', '.model.json.tmp'):  # the names one might guess
        (tmp_path / name).symlink_to(victim)
    save(model, str(tmp_path / 'model.json'), a_run(model))
    assert victim.read_text(encoding='utf-8') == 'keep me'
    assert load(str(tmp_path / 'model.json'))[0].params[0].data == model.params[0].data


@pytest.mark.parametrize('target', ['the data', 'a FIFO', 'a folder'])
def test_save_refuses_the_data_and_what_is_not_a_regular_file_leaving_it_as_it_was(target,
                                                                                  tmp_path):
    model = trained_tiny_model(1)
    data = tmp_path / 'names.txt'
    data.write_text('emma\n', encoding='utf-8')
    path = {'the data': data, 'a FIFO': tmp_path / 'fifo', 'a folder': tmp_path}[target]
    if target == 'a FIFO':
        os.mkfifo(path)
    with pytest.raises(ValueError, match='the data or not a regular file'):
        save(model, str(path), a_run(model, data=str(data)))
    assert data.read_text(encoding='utf-8') == 'emma\n' and path.exists()
    assert target != 'a FIFO' or stat.S_ISFIFO(os.stat(path).st_mode)


CONCURRENT_SAVES = """
import random, sys
import microgpt
random.seed(int(sys.argv[2]))
model = microgpt.GPT(microgpt.Tokenizer('abc'), n_embd=8, n_head=2, block_size=8)
run = {'seed': 1, 'steps': 5, 'lr': 0.01, 'samples': 20, 'temperature': 0.5, 'top_k': 0,
       'prompt': '', 'losses': [], 'm': [0.0] * len(model.params), 'v': [0.0] * len(model.params),
       'data': '', 'sha256': '', 'pretrained': False}
for _ in range(40):
    microgpt.save(model, sys.argv[1], run)
"""


def test_two_runs_saving_to_one_path_leave_one_whole_checkpoint(tmp_path):
    path = tmp_path / 'shared.json'
    writers = [subprocess.Popen([sys.executable, '-c', CONCURRENT_SAVES, str(path), str(seed)],
                                cwd=HERE) for seed in (1, 2)]
    reads = 0
    while any(w.poll() is None for w in writers):
        if path.exists():
            load(str(path))  # every version on disk is whole: this raises on broken JSON
            reads += 1
    assert [w.wait() for w in writers] == [0, 0] and reads > 0
    assert load(str(path))[1]['steps'] == 5  # the last writer's, whole
    assert sorted(os.listdir(tmp_path)) == ['shared.json']  # no temporary file left


@pytest.fixture
def checkpoint(tmp_path):
    model = trained_tiny_model(1)
    path = tmp_path / 'good.json'
    save(model, str(path), a_run(model, losses=[3.0, 2.9]))
    return path


def rewrite(path, change):
    ckpt = json.loads(path.read_text(encoding='utf-8'))
    change(ckpt)
    path.write_text(json.dumps(ckpt), encoding='utf-8')
    return str(path)


def edit_run(field, value):
    return lambda p: rewrite(p, lambda c: c['run'].__setitem__(field, value))


def drop_run(field):
    return lambda p: rewrite(p, lambda c: c['run'].pop(field))


# Each way a checkpoint can be wrong, and the field the one-line error must name.
CHECKPOINT_ERRORS = {
    'corrupt': (lambda p: p.write_text('{"format": nonsense') and str(p), 'text'),
    'truncated': (lambda p: p.write_text(p.read_text()[:-500]) and str(p), 'text'),
    'not UTF-8': (lambda p: p.write_bytes(b'\xff\xfe{}') and str(p), 'text'),
    'a JSON list': (lambda p: p.write_text('[1, 2]') and str(p), 'text'),
    'a JSON number': (lambda p: p.write_text('3') and str(p), 'text'),
    'wrong format': (lambda p: rewrite(p, lambda c: c.update(format='other')), 'format'),
    'version 1': (lambda p: rewrite(p, lambda c: c.update(version=1)), 'version'),
    'version 2': (lambda p: rewrite(p, lambda c: c.update(version=2)), 'version'),
    'version true': (lambda p: rewrite(p, lambda c: c.update(version=True)), 'version'),
    'reversed vocabulary': (lambda p: rewrite(p, lambda c: c.update(vocab=c['vocab'][::-1])),
                            'vocab'),
    'a repeated character': (lambda p: rewrite(p, lambda c: c.update(vocab='a' + c['vocab'])),
                             'vocab'),
    'zero heads': (lambda p: rewrite(p, lambda c: c['config'].update(n_head=0)), 'config'),
    'unknown setting': (lambda p: rewrite(p, lambda c: c['config'].update(dropout=0.1)), 'config'),
    'too few parameters': (lambda p: rewrite(p, lambda c: c['params'].pop()), 'params'),
    'too many parameters': (lambda p: rewrite(p, lambda c: c['params'].append(1.0)), 'params'),
    'a trailing null parameter': (lambda p: rewrite(p, lambda c: c['params'].append(None)),
                                  'params'),
    'a parameter is text': (lambda p: rewrite(p, lambda c: c['params'].__setitem__(3, 'x')),
                            'params'),
    'a NaN parameter': (lambda p: rewrite(p, lambda c: c['params'].__setitem__(3, math.nan)),
                        'params'),
    'an infinite parameter': (lambda p: rewrite(p, lambda c: c['params'].__setitem__(0, math.inf)),
                              'params'),
    'no params': (lambda p: rewrite(p, lambda c: c.pop('params')), 'params'),
    'a huge config': (lambda p: rewrite(p, lambda c: c['config'].update(n_embd=10**6)), 'params'),
    'heads that do not divide the width': (lambda p: rewrite(p, lambda c: c['config'].update(
        n_head=3)), 'config'),
    'run a list': (lambda p: rewrite(p, lambda c: c.update(run=[1, 2])), 'run'),
    'run a string': (lambda p: rewrite(p, lambda c: c.update(run='run')), 'run'),
    'run missing': (lambda p: rewrite(p, lambda c: c.pop('run')), 'run'),
    'sha256 missing': (drop_run('sha256'), 'run.sha256'),
    'pretrained missing': (drop_run('pretrained'), 'run.pretrained'),
    'random missing': (drop_run('random'), 'run.random'),
    'an unknown run field': (edit_run('bogus', 'x'), 'run.bogus'),
    'an unknown field': (lambda p: rewrite(p, lambda c: c.update(extra=1)), 'extra'),
    'steps a string': (edit_run('steps', 'many'), 'run.steps'),
    'steps fractional': (edit_run('steps', 12.5), 'run.steps'),
    'steps negative': (edit_run('steps', -3), 'run.steps'),
    'lr a string': (edit_run('lr', 'fast'), 'run.lr'),
    'lr zero': (edit_run('lr', 0), 'run.lr'),
    'seed a list': (edit_run('seed', [1]), 'run.seed'),
    'temperature NaN': (edit_run('temperature', math.nan), 'run.temperature'),
    'prompt null': (edit_run('prompt', None), 'run.prompt'),
    'losses a string': (edit_run('losses', 'low'), 'run.losses'),
    'losses an empty string': (edit_run('losses', ''), 'run.losses'),
    'losses an empty object': (edit_run('losses', {}), 'run.losses'),
    'config a list': (lambda p: rewrite(p, lambda c: c.update(config=[1, 16, 4, 16])), 'config'),
    'config a string': (lambda p: rewrite(p, lambda c: c.update(config='abc')), 'config'),
    'a parameter true': (lambda p: rewrite(p, lambda c: c['params'].__setitem__(0, True)),
                         'params'),
    'm of booleans': (lambda p: rewrite(p, lambda c: c['run'].update(
        m=[False] * len(c['run']['m']))), 'run.m'),
    'losses NaN': (edit_run('losses', [3.0, math.nan]), 'run.losses'),
    'more losses than steps': (edit_run('losses', [3.0] * 6), 'run.losses'),
    'm too short': (lambda p: rewrite(p, lambda c: c['run']['m'].pop()), 'run.m'),
    'm a string': (edit_run('m', 'zeros'), 'run.m'),
    'v too short': (lambda p: rewrite(p, lambda c: c['run']['v'].pop()), 'run.v'),
    'v negative': (lambda p: rewrite(p, lambda c: c['run']['v'].__setitem__(0, -1.0)), 'run.v'),
    'data null': (edit_run('data', None), 'run.data'),
    'pretrained a string': (edit_run('pretrained', 'no'), 'run.pretrained'),
    'random malformed': (edit_run('random', [3, [1, 2, 3], None]), 'run.random'),
    'random a string': (edit_run('random', 'seed'), 'run.random'),
    'random of an unknown version': (lambda p: rewrite(p, lambda c: c['run']['random'].__setitem__(
        0, 4)), 'run.random'),
}


@pytest.mark.parametrize('case', CHECKPOINT_ERRORS)
def test_load_raises_a_value_error_naming_the_field_that_is_wrong(case, checkpoint):
    make, field = CHECKPOINT_ERRORS[case]
    path = make(checkpoint)
    with pytest.raises(ValueError) as raised:
        load(path)
    message = str(raised.value)
    assert message.startswith(f'{path} is not a microgpt checkpoint: ')
    assert f'its {field} ' in message, message


def test_a_huge_config_is_refused_having_built_no_more_than_the_saved_numbers(checkpoint,
                                                                              monkeypatch):
    # Built in full, 8 layers of width 10**6 would need 10**14 parameters.
    path = rewrite(checkpoint, lambda c: c['config'].update(n_layer=8, n_embd=10**6, n_head=1))
    saved = len(json.loads(checkpoint.read_text())['params'])
    built = []

    class CountedValue(Value):
        def __init__(self, *args):
            built.append(self)
            assert len(built) <= saved, 'load() builds more parameters than the file holds'
            super().__init__(*args)
    monkeypatch.setattr(microgpt, 'Value', CountedValue)
    with pytest.raises(ValueError, match='its params must be as many numbers as the sizes need'):
        load(path)


def test_load_lets_a_missing_file_raise_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(str(tmp_path / 'nothing.json'))


def test_a_run_resumed_from_a_checkpoint_is_the_straight_run_bit_for_bit(tiny_file, tmp_path):
    # The straight run: 12 steps of the reference on the tiny names, then 5 samples.
    random.seed(42)
    docs = shuffled_documents(tiny_file)
    model = GPT(Tokenizer(''.join(docs)))
    straight = [loss for _, loss in train(model, docs, 12)]
    straight_samples = [sample(model) for _ in range(5)]
    assert straight == pytest.approx(TINY_LOSSES, rel=0, abs=1e-12)
    assert straight_samples == TINY_SAMPLES
    # The same run stopped after 5 steps and saved as the command line does.
    random.seed(42)
    docs = shuffled_documents(tiny_file)
    model = GPT(Tokenizer(''.join(docs)))
    run_out = a_run(model, steps=12)
    for _, loss in train(model, docs, 12, moments=(run_out['m'], run_out['v'])):
        run_out['losses'].append(loss)
        if len(run_out['losses']) == 5:
            break
    path = str(tmp_path / 'run.json')
    save(model, path, run_out)
    # Fresh objects, a disturbed random stream: everything must come back from the file.
    random.seed(12345)
    del model, run_out
    model, run_in = load(path)
    random.seed(run_in['seed'])
    docs = shuffled_documents(tiny_file)
    state = run_in['random']
    random.setstate((state[0], tuple(state[1]), state[2]))
    done = len(run_in['losses'])
    for step, loss in train(model, docs, run_in['steps'], run_in['lr'], done,
                            (run_in['m'], run_in['v'])):
        run_in['losses'].append(loss)
    assert run_in['losses'] == straight  # bit for bit
    assert [sample(model) for _ in range(5)] == straight_samples


def test_train_updates_the_moments_it_is_given_in_place():
    docs = shuffled_tiny_names()
    state = random.getstate()
    model = GPT(Tokenizer(''.join(docs)), n_embd=4, n_head=1, block_size=8)
    random.setstate(state)
    twin = GPT(Tokenizer(''.join(docs)), n_embd=4, n_head=1, block_size=8)
    document_loss(twin, docs[0]).backward()
    grads = [p.grad for p in twin.params]
    m, v = [0.0] * len(model.params), [0.0] * len(model.params)
    for _ in train(model, docs, 3, moments=(m, v)):
        break  # after the first step: m = (1 - 0.85) g, v = (1 - 0.99) g^2
    assert m == pytest.approx([0.15 * g for g in grads], rel=1e-12, abs=1e-300)
    assert v == pytest.approx([0.01 * g * g for g in grads], rel=1e-12, abs=1e-300)
    assert any(m)


# --- Command line ---------------------------------------------------------------------------

def test_cli_end_to_end(tiny_file):
    result = run('--data', tiny_file, '--steps', '12', '--samples', '5',
                 env={'PYTHONIOENCODING': 'utf-8'})
    assert result.returncode == 0 and result.stderr == ''
    lines = result.stdout.splitlines()
    # The reference's lines, byte for byte ...
    assert lines[:3] == ['num docs: 16', 'vocab size: 19', 'num params: 3936']
    assert lines[3:15] == [f'step {i + 1:4d} /   12 | loss {x:.4f}'
                           for i, x in enumerate(TINY_LOSSES)]
    assert lines[17:19] == ['', '--- inference (new, hallucinated names) ---']
    assert lines[19:24] == [f'sample {i + 1:2d}: {s}' for i, s in enumerate(TINY_SAMPLES)]
    # ... and ours: the curve, the loss on the 4 documents after the 12 trained on, what is new.
    assert lines[15] == sparkline(TINY_LOSSES, 'utf-8')
    assert re.fullmatch(r'held-out loss \d\.\d{4} on 4 documents never trained on \(mean of the '
                        r'last 12 steps: ' + f'{sum(TINY_LOSSES) / 12:.4f}' + r'\)', lines[16])
    assert lines[24:] == ['new: 5 of 5 samples are not in the data']  # none is a tiny name


def test_cli_steps_0_and_samples_0_skip_training_and_sampling(tiny_file, capsys):
    status, out, err = cli(capsys, '--data', tiny_file, '--steps', '0', '--samples', '0')
    assert (status, err) == (0, '')
    assert out.splitlines() == ['num docs: 16', 'vocab size: 19', 'num params: 3936']


def test_cli_finds_its_data_from_any_folder(tmp_path):
    result = run('--steps', '1', '--samples', '1', *SMALL, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('num docs: 32469\nvocab size: 27\n')
    held_out = rf'^held-out loss \d\.\d{{4}} on {microgpt.HELD_OUT} documents never trained on'
    assert re.search(held_out,
                     result.stdout,
                     re.MULTILINE)


def test_main_in_process_leaves_the_callers_signal_handlers_and_collector_alone(tiny_file, capsys):
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    assert cli(capsys, '--data', tiny_file, '--steps', '2', '--samples', '1', *SMALL)[0] == 0
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers
    assert gc.isenabled()
    gc.disable()  # a caller who turned the collector off keeps it off
    try:
        assert cli(capsys, '--data', tiny_file, '--steps', '1', '--samples', '1', *SMALL)[0] == 0
        assert not gc.isenabled()
    finally:
        gc.enable()
    assert cli(capsys, '--steps', '-1')[0] == 2  # and after an error too
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers
    assert gc.isenabled()


def test_the_installed_command_runs_what_the_script_runs():
    with open(os.path.join(HERE, 'pyproject.toml'), encoding='utf-8') as f:
        assert 'microgpt = "microgpt:program"' in f.read()  # COMMAND_RUN, tested below


def test_importing_runs_nothing():
    result = subprocess.run([sys.executable, '-c', 'import microgpt'], capture_output=True,
                            text=True, cwd=HERE, timeout=60, check=False)
    assert (result.returncode, result.stdout, result.stderr) == (0, '', '')


BAD_INPUTS = {
    'missing file': (['--data', 'no/such/file.txt'], ('no/such/file.txt', 'No such file')),
    'folder as data': (['--data', '.'], 'directory'),
    'non-UTF-8 data': (['--data', '{latin1}'], 'utf-8'),
    'empty data': (['--data', '{empty}'], 'no documents'),
    'zero temperature': (['--temperature', '0'], '--temperature'),
    'negative temperature': (['--temperature', '-1'], '--temperature'),
    'infinite temperature': (['--temperature', 'inf'], '--temperature'),
    'NaN temperature': (['--temperature', 'nan'], '--temperature'),
    'negative steps': (['--steps', '-1'], '--steps'),
    'negative samples': (['--samples', '-3'], '--samples'),
    'negative top-k': (['--top-k', '-1'], '--top-k'),
    'zero learning rate': (['--lr', '0'], '--lr'),
    'infinite learning rate': (['--lr', 'inf'], '--lr'),
    'NaN learning rate': (['--lr', 'nan'], '--lr'),
    'zero block size': (['--block-size', '0'], 'at least 1'),
    'zero layers': (['--n-layer', '0'], 'at least 1'),
    'zero width': (['--n-embd', '0'], 'at least 1'),
    'zero heads': (['--n-head', '0'], 'at least 1'),
    'width not divisible by heads': (['--n-embd', '10', '--n-head', '4'], 'divide'),
    'unknown flag': (['--epochs', '3'], 'unrecognized arguments: --epochs'),
    'not a number': (['--steps', 'many'], "invalid int value: 'many'"),
    'prompt outside the vocabulary': (['--prompt', 'Zoe'], "'Z'"),
    'prompt as long as the block': (['--prompt', 'emma', '--block-size', '4'], 'block'),
    'explain as long as the block': (['--explain', 'annabella', '--block-size', '8'], 'block'),
    'load and resume': (['--load', 'a.json', '--resume', 'a.json'], '--'),
}


def bad_input_args(case, tmp_path):
    (tmp_path / 'latin1.txt').write_bytes('jos\xe9\n'.encode('latin-1'))
    (tmp_path / 'empty.txt').write_text('\n  \n', encoding='utf-8')
    args, expected = BAD_INPUTS[case]
    return [a.format(latin1=tmp_path / 'latin1.txt', empty=tmp_path / 'empty.txt')
            for a in args], expected if isinstance(expected, tuple) else (expected,)


@pytest.mark.parametrize('case', BAD_INPUTS)
def test_bad_input_gets_one_line_and_exit_status_2(case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args, expected = bad_input_args(case, tmp_path)
    status, out, err = cli(capsys, '--steps', '3', '--samples', '2', *SMALL, *args)
    assert status == 2 and 'step' not in out
    one_error_line(err, *expected)


@pytest.mark.parametrize('case', ['non-UTF-8 data', 'NaN learning rate', 'infinite temperature',
                                  'zero heads', 'unknown flag'])
def test_bad_input_from_the_shell_has_no_traceback(case, tmp_path):
    args, expected = bad_input_args(case, tmp_path)
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 2 and 'step' not in result.stdout
    one_error_line(result.stderr, *expected)


@pytest.mark.parametrize('lr', ['1e300', '1e100'])  # the loss turns NaN; a gradient overflows
def test_a_diverging_run_exits_1_naming_the_step_and_the_rate(lr, tiny_file, tmp_path, capsys):
    path = tmp_path / 'run.json'
    status, out, err = cli(capsys, '--data', tiny_file, '--steps', '5', '--lr', lr, *SMALL,
                           '--save', path)
    assert status == 1
    one_error_line(err, 'lower --lr')  # what to do about it
    last = len(step_lines(out))  # the steps before the one that diverged were printed
    assert f'step {last + 1} diverged' in err and f'--lr {float(lr)}' in err
    assert f'{path} still holds step 0' in err  # what is on disk: the step-0 checkpoint
    text = path.read_text(encoding='utf-8')
    assert 'NaN' not in text and 'Infinity' not in text  # the last good checkpoint
    model, run_out = load(str(path))
    assert all(math.isfinite(p.data) for p in model.params) and run_out['losses'] == []


def test_a_checkpoint_written_by_one_run_is_loaded_by_another(tiny_file, tmp_path, capsys):
    path = str(tmp_path / 'model.json')
    status, out, _ = cli(capsys, '--data', tiny_file, '--steps', '8', '--samples', '0', *SMALL,
                         '--save', path)
    assert status == 0 and len(load(path)[1]['losses']) == 8  # the run's end, saved
    status, out, err = cli(capsys, '--load', path, '--steps', '0', '--samples', '6',
                           '--temperature', '0.8', '--seed', '3')
    assert (status, err) == (0, '')
    random.seed(3)
    model, _ = load(path)
    expected = [f'sample {i + 1:2d}: {sample(model, 0.8)}' for i in range(6)]
    # sampling from a checkpoint reads no data: no document count, no count of new samples
    assert out.splitlines() == ['vocab size: 19', f'num params: {len(model.params)}', '',
                                '--- inference (new, hallucinated names) ---'] + expected


def test_training_a_loaded_model_further_prints_no_held_out_loss(tiny_file, tmp_path, capsys):
    path = str(tmp_path / 'model.json')
    assert cli(capsys, '--data', tiny_file, '--steps', '3', '--samples', '0', *SMALL,
               '--save', path)[0] == 0
    status, out, err = cli(capsys, '--load', path, '--data', tiny_file, '--steps', '4',
                           '--samples', '2', '--save', path)
    assert (status, err) == (0, ''), err
    assert len(step_lines(out)) == 4 and 'step    4 /    4 | loss' in out
    assert 'loss curve: ' in out and 'held-out' not in out  # the first run's documents differ
    assert len(samples_of(out)) == 2 and 'of 2 samples are not in the data' in out
    assert len(load(path)[1]['losses']) == 4


@pytest.mark.parametrize('mode', ['--load', '--resume'])
@pytest.mark.parametrize('case', CHECKPOINT_ERRORS)
def test_any_bad_checkpoint_is_one_line_and_exit_2_before_training(case, mode, checkpoint,
                                                                    tiny_file, capsys):
    make, field = CHECKPOINT_ERRORS[case]
    steps = ['--steps', '3'] if mode == '--load' else []
    status, out, err = cli(capsys, mode, make(checkpoint), '--data', tiny_file, *steps)
    assert status == 2 and step_lines(out) == []
    one_error_line(err, 'is not a microgpt checkpoint', field)


def test_a_missing_checkpoint_is_one_line(tmp_path, capsys):
    status, out, err = cli(capsys, '--load', tmp_path / 'nothing.json', '--steps', '0')
    assert (status, out) == (2, '')
    one_error_line(err, 'No such file')


@pytest.mark.parametrize('args, expected', [
    (['--n-embd', '16'], '--n-embd'),
    (['--block-size=8'], '--block-size'),
    (['--prompt', 'Za'], "'Z'"),
    (['--prompt', 'emmaemmaem'], 'block'),
    (['--steps', '2', '--data', '{accented}'], "'\u00e9'"),
])
def test_load_rejects_conflicting_or_unknown_input(args, expected, checkpoint, tmp_path, capsys):
    (tmp_path / 'accented.txt').write_text('emma\nren\u00e9e\n', encoding='utf-8')
    args = [a.format(accented=tmp_path / 'accented.txt') for a in args]
    status, out, err = cli(capsys, '--load', checkpoint, '--steps', '0', '--samples', '2', *args)
    assert status == 2 and 'sample' not in out
    one_error_line(err, expected)


def test_save_into_a_missing_folder_fails_before_training(tiny_file, tmp_path, capsys):
    status, out, err = cli(capsys, '--data', tiny_file, *SMALL, '--save',
                           tmp_path / 'no' / 'm.json')
    assert status == 2 and step_lines(out) == []
    one_error_line(err, 'No such file or directory')


@pytest.mark.parametrize('target', ['the data', 'a FIFO', 'a symlink to the data'])
def test_save_onto_the_data_or_a_non_regular_file_is_refused_before_training(target, tmp_path,
                                                                            capsys):
    data = tmp_path / 'names.txt'
    data.write_text('\n'.join(TINY_NAMES) + '\n', encoding='utf-8')
    before = data.read_bytes()
    path = {'the data': data, 'a FIFO': tmp_path / 'fifo', 'a symlink to the data': tmp_path / 'ln'}
    path = path[target]
    if target == 'a FIFO':
        os.mkfifo(path)
    elif target == 'a symlink to the data':
        path.symlink_to(data)
    status, out, err = cli(capsys, '--data', data, '--steps', '3', *SMALL, '--save', path)
    assert status == 2 and step_lines(out) == []
    one_error_line(err, str(path), 'exists' if target != 'a FIFO' else 'not a regular file')
    assert data.read_bytes() == before and os.path.lexists(path)
    assert target != 'a FIFO' or stat.S_ISFIFO(os.stat(path).st_mode)


def test_a_disk_that_fills_during_training_keeps_the_old_checkpoint(
        tiny_file, tmp_path, capsys, monkeypatch):
    path = tmp_path / 'model.json'
    assert cli(capsys, '--data', tiny_file, '--steps', '2', '--samples', '0', *SMALL,
               '--save', path)[0] == 0
    old = path.read_bytes()

    def disk_full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(os, 'fsync', disk_full)
    status, _, err = cli(capsys, '--load', path, '--data', tiny_file, '--steps', '3',
                         '--samples', '0', '--save', path)  # train it further, in place
    assert status == 2
    one_error_line(err, os.strerror(errno.ENOSPC))
    assert path.read_bytes() == old


# --- Resuming a run -----------------------------------------------------------------------

def cli_ctrl_c_after(capsys, monkeypatch, step, *args):
    """main() in-process, with a Ctrl-C noted as microgpt's handler notes it in training, by its
    own Adam update of the given (0-based) step. The handler is checked on real processes below."""
    real_adam = microgpt.adam

    def adam_then_ctrl_c(params, m, v, at, *rest):
        real_adam(params, m, v, at, *rest)
        if at == step:
            microgpt.STOP['signals'].append(signal.SIGINT)
    monkeypatch.setattr(microgpt, 'adam', adam_then_ctrl_c)
    try:
        return cli(capsys, *args)
    finally:
        monkeypatch.setattr(microgpt, 'adam', real_adam)


@pytest.fixture
def interrupted(tiny_file, tmp_path, capsys, monkeypatch):
    """A run of 8 steps that a SIGINT stopped after step 3: (checkpoint path, its step lines)."""
    path = str(tmp_path / 'run.json')
    status, out, err = cli_ctrl_c_after(capsys, monkeypatch, 2, '--data', tiny_file, '--steps', '8',
                                        '--samples', '3', *SMALL, '--save', path)
    done = len(step_lines(out))
    assert status == 130 and 3 <= done < 8 and 'sample' not in out
    assert len(err.splitlines()) == 1 and f'interrupted at step {done}' in err
    assert f'--resume {path}' in err  # how to continue
    assert len(load(path)[1]['losses']) == done
    return path, step_lines(out)


def test_a_resumed_run_interrupted_again_resumes_again(interrupted, tiny_file, capsys,
                                                       monkeypatch):
    path, first_part = interrupted
    status, straight, _ = cli(capsys, '--data', tiny_file, '--steps', '8', '--samples', '3', *SMALL)
    status, out, err = cli_ctrl_c_after(capsys, monkeypatch, 5, '--resume', path)
    second_part = step_lines(out)
    assert status == 130 and len(first_part) + len(second_part) < 8 and 'sample' not in out
    assert len(err.splitlines()) == 1 and f'--resume {path}' in err  # the same file again
    assert len(load(path)[1]['losses']) == len(first_part) + len(second_part)
    status, out, err = cli(capsys, '--resume', path)  # its --samples 3 were kept
    assert (status, err) == (0, '')
    assert first_part + second_part + step_lines(out) == step_lines(straight)
    assert samples_of(out) == samples_of(straight)


def test_resume_continues_a_run_with_its_data_moved(interrupted, tiny_file, tmp_path, capsys):
    path, first_part = interrupted
    status, straight, _ = cli(capsys, '--data', tiny_file, '--steps', '8', '--samples', '3', *SMALL)
    assert status == 0
    moved = str(tmp_path / 'moved.txt')
    os.rename(tiny_file, moved)  # the same bytes somewhere else
    status, out, err = cli(capsys, '--resume', path, '--data', moved, '--samples', '3')
    assert (status, err) == (0, '')
    assert first_part + step_lines(out) == step_lines(straight)
    assert samples_of(out) == samples_of(straight) and len(samples_of(out)) == 3
    status, again, err = cli(capsys, '--resume', path, '--data', moved)  # the run is finished:
    assert (status, err) == (0, '')  # its report and samples again, with the samples it chose
    assert step_lines(again) == [] and samples_of(again) == samples_of(out)


def test_a_run_stopped_after_its_last_step_is_finished_and_resumes_to_its_report(tiny_file,
                                                                                 tmp_path, capsys,
                                                                                 monkeypatch):
    path = str(tmp_path / 'run.json')
    args = ['--data', tiny_file, '--steps', '6', '--samples', '4', '--prompt', 'e', *SMALL]
    status, straight, _ = cli(capsys, *args)
    status, out, err = cli_ctrl_c_after(capsys, monkeypatch, 5, *args, '--save', path)
    assert status == 130 and len(step_lines(out)) == 6 and samples_of(out) == []
    assert 'interrupted at step 6' in err
    status, out, err = cli(capsys, '--resume', path)  # the samples flags are the run's own
    assert (status, err) == (0, '') and step_lines(out) == []
    assert samples_of(out) == samples_of(straight) and len(samples_of(out)) == 4
    assert all(s.startswith('e') for s in samples_of(out))


def test_a_sampling_flag_given_with_resume_overrides_the_run_and_says_so(interrupted, capsys):
    path, _ = interrupted  # a run with --samples 3
    status, out, err = cli(capsys, '--resume', path, '--samples', '2', '--temperature', '0.5')
    assert (status, err) == (0, '')
    assert "--samples 2 instead of the run's 3" in out.splitlines()
    assert 'temperature' not in out  # the same value as the run's: nothing to say
    assert len(samples_of(out)) == 2
    assert load(path)[1]['samples'] == 2  # and the run goes on with it


def test_resume_refuses_data_with_other_bytes(interrupted, tiny_file, capsys):
    path, _ = interrupted
    with open(tiny_file, 'a', encoding='utf-8') as f:
        f.write('zoe\n')
    status, out, err = cli(capsys, '--resume', path)
    assert status == 2 and step_lines(out) == []
    one_error_line(err, 'SHA-256')


def test_resume_reports_its_missing_data_in_one_line(interrupted, tiny_file, capsys):
    path, _ = interrupted
    os.remove(tiny_file)
    status, out, err = cli(capsys, '--resume', path)
    assert status == 2 and step_lines(out) == []
    one_error_line(err, 'No such file')


@pytest.mark.parametrize('flags', [['--n-layer', '2'], ['--n-embd=8'], ['--n-head', '2'],
                                   ['--block-size', '4'], ['--seed', '1'], ['--lr', '0.1'],
                                   ['--steps', '20'], ['--load', 'x.json']])
def test_resume_refuses_what_the_checkpoint_sets(flags, interrupted, capsys):
    path, _ = interrupted
    status, out, err = cli(capsys, '--resume', path, *flags)
    assert (status, out) == (2, '')
    expected = 'checkpoint' if flags[0] != '--load' else '--resume'
    one_error_line(err, flags[0].split('=')[0], expected)


def test_save_refuses_an_existing_file_it_did_not_load_and_keeps_it(tiny_file, tmp_path, capsys):
    path = tmp_path / 'run.json'
    args = ['--data', tiny_file, '--steps', '3', '--samples', '0', *SMALL]
    assert cli(capsys, *args, '--save', path)[0] == 0
    finished = path.read_bytes()
    status, out, err = cli(capsys, *args, '--save', path)  # the same command again, by mistake
    assert status == 2 and step_lines(out) == []
    one_error_line(err, f'{path} exists', '--resume')
    assert path.read_bytes() == finished
    status, out, err = cli(capsys, '--load', path, *args[:4], '--save', path)  # on purpose
    assert (status, err) == (0, '') and len(load(str(path))[1]['losses']) == 3


# --- What the run reports after training ----------------------------------------------------

def test_held_out_loss_is_the_mean_loss_of_the_documents_after_the_last_trained_on(
        tmp_path, capsys, monkeypatch):
    n = microgpt.HELD_OUT
    with open(microgpt.FLAGS['data'][1], encoding='utf-8') as f:
        names = f.read().split('\n')[:20 + n + 10]
    data = tmp_path / 'names.txt'
    data.write_text('\n'.join(names) + '\n', encoding='utf-8')
    scored = []  # every (document, loss) the command line computes, training steps included

    def recording(model, doc):
        loss = document_loss(model, doc)
        scored.append((doc, loss.data))
        return loss
    monkeypatch.setattr(microgpt, 'document_loss', recording)
    status, out, err = cli(capsys, '--data', data, '--steps', '20', '--samples', '3', *SMALL)
    assert (status, err) == (0, '')
    monkeypatch.undo()
    # The same run in-process: the held-out set is the n documents after the 20 trained on.
    random.seed(42)
    docs = shuffled_documents(str(data))
    model = GPT(Tokenizer(''.join(docs)), n_embd=4, n_head=1, block_size=8)
    losses = [loss for _, loss in train(model, docs, 20)]
    samples = [sample(model) for _ in range(3)]  # straight after training: no draw in between
    held_out = [document_loss(model, doc).data for doc in docs[20:20 + n]]
    assert [doc for doc, _ in scored] == docs[:20 + n]  # 20 steps, then exactly those n
    assert [loss for _, loss in scored[20:]] == held_out  # the same model: the same losses
    mean = sum(held_out) / n
    assert fmean(loss for _, loss in scored[20:]) == pytest.approx(mean, rel=0, abs=1e-12)
    line = (f'held-out loss {fmean(held_out):.4f} on {n} documents never trained on '
            f'(mean of the last 20 steps: {sum(losses) / 20:.4f})')
    assert line in out.splitlines()
    for other in (docs[:n], docs[30:30 + n], docs[19:19 + n]):  # would a wrong slice show?
        assert f'{sum(document_loss(model, d).data for d in other) / n:.4f}' != f'{mean:.4f}'
    assert samples_of(out) == samples  # computing it drew nothing from the random stream


def test_computing_a_held_out_loss_changes_nothing(tiny_file):
    docs, model = small_model_as_the_cli_trains_it(tiny_file, 10)
    rng = random.Random(3)
    for p in model.params:
        p.grad = rng.uniform(-1, 1)  # gradients a careless backward() would add to
    random.seed(77)
    state, before = random.getstate(), [(p.data, p.grad) for p in model.params]
    losses = [document_loss(model, doc).data for doc in docs[10:]]  # what the CLI computes
    evaluate = getattr(microgpt, 'evaluate', None)  # the engineer may add it as a function
    if evaluate:
        assert evaluate(model, docs[10:]) == pytest.approx(sum(losses) / 6, rel=0, abs=1e-12)
    assert [(p.data, p.grad) for p in model.params] == before
    assert random.getstate() == state


@pytest.mark.parametrize('steps', [16, 40])
def test_no_held_out_loss_when_every_document_was_trained_on(steps, tiny_file, capsys):
    status, out, _ = cli(capsys, '--data', tiny_file, '--steps', steps, '--samples', '0', *SMALL)
    assert status == 0
    assert 'held-out loss: none, all 16 documents were trained on' in out.splitlines()


def test_held_out_loss_on_the_documents_left_when_fewer_than_held_out(tiny_file, capsys):
    status, out, _ = cli(capsys, '--data', tiny_file, '--steps', '15', '--samples', '0', *SMALL)
    assert status == 0 and ' on 1 documents never trained on' in out


def test_new_samples_are_counted_against_the_data(tmp_path, capsys):
    data = tmp_path / 'letters.txt'
    data.write_text('a\nb\nc\nd\ne\nab\nba\n', encoding='utf-8')
    status, out, _ = cli(capsys, '--data', data, '--steps', '10', '--samples', '20', *SMALL)
    assert status == 0
    texts = samples_of(out)
    new = sum(text not in {'a', 'b', 'c', 'd', 'e', 'ab', 'ba'} for text in texts)
    assert 0 < new < 20  # some samples are certainly documents of the data
    assert len(texts) - len(set(texts)) > 1  # and some come twice: each one counts
    assert out.splitlines()[-1] == f'new: {new} of 20 samples are not in the data'


def test_the_loss_curve_falls_back_to_ascii_when_the_output_cannot_show_blocks(tiny_file, capsys):
    args = ['--data', tiny_file, '--steps', '6', '--samples', '1', *SMALL]
    result = run(*args, env={'PYTHONIOENCODING': 'ascii'})
    assert (result.returncode, result.stderr) == (0, '')
    _, out, _ = cli(capsys, *args)  # in-process, capsys writes UTF-8: the blocks
    curve = [line for line in out.splitlines() if line.startswith('loss curve: ')]
    assert len(curve) == 1
    assert re.fullmatch(r'loss curve: \S+ [' + BLOCKS + r']{6} \S+ .*', curve[0])
    assert result.stdout == out.replace(curve[0], curve[0].translate(str.maketrans(BLOCKS, RAMP)))


def test_top_k_1_on_the_command_line_samples_the_greedy_text(tiny_file, capsys):
    status, out, _ = cli(capsys, '--data', tiny_file, '--steps', '5', '--samples', '3',
                         '--top-k', '1', *SMALL)
    assert status == 0
    _, model = small_model_as_the_cli_trains_it(tiny_file, 5)
    tokens = [model.tokenizer.BOS]
    while len(tokens) <= model.block_size:  # the likeliest token, every time, up to BOS
        tokens.append(greedy_next_tokens(model, tokens)[-1])
        if tokens[-1] == model.tokenizer.BOS:
            break
    assert samples_of(out) == [model.tokenizer.decode(tokens)] * 3


@pytest.mark.parametrize('k', ['19', '1000'])
def test_top_k_at_least_the_vocabulary_gives_the_default_samples(k, tiny_file, capsys):
    args = ['--data', tiny_file, '--steps', '5', '--samples', '8', '--temperature', '1.5', *SMALL]
    default = cli(capsys, *args)
    assert cli(capsys, *args, '--top-k', k) == default
    assert len(samples_of(default[1])) == 8


def test_explain_prints_the_top_5_after_each_prefix(tiny_file, capsys):
    status, out, _ = cli(capsys, '--data', tiny_file, '--steps', '5', '--samples', '1',
                         '--explain', 'ol', *SMALL)
    assert status == 0
    _, model = small_model_as_the_cli_trains_it(tiny_file, 5)
    # a line per prefix: the 5 likeliest next characters, each with its probability in percent
    shown = [re.findall(r'(\S+) +(\d+\.\d)%', line) for line in out.splitlines()
             if line.startswith('next after')]
    expected = [[(char, f'{100 * p:.1f}') for p, char in top] for top in explain(model, 'ol')[0]]
    assert shown == expected and len(expected) == 3


def test_explain_prints_a_triangle_of_attention_per_layer_and_head(tiny_file, capsys):
    args = ['--data', tiny_file, '--steps', '3', '--samples', '0', '--n-layer', '2',
            '--n-embd', '8', '--n-head', '2', '--block-size', '8']
    status, out, _ = cli(capsys, *args, '--explain', 'emma')
    assert status == 0
    lines = out.splitlines()
    titles = [i for i, line in enumerate(lines) if line.startswith('attention of layer')]
    assert [lines[i] for i in titles] == [
        f'attention of layer {layer}, head {head}: where each position looks, in percent'
        for layer in (1, 2) for head in (1, 2)]  # one block per layer and head
    random.seed(42)
    docs = shuffled_documents(tiny_file)
    model = GPT(Tokenizer(''.join(docs)), n_layer=2, n_embd=8, n_head=2, block_size=8)
    for _ in train(model, docs, 3):
        pass
    _, attention = explain(model, 'emma')
    for block, i in enumerate(titles):
        assert lines[i + 1].split() == ['<bos>', 'e', 'm', 'm', 'a']
        rows = [line.split() for line in lines[i + 2:i + 7]]
        weights = attention[block // 2][block % 2]
        assert [row[0] for row in rows] == ['<bos>', 'e', 'm', 'm', 'a']
        assert [row[1:] for row in rows] == [[f'{100 * w:.0f}' for w in row] for row in weights]
        assert all(abs(sum(map(int, row[1:])) - 100) <= len(row) for row in rows)  # rounding
    assert 'previous character' in out  # what to look for
    status, plain, _ = cli(capsys, *args)
    assert 'attention' not in plain  # only --explain shows it


def test_prompt_starts_every_sample(tiny_file, capsys):
    status, out, _ = cli(capsys, '--data', tiny_file, '--steps', '5', '--samples', '15',
                         '--prompt', 'ja', *SMALL)
    assert status == 0
    samples = samples_of(out)
    assert len(samples) == 15 and all(s.startswith('ja') and len(s) <= 8 for s in samples)
    assert len(set(samples)) > 1


# --- Progress, signals and interrupted runs ------------------------------------------------

def on_a_terminal(*args):
    """microgpt.py run with a pseudo-terminal for its output: (exit status, all it wrote)."""
    parent, child = pty.openpty()
    proc = subprocess.Popen([sys.executable, SCRIPT, *map(str, args)], stdout=child, stderr=child,
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
    return proc.wait(timeout=60), output


def test_progress_on_a_terminal_is_one_line_rewritten_in_place(tiny_file):
    status, output = on_a_terminal('--data', tiny_file, '--steps', '30', '--samples', '1', *SMALL)
    assert status == 0
    step_lines_ = [line for line in output.decode().split('\n') if '\rstep ' in line]
    assert len(step_lines_) == 1  # 30 updates, one line
    assert step_lines_[0].count('\rstep') == 30
    last = step_lines_[0].rstrip('\r').rsplit('\r', 1)[1]  # a terminal ends lines with \r\n
    assert re.fullmatch(r'step   30 /   30 \| loss \d\.\d{4} \| last 100: \d\.\d{4} \| '
                        r'\d+\.\d steps/s \| 0 s left\s*', last)


def test_progress_through_a_pipe_is_the_plain_step_lines(tiny_file):
    result = run('--data', tiny_file, '--steps', '30', '--samples', '0', *SMALL)
    steps = step_lines(result.stdout)
    assert len(steps) == 30 and '\r' not in result.stdout and 'steps/s' not in result.stdout
    assert all(re.fullmatch(r'step +\d+ /   30 \| loss \d\.\d{4}', line) for line in steps)


# The two ways to start the program: the script, and what the installed `microgpt` command calls.
SCRIPT_RUN = [sys.executable, SCRIPT]
COMMAND_RUN = [sys.executable, '-c', 'import sys, microgpt; sys.exit(microgpt.program())']


def start(args, wait_for, how=SCRIPT_RUN):
    """Start microgpt, read its output up to the first line starting with wait_for."""
    proc = subprocess.Popen([*how, *map(str, args)], stdout=subprocess.PIPE, cwd=HERE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, 'PYTHONUNBUFFERED': '1'})
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith(wait_for):
            break
    return proc, seen


def stop(proc, seen, signum):
    proc.send_signal(signum)
    # read() and not communicate(): communicate() reads the pipe itself and would skip the lines
    # that reading `seen` line by line had already buffered, losing them under load
    out = proc.stdout.read()
    err = proc.stderr.read()
    return proc.wait(timeout=60), ''.join(seen) + out, err


LONG_RUN = ['--steps', '250', '--samples', '5', *SMALL]  # 250 steps of ~2 ms: time to interrupt


@pytest.fixture(scope='module')
def straight_run(tmp_path_factory):
    """The uninterrupted run that interrupted and resumed ones must reproduce: (data, stdout)."""
    data = tmp_path_factory.mktemp('straight') / 'tiny.txt'
    data.write_text('\n'.join(TINY_NAMES) + '\n', encoding='utf-8')
    result = run('--data', data, *LONG_RUN)
    assert result.returncode == 0 and len(step_lines(result.stdout)) == 250
    return str(data), result.stdout


def without_saved_line(out):
    return [line for line in out.splitlines() if not line.startswith('saved the model')]


def test_ctrl_c_in_training_then_resume_gives_the_uninterrupted_run(straight_run, tmp_path):
    data, straight = straight_run
    path = str(tmp_path / 'run.json')
    proc, seen = start(['--data', data, *LONG_RUN, '--save', path], 'step    3')
    code, first, err = stop(proc, seen, signal.SIGINT)
    done = len(step_lines(first))
    assert code == 130 and 3 <= done < 250 and 'sample' not in first
    assert len(err.splitlines()) == 1 and f'interrupted at step {done}' in err
    assert f'--resume {path}' in err  # how to continue
    model, run_out = load(path)
    assert len(run_out['losses']) == done and len(model.params) == 376
    second = run('--resume', path)  # the run keeps its own settings, --samples 5 among them
    assert (second.returncode, second.stderr) == (0, '')
    assert len(load(path)[1]['losses']) == 250  # saved to the same checkpoint at the end
    # Both parts together print exactly the uninterrupted run's lines.
    resumed = without_saved_line(second.stdout)
    assert without_saved_line(first) + resumed[3:] == straight.splitlines()
    assert resumed[:3] == straight.splitlines()[:3]


def test_a_kill_after_the_first_periodic_checkpoint_loses_nothing_but_time(straight_run,
                                                                          tmp_path):
    data, straight = straight_run
    path = str(tmp_path / 'run.json')
    proc, seen = start(['--data', data, *LONG_RUN, '--save', path], 'step  101')  # 100 is saved
    code, _, _ = stop(proc, seen, signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert len(load(path)[1]['losses']) == microgpt.SAVE_EVERY == 100
    resumed = run('--resume', path)
    assert resumed.returncode == 0, resumed.stderr
    assert step_lines(resumed.stdout) == step_lines(straight)[100:]
    assert samples_of(resumed.stdout) == samples_of(straight) and len(samples_of(straight)) == 5


def test_sigterm_in_training_exits_143_with_a_loadable_checkpoint(tiny_file, tmp_path):
    path = str(tmp_path / 'run.json')
    proc, seen = start(['--data', tiny_file, *LONG_RUN, '--save', path], 'step    2')
    code, out, err = stop(proc, seen, signal.SIGTERM)
    assert code == 143 and 'Traceback' not in err and 'sample' not in out
    model, run_out = load(path)
    assert len(run_out['losses']) == len(step_lines(out)) >= 2
    assert run_out['steps'] == 250 and all(math.isfinite(p.data) for p in model.params)
    assert f'interrupted at step {len(step_lines(out))}' in err


@pytest.mark.parametrize('how', [SCRIPT_RUN, COMMAND_RUN], ids=['script', 'command'])
def test_ctrl_c_in_training_without_save_says_how_to_keep_the_model(how, tiny_file):
    proc, seen = start(['--data', tiny_file, *LONG_RUN], 'step    2', how)
    code, out, err = stop(proc, seen, signal.SIGINT)
    assert code == 130 and 'Traceback' not in err and 'sample' not in out
    assert len(err.splitlines()) == 1 and f'interrupted at step {len(step_lines(out))}' in err
    assert '--save' in err  # how to keep the model next time


def test_ctrl_c_in_sampling_keeps_what_was_sampled(tiny_file):
    code, out, err = stop(*start(['--data', tiny_file, '--steps', '0', '--samples', '1000000',
                                  '--temperature', '2', *SMALL], 'sample  2'), signal.SIGINT)
    assert code == 130 and err == ''  # training was over: there is no run to go on with
    samples = [line for line in out.splitlines() if line.startswith('sample')]
    assert 2 <= len(samples) < 1000000
    assert samples == [f'sample {i + 1:2d}: {s}' for i, s in enumerate(samples_of(out))]


@pytest.mark.parametrize('where', ['reading a FIFO', 'building a huge model'])
def test_ctrl_c_outside_training_stops_at_once_without_a_traceback(where, tmp_path, tiny_file):
    if where == 'reading a FIFO':  # open() blocks until a writer comes: none will
        data = tmp_path / 'fifo'
        os.mkfifo(data)
        args = ['--data', data]
    else:  # a model of 2.5 billion parameters is built slowly, one Value at a time
        args = ['--data', tiny_file, '--n-embd', '5000', '--n-layer', '8']
    proc = subprocess.Popen([sys.executable, SCRIPT, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)  # into the blocking read, or well into building
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 130 and err == '' and 'step' not in out


def test_a_second_ctrl_c_in_training_stops_at_once(tmp_path):
    # A step over 200 positions takes seconds, even under PyPy: a first Ctrl-C waits for it to end.
    data = tmp_path / 'long.txt'
    data.write_text(''.join(random.Random(0).choices('abcdefgh', k=400)) + '\n', encoding='utf-8')
    proc, seen = start(['--data', data, '--block-size', '200', '--n-embd', '32'], 'num params')
    time.sleep(0.3)  # into the first step
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)  # two signals at once would arrive as one
    assert proc.poll() is None  # the first only asked the step to finish
    proc.send_signal(signal.SIGINT)
    code, out, err = stop(proc, seen, 0)
    assert (code, err, step_lines(out)) == (130, '', [])  # the step was not waited for


def test_a_reader_that_goes_away_ends_the_run_quietly(tiny_file):
    proc = subprocess.Popen([sys.executable, SCRIPT, '--data', tiny_file, '--steps', '200', *SMALL],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, 'PYTHONUNBUFFERED': '1'})  # each line at once
    first = proc.stdout.readline()  # as `| head -1` reads
    proc.stdout.close()
    err = proc.stderr.read()
    assert first == b'num docs: 16\n' and err == b''
    assert proc.wait(timeout=60) == 128 + signal.SIGPIPE


def test_characters_the_output_cannot_encode_are_escaped(tmp_path):
    data = tmp_path / 'accented.txt'
    data.write_text('ren\u00e9e\nchlo\u00e9\nzo\u00eb\n', encoding='utf-8')
    result = run('--data', data, '--steps', '2', '--samples', '5', '--prompt', 'r', *SMALL,
                 env={'PYTHONIOENCODING': 'ascii'})
    assert (result.returncode, result.stderr) == (0, '')
    assert len(samples_of(result.stdout)) == 5 and result.stdout.isascii()


def test_an_error_after_the_progress_line_starts_on_a_line_of_its_own(tiny_file):
    status, output = on_a_terminal('--data', tiny_file, '--steps', '5', '--lr', '1e300', *SMALL)
    assert status == 1
    error = [line for line in output.decode().split('\n') if 'microgpt: error' in line]
    assert len(error) == 1 and error[0].startswith('microgpt: error: step ')


def test_running_out_of_memory_is_one_line_and_exit_2(tiny_file, capsys, monkeypatch):
    def too_much(path):
        raise MemoryError
    monkeypatch.setattr(microgpt, 'read_documents', too_much)
    status, out, err = cli(capsys, '--data', tiny_file)
    assert (status, out) == (2, '')
    one_error_line(err, 'MemoryError')


@pytest.mark.skipif(sys.implementation.name != 'cpython',
                    reason='PyPy aborts when memory runs out: it raises no MemoryError to report')
def test_reading_dev_zero_runs_out_of_memory_in_one_line():
    limit = 'import resource; resource.setrlimit(resource.RLIMIT_AS, (400 << 20, 400 << 20)); '
    program = limit + 'import sys, runpy; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], ' \
                      "run_name='__main__')"
    result = subprocess.run([sys.executable, '-c', program, SCRIPT, '--data', '/dev/zero'],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    one_error_line(result.stderr, 'MemoryError')
