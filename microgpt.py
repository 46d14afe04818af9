"""microgpt: train a tiny GPT on a list of names and invent new ones, in pure Python.

Read it from the top. The lesson comes first: the data and its tokenizer, a scalar autograd
engine, a GPT-2-style transformer, the Adam optimizer, training and sampling. The plumbing
follows, with checkpoints and the command line. Run it with `python3 microgpt.py`. It computes
what Karpathy's classic microgpt computes: the same data, seed and settings print the same step
and sample lines. Its floats may differ in the last bit, as some sums run in another order.
"""
import math
import random
from operator import add, mul, neg, sub, truediv


# Data and tokenizer. A document is one line of text; here, each document is a name.
def read_documents(path):
    """The non-blank lines of a UTF-8 text file, stripped of spaces."""
    with open(path, encoding='utf-8-sig') as f:  # -sig: a byte-order mark is not text
        docs = [line.strip() for line in f if line.strip()]
    if not docs:
        raise ValueError(f'{path} has no documents: give a text file with one document a line')
    return docs


class Tokenizer:
    """Turns text into token ids and back. A character's id is its place in the sorted vocabulary.
    One more id, BOS, marks where a document starts; training also puts one at its end."""

    def __init__(self, text):
        self.chars = sorted(set(text))
        self.BOS, self.vocab_size = len(self.chars), len(self.chars) + 1

    def encode(self, text):
        return [self.BOS] + [self.chars.index(ch) for ch in text]

    def decode(self, tokens):
        return ''.join(self.chars[t] for t in tokens if t != self.BOS)


# Autograd. A Value is a number that remembers how it was computed, so gradients can flow back.
def binary(forward, d_dx, d_dy):
    """The two methods of an operator: x op y, and its reflected form, a number x op a Value y."""
    def method(self, other):
        if isinstance(other, Value):
            x, y = self.data, other.data
            return Value(forward(x, y), (self, other), (d_dx(x, y), d_dy(x, y)))
        if isinstance(other, (int, float)):  # a plain number is a constant, not a child
            return Value(forward(self.data, other), (self,), (d_dx(self.data, other),))
        return NotImplemented  # so Python raises its usual TypeError

    def reflected(self, other):  # Python runs 2 - v as v.__rsub__(2), so other is x, self is y
        if isinstance(other, (int, float)):
            return Value(forward(other, self.data), (self,), (d_dy(other, self.data),))
        return NotImplemented
    return method, reflected


def unary(forward, derivative):
    """Value's method for a function of one value, made from the function and its derivative."""
    return lambda self: Value(forward(self.data), (self,), (derivative(self.data),))


class Value:
    """A number, and a node of the computation graph. It keeps the children it was computed from
    and its local gradients, which say how much it moves per unit of each child."""
    __slots__ = ('children', 'data', 'grad', 'local_grads')  # a step makes thousands of values

    def __init__(self, data, children=(), local_grads=()):
        self.data, self.grad = data, 0.0
        self.children, self.local_grads = children, local_grads

    # One row per operator. Each row gives the result for plain numbers x and y, then d/dx and d/dy.
    __add__, __radd__ = binary(add, lambda x, y: 1, lambda x, y: 1)
    __sub__, __rsub__ = binary(sub, lambda x, y: 1, lambda x, y: -1)
    __mul__, __rmul__ = binary(mul, lambda x, y: y, lambda x, y: x)
    __truediv__, __rtruediv__ = binary(truediv, lambda x, y: 1 / y, lambda x, y: -x / y**2)
    __pow__, __rpow__ = binary(pow, lambda x, y: y * x**(y - 1), lambda x, y: x**y * math.log(x))
    __neg__ = unary(neg, lambda x: -1)
    log = unary(math.log, lambda x: 1 / x)
    exp = unary(math.exp, math.exp)

    def relu(self):  # at or below 0 the result is the constant 0: no gradient flows back through it
        return Value(self.data, (self,), (1.0,)) if self.data > 0 else Value(0.0)

    def backward(self):
        """Set self.grad to 1, and add d(self)/d(v) to v.grad for each value v that self depends on
        (adam() sets them back to 0). A topological sort first puts every value after its children.
        It searches depth first with its own stack: recursion fails on a sum() of 2000 values."""
        order, visited, stack = [], set(), [(self, False)]
        while stack:
            value, children_ordered = stack.pop()
            if children_ordered:
                order.append(value)
            elif value not in visited:
                visited.add(value)
                stack.append((value, True))  # popped again once all its children are in order
                for child in value.children:
                    if child.children and child not in visited:  # leaves get their grad below
                        stack.append((child, False))
        self.grad = 1.0
        for value in reversed(order):  # a value's gradient is complete before it is passed on
            for child, local_grad in zip(value.children, value.local_grads):
                child.grad += local_grad * value.grad  # the chain rule


# Helpers, the vector operations of a transformer. A node can be any function whose local gradients
# we know, so dot and cross_entropy are one node each, where the operators would make many.
def matrix(nout, nin, init):
    return [[Value(init()) for _ in range(nin)] for _ in range(nout)]


def dot(a, b):
    """The sum of ai * bi. Its local gradient for each ai is bi, and for each bi is ai."""
    a_data = [ai.data for ai in a]
    b_data = [bi.data for bi in b]
    return Value(sum(map(mul, a_data, b_data)), [*a, *b], [*b_data, *a_data])


def linear(x, w):
    """The matrix w times the vector x: the dot product of each row of w with x."""
    return [dot(row, x) for row in w]


def softmax(logits):
    """Probabilities from logits, which are raw scores. exp makes each one positive, and dividing by
    the total makes them sum to 1. Subtracting the largest first keeps exp from overflowing."""
    top = max(z.data for z in logits)
    exps = [(z - top).exp() for z in logits]
    total = sum(exps)
    return [e / total for e in exps]


def rmsnorm(x):
    """x scaled to a root mean square of 1 (the 1e-5 avoids dividing by 0), so that the numbers
    keep their size through the layers."""
    scale = (dot(x, x) / len(x) + 1e-5) ** -0.5
    return [xi * scale for xi in x]


def cross_entropy(logits, target):
    """The loss log(sum of e^z) - z[target], which is -log(softmax(z)[target]). Its local gradient
    for logit i is the probability that softmax gives i, minus 1 for the target."""
    top = max(z.data for z in logits)
    exps = [math.exp(z.data - top) for z in logits]
    total = sum(exps)
    grads = [e / total - float(i == target) for i, e in enumerate(exps)]
    return Value(math.log(total) + top - logits[target].data, logits, grads)


# The model: GPT-2's design without biases, with ReLU and with RMSNorm (on the embeddings too),
# reading one token at a time.
class GPT:
    def __init__(self, tokenizer, n_layer=1, n_embd=16, n_head=4, block_size=16,
                 init=lambda: random.gauss(0, 0.08)):  # the classic microgpt's sizes and spread
        if min(n_layer, n_embd, n_head, block_size) < 1 or n_embd % n_head:
            raise ValueError('model sizes must be at least 1, and n_head must divide n_embd')
        self.tokenizer, self.n_layer, self.n_embd = tokenizer, n_layer, n_embd
        self.n_head, self.block_size, self.head_dim = n_head, block_size, n_embd // n_head
        # An embedding is a learned row of n_embd numbers, for a token (wte) or a position (wpe).
        # lm_head makes the final x into a logit for each token.
        self.wte = matrix(tokenizer.vocab_size, n_embd, init)
        self.wpe = matrix(block_size, n_embd, init)
        self.lm_head = matrix(tokenizer.vocab_size, n_embd, init)
        self.layers = [{'wq': matrix(n_embd, n_embd, init), 'wk': matrix(n_embd, n_embd, init),
                        'wv': matrix(n_embd, n_embd, init), 'wo': matrix(n_embd, n_embd, init),
                        'fc1': matrix(4 * n_embd, n_embd, init),
                        'fc2': matrix(n_embd, 4 * n_embd, init)} for _ in range(n_layer)]
        mats = [self.wte, self.wpe, self.lm_head] + [m for lay in self.layers for m in lay.values()]
        self.params = [p for mat in mats for row in mat for p in row]

    def empty_cache(self):
        """For each layer, the keys and values of the positions read so far, and for each head the
        attention weights it gave at each position."""
        return [([], [], [[] for _ in range(self.n_head)]) for _ in self.layers]

    def __call__(self, token, pos, cache):
        """The logits after `token` at position `pos`, which score each token that may come next."""
        x = rmsnorm([t + p for t, p in zip(self.wte[token], self.wpe[pos])])
        for layer, layer_cache in zip(self.layers, cache):
            # Each block adds to x, the residual stream, rather than replacing it.
            x = [a + b for a, b in zip(x, self.attention(rmsnorm(x), layer, *layer_cache))]
            # The MLP (multi-layer perceptron) computes on what attention gathered, widened 4 times.
            hidden = [z.relu() for z in linear(rmsnorm(x), layer['fc1'])]
            x = [a + b for a, b in zip(x, linear(hidden, layer['fc2']))]
        return linear(x, self.lm_head)

    def attention(self, x, layer, keys, values, head_weights):
        """What this position gathers from the positions so far. Its query is matched against each
        one's key, and it takes in each one's value in proportion to how well they match."""
        query = linear(x, layer['wq'])
        keys.append(linear(x, layer['wk']))  # the future is not in the cache, so is never looked at
        values.append(linear(x, layer['wv']))
        out = []  # the outputs of all heads, side by side
        for h in range(self.n_head):  # each head has its own channels
            head = slice(h * self.head_dim, (h + 1) * self.head_dim)
            # scaled, so that the softmax does not put all its weight on one position
            scores = [dot(query[head], key[head]) / self.head_dim**0.5 for key in keys]
            weights = softmax(scores)
            head_weights[h].append(weights)
            for j in range(head.start, head.stop):  # a weighted sum of the values
                out.append(dot(weights, [value[j] for value in values]))
        return linear(out, layer['wo'])  # wo mixes what the heads found


# Adam. Plain gradient descent would do p.data -= lr * p.grad. Adam divides the running mean of the
# gradient (m) by the root of the running mean of its square (v), so steps stay near lr in size.
def adam(params, m, v, step, lr, beta1=0.85, beta2=0.99, eps=1e-8):
    """One update, with the classic microgpt's settings; then each gradient is set back to 0."""
    # m and v start at 0, so they are too small at first. Dividing by these undoes that.
    m_correction, v_correction = 1 - beta1 ** (step + 1), 1 - beta2 ** (step + 1)
    for i, p in enumerate(params):
        m[i] = beta1 * m[i] + (1 - beta1) * p.grad
        v[i] = beta2 * v[i] + (1 - beta2) * p.grad ** 2
        p.data -= lr * (m[i] / m_correction) / ((v[i] / v_correction) ** 0.5 + eps)
        p.grad = 0.0


# Training: one document a step, predicting each next character from the ones before it. A loss
# of ln 27 = 3.30 is a uniform guess among the 27 tokens of the names.
def document_loss(model, doc):
    """The mean loss of predicting each next token of BOS, doc, BOS. The cache keeps each position's
    keys and values in the graph, so a later loss sends gradients back to earlier positions too."""
    # A document of block_size characters or more never predicts its closing BOS.
    tokens = model.tokenizer.encode(doc[:model.block_size]) + [model.tokenizer.BOS]
    n = min(model.block_size, len(tokens) - 1)
    cache = model.empty_cache()
    losses = [cross_entropy(model(tokens[i], i, cache), tokens[i + 1]) for i in range(n)]
    return sum(losses) / n


def train(model, docs, num_steps, lr=0.01, start=0, moments=None):
    """Train from step `start`, yielding (step, loss) after each step. moments are Adam's m and v,
    which a resumed run passes in; they are updated in place."""
    if start < num_steps and not docs:
        raise ValueError('no documents to train on')
    m, v = moments or ([0.0] * len(model.params), [0.0] * len(model.params))
    for step in range(start, num_steps):
        loss = document_loss(model, docs[step % len(docs)])
        if not math.isfinite(loss.data):  # training diverged, so stop before the update
            raise FloatingPointError(f'the loss is {loss.data}')
        loss.backward()
        lr_t = lr * (1 - step / num_steps)  # the learning rate decays linearly toward 0
        adam(model.params, m, v, step, lr_t)
        yield step, loss.data


# Sampling: new text, one token at a time, each drawn from the model's probabilities. No
# backward() follows, so the graph that each step builds is simply dropped.
def sample(model, temperature=0.5, prompt='', top_k=0):
    """Text that starts with prompt, until BOS or the end of the block. A temperature below 1
    favours likely tokens. With top_k above 0, only the k likeliest (and ties) can be drawn."""
    if not (0 < temperature < math.inf and top_k >= 0 and len(prompt) < model.block_size):
        raise ValueError(f'need temperature > 0, top_k >= 0, prompt < {model.block_size} chars')
    tokens = model.tokenizer.encode(prompt)
    cache = model.empty_cache()
    for pos in range(model.block_size):  # the token at pos in, the next one out
        logits = model(tokens[pos], pos, cache)
        if pos < len(tokens) - 1:  # still reading the prompt, whose next token is known
            continue
        probs = [p.data for p in softmax([z / temperature for z in logits])]
        if top_k:
            kth = sorted(probs, reverse=True)[min(top_k, len(probs)) - 1]
            probs = [p if p >= kth else 0.0 for p in probs]
        tokens.append(random.choices(range(model.tokenizer.vocab_size), weights=probs)[0])
        if tokens[-1] == model.tokenizer.BOS:
            break
    return model.tokenizer.decode(tokens)


# The lesson ends here; the rest is plumbing: checkpoints and the command line.
# A run goes like this. main() reads the flags (parse_args), makes a new run (new_run, of a new
# model or of --load's) or takes up --resume's run (resumed_run). train_and_save() trains, printing
# each step; with --save it writes a checkpoint at once, every SAVE_EVERY steps and at the end.
# Ctrl-C lets the step finish, saves (given a path) and stops; --resume goes on as if unbroken.
# report() then prints what the run learned. A checkpoint is JSON: the model and the run, that is
# its settings, the losses so far, Adam's m and v, the data's SHA-256 and the random state.
import argparse
import gc
import hashlib
import json
import os
import signal
import sys
import tempfile
import time
from statistics import fmean

SIZES = ('n_layer', 'n_embd', 'n_head', 'block_size')  # the settings that shape a model

SAMPLING = {'samples', 'temperature', 'top_k', 'prompt'}  # the settings a resume may change
SAVE_EVERY = 100  # steps between checkpoints: a kill loses at most these
HELD_OUT = 50  # documents never trained on, scored after training: does the model generalize?
FLAGS = {  # each flag's name (--name, with - for _), type, default and meaning
    'data': (str, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', 'names.txt'),
             'UTF-8 text, one document a line'),
    'seed': (int, 42, 'random seed'), 'steps': (int, 1000, 'training steps'),
    'lr': (float, 0.01, 'learning rate, above 0'), 'samples': (int, 20, 'samples to print'),
    'temperature': (float, 0.5, 'sampling temperature above 0: lower is safer'),
    'top_k': (int, 0, 'sample only among the k likeliest tokens (0: all)'),
    'prompt': (str, '', 'text every sample starts with'),
    'explain': (str, '', 'show what the model predicts after each character of this text'),
    'n_layer': (int, 1, 'transformer layers'), 'n_embd': (int, 16, 'embedding width'),
    'n_head': (int, 4, 'attention heads'), 'block_size': (int, 16, 'context length'),
    'save': (str, '', f'keep the model and the run here, every {SAVE_EVERY} steps and at the end'),
    'load': (str, '', 'start from the model in this checkpoint'),
    'resume': (str, '', 'continue the run saved in this checkpoint')}


def is_count(x, least=0):
    """Whether x is an integer (and not a bool) of at least least."""
    return type(x) is int and x >= least


def positive(x):
    return type(x) in (int, float) and 0 < x < math.inf


def numbers(x):
    """Whether x is a list of finite numbers, as JSON gives them (a true or false is not one)."""
    return type(x) is list and all(type(n) in (int, float) and math.isfinite(n) for n in x)


def random_state(saved):
    """A state of random.getstate() that went through JSON, which made its inner tuple a list."""
    return saved[0], tuple(saved[1]), saved[2]


def is_random_state(saved):
    """Whether random.setstate() takes the state saved: a throwaway generator tries it."""
    try:
        random.Random().setstate(random_state(saved))
        return True
    except (IndexError, KeyError, OverflowError, TypeError, ValueError):
        return False


# What each field of a run or a checkpoint must be, and a test of it. See check().
SETTINGS = {'seed': ('an integer', lambda x: type(x) is int), 'steps': ('0 or more', is_count),
            'lr': ('a finite number above 0', positive), 'samples': ('0 or more', is_count),
            'temperature': ('a finite number above 0', positive), 'top_k': ('0 or more', is_count),
            'prompt': ('text', lambda x: type(x) is str)}  # the run's settings, given as flags too
RUN = {  # the rest of a run: how far it got, and what it needs to go on
    'losses': ('a list of finite numbers', numbers),  # one for each step done
    'm': ('a list of finite numbers', numbers),  # Adam's running means, one for each parameter
    'v': ('a list of finite numbers, 0 or more', lambda x: numbers(x) and all(n >= 0 for n in x)),
    'data': ('text', lambda x: type(x) is str),  # the data's path, or '' for none
    'sha256': ('text', lambda x: type(x) is str),  # the SHA-256 of the data's bytes
    'pretrained': ('true or false', lambda x: type(x) is bool),  # whether --load gave the model
    'random': ('a state that random.setstate() takes', is_random_state)}
CHECKPOINT = {
    'format': ('"microgpt"', lambda x: x == 'microgpt'), 'version': ('3', lambda x: x == 3),
    'vocab': ('text that holds each character once, in order',
              lambda x: type(x) is str and list(x) == sorted(set(x))),
    'config': (f'{", ".join(SIZES)}, integers above 0, with n_head dividing n_embd',
               lambda x: x.keys() == set(SIZES) and all(is_count(x[size], 1) for size in SIZES)
               and x['n_embd'] % x['n_head'] == 0),
    'params': ('a list of finite numbers', numbers),
    'run': ('an object', lambda x: type(x) is dict)}


def check(fields, tests, wrong):
    """Raise a ValueError that names the first field that is missing or fails its test (a test that
    cannot even run on the field fails too), or a field that has no test."""
    for name, (what, test) in tests.items():
        if name not in fields:
            raise ValueError(f'{wrong}{name} is missing')
        try:
            passed = test(fields[name])
        except (AttributeError, IndexError, KeyError, OverflowError, TypeError, ValueError):
            passed = False
        if not passed:
            raise ValueError(f'{wrong}{name} must be {what}')
    unknown = sorted(fields.keys() - tests.keys())
    if unknown:
        raise ValueError(f'{wrong}{unknown[0]} is not a field it may have')


def save(model, path, run):
    """Write the model and the run to path as JSON, atomically: into a new file beside it, flushed
    to disk, then renamed over it. Never over the data, nor over what is not a regular file."""
    data, exists = run['data'], os.path.exists(path)
    if exists and (not os.path.isfile(path) or (data and os.path.samefile(path, data))):
        raise ValueError(f'--save {path} is the data or not a regular file: give another path')
    if not all(math.isfinite(p.data) for p in model.params):
        raise FloatingPointError(f'the model is no longer finite, so {path} was kept as it was')
    ckpt = {'format': 'microgpt', 'version': 3, 'vocab': ''.join(model.tokenizer.chars),
            'config': {size: getattr(model, size) for size in SIZES},
            'params': [p.data for p in model.params], 'run': {**run, 'random': random.getstate()}}
    fd, temporary = tempfile.mkstemp(suffix='.tmp', dir=os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as f:
            json.dump(ckpt, f)
            f.flush()
            os.fsync(f.fileno())  # on the disk before it replaces the previous checkpoint
        os.replace(temporary, path)
    except BaseException:
        os.remove(temporary)
        raise


def load(path):
    """The model and the run that save() wrote to path. A file that cannot be read raises OSError;
    anything but such a checkpoint, a ValueError that names the field that is wrong."""
    wrong = f'{path} is not a microgpt checkpoint: its '
    try:
        with open(path, encoding='utf-8') as f:
            ckpt = json.load(f)
    except ValueError as e:  # not UTF-8, or not JSON
        raise ValueError(f'{wrong}text is not JSON ({e})') from None
    if type(ckpt) is not dict:
        raise ValueError(f'{wrong}text is JSON, but not an object')
    check(ckpt, CHECKPOINT, wrong)
    count = f'{wrong}params must be as many numbers as the sizes need'
    params = iter(ckpt['params'])
    try:  # GPT() calls init() for each parameter, so it stops where the saved numbers run out
        model = GPT(Tokenizer(ckpt['vocab']), **ckpt['config'], init=lambda: next(params))
    except StopIteration:  # too few
        raise ValueError(count) from None
    if list(params):  # too many
        raise ValueError(count)
    run = ckpt['run']
    check(run, {**SETTINGS, **RUN}, wrong + 'run.')
    for name in 'm', 'v':  # Adam's, for each parameter
        if len(run[name]) != len(model.params):
            raise ValueError(f'{wrong}run.{name} must hold {len(model.params)} numbers')
    if len(run['losses']) > run['steps']:
        raise ValueError(f'{wrong}run.losses must be no more than its steps')
    return model, run


def flag(name):
    return '--' + name.replace('_', '-')


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        raise ValueError(message)  # so main() reports it in one line, like every other error


def parse_args(argv):
    """Every flag's value, given or default, checked by check_flags(); and the flags given."""
    parser = ArgumentParser(prog='microgpt', description=__doc__.split('\n')[0], allow_abbrev=False)
    for name, (kind, default, meaning) in FLAGS.items():
        parser.add_argument(flag(name), type=kind, help=f'{meaning} [{default!r}]')
    values = vars(parser.parse_args(argv))  # no defaults there: None means a flag not given
    given = {name: value for name, value in values.items() if value is not None}
    args = {name: given.get(name, default) for name, (_, default, _) in FLAGS.items()}
    check_flags(args, given)
    return args, given


def check_flags(args, given):
    """Refuse a setting out of its range; --load with --resume; a flag that the checkpoint decides
    (the sizes, and for --resume the seed, steps and lr); and a --save over an existing file that is
    not the checkpoint being continued."""
    for name, (what, test) in SETTINGS.items():
        if not test(args[name]):
            raise ValueError(f'{flag(name)} must be {what}')
    if args['load'] and args['resume']:
        raise ValueError('--load and --resume: give one or the other')
    fixed = ()  # the flags that a checkpoint decides
    if args['load']:
        fixed = SIZES
    elif args['resume']:
        fixed = SIZES + ('seed', 'steps', 'lr')
    clash = [name for name in fixed if name in given]
    if clash:
        raise ValueError(f'leave out {" ".join(map(flag, clash))}: a checkpoint decides the sizes, '
                         'and a resumed run its seed, lr and steps')
    target, source = args['save'], args['load'] or args['resume']
    if target and os.path.isfile(target) and not (source and os.path.samefile(target, source)):
        raise ValueError(f'{target} exists: continue it with --resume, or give another --save')


def new_run(args):
    """A new run of a new model, or of the --load checkpoint's model, and the documents it reads."""
    run = {name: args[name] for name in SETTINGS}
    random.seed(run['seed'])
    if args['load']:
        model = load(args['load'])[0]
        docs, digest = read_data(args['data']) if run['steps'] else ([], '')  # to sample, no data
    else:
        docs, digest = read_data(args['data'])  # to train, and to make the vocabulary
        model = GPT(Tokenizer(''.join(docs)), **{size: args[size] for size in SIZES})
    n = len(model.params)
    run.update(losses=[], m=[0.0] * n, v=[0.0] * n, sha256=digest, pretrained=bool(args['load']),
               data=os.path.abspath(args['data']) if docs else '')
    return model, docs, run


def resumed_run(args, given):
    """The run in the --resume checkpoint, its documents, and the random stream where it stopped.
    The sampling flags given replace the run's own settings."""
    model, run = load(args['resume'])
    for name in sorted(given.keys() & SAMPLING):
        if given[name] != run[name]:
            print(f"{flag(name)} {given[name]!r} instead of the run's {run[name]!r}")
        run[name] = given[name]
    data = os.path.abspath(args['data']) if 'data' in given else run['data']  # given if it moved
    random.seed(run['seed'])  # so that the documents are shuffled as they were
    docs, digest = read_data(data) if data else ([], '')  # a run may have sampled without data
    if digest != run['sha256']:
        raise ValueError(f'{data} is not the data the run trained on: its SHA-256 differs')
    random.setstate(random_state(run['random']))
    run['data'] = data
    return model, docs, run


def read_data(path):
    """The documents at path in a shuffled order, and the SHA-256 of its bytes."""
    docs = read_documents(path)
    random.shuffle(docs)  # the first draw from the random stream, as in the classic microgpt
    print(f'num docs: {len(docs)}')
    with open(path, 'rb') as f:
        return docs, hashlib.sha256(f.read()).hexdigest()


def check_texts(model, docs, run, explain_text):
    """Refuse, before any training, text the model cannot read."""
    unknown = set(''.join(docs) + run['prompt'] + explain_text) - set(model.tokenizer.chars)
    if unknown:
        raise ValueError(f'{"".join(sorted(unknown))!r}: not in the vocabulary of the model')
    if max(len(run['prompt']), len(explain_text)) >= model.block_size:
        raise ValueError('--prompt and --explain must be shorter than the block of the model, '
                         f'{model.block_size} characters')


STOP = {'signals': [], 'training': False}  # the signals caught, and whether training


def stop(signum, frame):
    """Ctrl-C (SIGINT) and SIGTERM, once program() has made this their handler. During training
    (STOP['training']), the first one is only noted: the step in progress finishes, and then
    train_and_save() saves the run and stops it. Anywhere else, or a second time, the program
    stops at once, with a KeyboardInterrupt that main() turns into its exit status."""
    STOP['signals'].append(signum)
    if len(STOP['signals']) > 1 or not STOP['training']:
        raise KeyboardInterrupt


def train_and_save(model, docs, run, path):
    """Train to the run's planned end, printing each step; with a path, checkpoint as it goes."""
    losses, steps, tty = run['losses'], run['steps'], sys.stdout.isatty()
    first = saved = len(losses)
    start_time = time.perf_counter()
    if path:
        save(model, path, run)  # at once: a path that cannot be written fails before training
    STOP['training'] = True
    try:  # train() updates run's m and v in place, so save() writes them as they are
        for _, loss in train(model, docs, steps, run['lr'], first, (run['m'], run['v'])):
            losses.append(loss)
            print_step(losses, steps, tty, first, start_time)
            stopping = bool(STOP['signals'])  # read once, as a signal may come at any moment
            if path and (stopping or len(losses) % SAVE_EVERY == 0 or len(losses) == steps):
                save(model, path, run)
                saved = len(losses)
            if stopping:
                break
    except ArithmeticError as e:  # a loss or a gradient out of range: the model is spoilt
        held = f'; {path} still holds step {saved}' if path else ''
        reason = e.args[-1]  # an OverflowError's args are an error number, then the message
        raise FloatingPointError(f'step {len(losses) + 1} diverged ({reason}) with --lr '
                                 f'{run["lr"]}: try a lower --lr{held}') from None
    finally:
        STOP['training'] = False
        if tty and len(losses) > first:
            print()  # end the line that was rewritten in place, before anything else is printed


def print_step(losses, steps, tty, first, start_time):
    """The classic microgpt's step line; on a terminal, one line rewritten in place, with more."""
    line = f'step {len(losses):4d} / {steps:4d} | loss {losses[-1]:.4f}'
    if tty:
        rate = (len(losses) - first) / (time.perf_counter() - start_time)  # steps a second
        line = (f'\r{line} | last 100: {fmean(losses[-100:]):.4f} | {rate:.1f} steps/s | '
                f'{(steps - len(losses)) / rate:.0f} s left ')
    print(line, end='' if tty else '\n', flush=tty)


def report(model, docs, run, text):
    """What the run learned: its loss curve, the loss on documents it never saw, what the model
    predicts after each character of text, samples, and how many of them are new."""
    losses, steps = run['losses'], run['steps']
    if losses:
        print(sparkline(losses, sys.stdout.encoding))
    unseen = docs[steps:steps + HELD_OUT]  # train() reads docs[step % len(docs)], so not these
    # A loaded model may have trained on the held-out documents, so it is not scored on them.
    trained_from_scratch = bool(losses) and not run['pretrained']
    if trained_from_scratch and unseen:
        held_out = fmean(document_loss(model, doc).data for doc in unseen)
        print(f'held-out loss {held_out:.4f} on {len(unseen)} documents never trained on (mean of '
              f'the last {min(len(losses), 100)} steps: {fmean(losses[-100:]):.4f})')
    elif trained_from_scratch:
        print(f'held-out loss: none, all {len(docs)} documents were trained on')
    if text:
        show(model, text)
    if run['samples']:
        print('\n--- inference (new, hallucinated names) ---')
    texts = []
    for i in range(run['samples']):
        texts.append(sample(model, run['temperature'], run['prompt'], run['top_k']))
        print(f'sample {i + 1:2d}: {texts[-1]}')
    if docs and texts:
        new = sum(drawn not in docs for drawn in texts)
        print(f'new: {new} of {len(texts)} samples are not in the data')


def sparkline(losses, encoding, width=40):
    """The loss curve in a line: each character is the mean loss over an equal slice of steps."""
    bars = '\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588'  # the eight block characters
    try:
        bars.encode(encoding or 'ascii')
    except UnicodeEncodeError:  # the output cannot show the blocks: ASCII, lowest to highest
        bars = '_.-~=+*#'
    n = min(width, len(losses))
    means = [fmean(losses[i * len(losses) // n:(i + 1) * len(losses) // n]) for i in range(n)]
    low, high = min(means), max(means)
    curve = ''.join(bars[round(7 * (m - low) / ((high - low) or 1))] for m in means)
    return f'loss curve: {means[0]:.4f} {curve} {means[-1]:.4f} ({n} slices of the steps)'


def show(model, text):
    """Print what explain() finds: the likeliest next characters, and where each head looks."""
    predictions, attention = explain(model, text)
    for pos, top in enumerate(predictions):
        guesses = '  '.join(f'{char} {100 * prob:4.1f}%' for prob, char in top)
        print(f'next after {repr(text[:pos]).rjust(len(text) + 2)}: {guesses}')
    labels = ['<bos>', *text]
    for layer, heads in enumerate(attention, 1):
        for head, rows in enumerate(heads, 1):
            print(f'\nattention of layer {layer}, head {head}: where each position looks, '
                  'in percent')
            print(' ' * 6 + ''.join(f'{label:>5}' for label in labels))
            for label, row in zip(labels, rows):
                print(f'{label:>5} ' + ''.join(f'{100 * weight:5.0f}' for weight in row))
    print('\nEach row is a position: its weights on itself and the positions before it add up to '
          '100.\nWeight just left of the diagonal: it looks at the previous character. A tall '
          'column:\nlater positions look back at one letter. An even row: it averages all so far.')


def explain(model, text):
    """After BOS and after each character of text: the 5 likeliest next tokens, as (probability,
    name). Then, for each layer and head, a row per position: its weights on the ones so far."""
    if len(text) >= model.block_size:
        raise ValueError(f'the text must be shorter than the block, {model.block_size} characters')
    cache = model.empty_cache()
    names = model.tokenizer.chars + ['<end>']  # to predict BOS is to end the text
    predictions = []
    for pos, token in enumerate(model.tokenizer.encode(text)):
        probs = [p.data for p in softmax(model(token, pos, cache))]
        predictions.append(sorted(zip(probs, names), reverse=True)[:5])
    attention = []  # for each layer, for each head, a row of weights per position
    for _, _, head_weights in cache:
        attention.append([[[w.data for w in row] for row in rows] for rows in head_weights])
    return predictions, attention


def main(argv=None):
    """The command line. Its exit status: 0 when done; 1 when training diverged (a number no longer
    finite); 2 for bad input, a file that cannot be read or written, or no memory left; 141 when
    the output's reader went away; else 128 + the number of the signal that stopped it (130 for
    Ctrl-C, 143 for SIGTERM)."""
    STOP['signals'].clear()
    try:
        args, given = parse_args(argv)  # argparse reads sys.argv when argv is None
        model, docs, run = resumed_run(args, given) if args['resume'] else new_run(args)
        check_texts(model, docs, run, args['explain'])
        print(f'vocab size: {model.tokenizer.vocab_size}\nnum params: {len(model.params)}')
        path = args['save'] or args['resume']  # without --save, a resumed run saves where it was
        train_and_save(model, docs, run, path)
        if not STOP['signals']:
            report(model, docs, run, args['explain'])
            return 0
        keep = f'go on with --resume {path}' if path else 'keep it with --save PATH'
        print(f'interrupted at step {len(run["losses"])}: {keep}', file=sys.stderr)
        return 128 + STOP['signals'][0]
    except KeyboardInterrupt:  # stopped at once: see stop()
        if not STOP['signals']:  # Python's own Ctrl-C handler: main() was called without program()
            return 128 + signal.SIGINT
        return 128 + STOP['signals'][0]
    except BrokenPipeError:  # the reader of the output went away, as head does: end quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # for the flush at exit
        return 128 + signal.SIGPIPE
    except (ArithmeticError, MemoryError, OSError, ValueError) as e:
        print(f'microgpt: error: {str(e) or type(e).__name__}', file=sys.stderr)
        return 1 if isinstance(e, ArithmeticError) else 2


def program():
    """`python3 microgpt.py` and the `microgpt` command: main() in a process set up for a long run.
    Only here, not in main(), so that a caller of main() from Python keeps its own settings."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    sys.stdout.reconfigure(errors='backslashreplace')  # a character it cannot show, escaped
    if sys.implementation.name == 'cpython':  # PyPy's collector is its only one, so it stays on
        gc.disable()  # the graph has no reference cycles: CPython's cycle collector only costs time
    return main()


if __name__ == '__main__':
    sys.exit(program())
