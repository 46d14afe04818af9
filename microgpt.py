"""microgpt: train a tiny GPT on a list of names and invent new ones, in pure Python.

The whole algorithm in one dependency-free file, meant to be read top to bottom: a scalar
autograd engine, a GPT-2-style transformer, the Adam optimizer, training, and sampling.

    python microgpt.py              # train on data/names.txt, then print 20 new names
    python microgpt.py --help       # every setting

It computes exactly what the classic 200-line microgpt computes: the same data, seed and
settings print the same losses and the same samples.
"""
import argparse
import gc
import itertools
import json
import math
import os
import random
import signal
import sys
import time
from functools import reduce
from operator import add, mul, neg, sub, truediv


# Autograd: numbers that remember how they were computed, so gradients can flow back through them.
def _operator(forward, da, db):
    """One row of the operator table -> the method for `a op b` and its reflected twin (`2 - a`)."""
    def method(a, b):
        if isinstance(b, Value):
            return Value(forward(a.data, b.data), [a, b], [da(a.data, b.data), db(a.data, b.data)])
        if isinstance(b, (int, float)):  # a plain number is a constant: no node, no gradient
            return Value(forward(a.data, b), [a], [da(a.data, b)])
        return NotImplemented  # so Python raises TypeError for foreign operands

    def reflected(b, a):  # `a op b` where only b is a Value
        if isinstance(a, (int, float)):
            return Value(forward(a, b.data), [b], [db(a, b.data)])
        return NotImplemented
    return method, reflected


def _function(forward, derivative):
    """One row of the table for a function of one value -> its method."""
    return lambda a: Value(forward(a.data), [a], [derivative(a.data)])


class Value:
    """A scalar in a computation graph: its data, its gradient, and the children it came from."""
    __slots__ = ('data', 'grad', 'children', 'local_grads', 'serial')
    _serials = itertools.count()  # creation order: a value is always created after its children

    def __init__(self, data, children=(), local_grads=()):
        self.data, self.grad, self.serial = data, 0.0, next(Value._serials)
        self.children, self.local_grads = children, local_grads  # d(self)/d(child), per child

    def __repr__(self):
        return f'Value(data={self.data}, grad={self.grad})'

    # One row per operation: how to compute it, then its local gradients d/da (and d/db).
    __add__, __radd__ = _operator(add, lambda a, b: 1, lambda a, b: 1)
    __sub__, __rsub__ = _operator(sub, lambda a, b: 1, lambda a, b: -1)
    __mul__, __rmul__ = _operator(mul, lambda a, b: b, lambda a, b: a)
    __truediv__, __rtruediv__ = _operator(truediv, lambda a, b: 1 / b, lambda a, b: -a / b**2)
    __pow__, __rpow__ = _operator(pow, lambda a, b: b * a**(b - 1), lambda a, b: a**b * math.log(a))
    __neg__ = _function(neg, lambda a: -1)
    log = _function(math.log, lambda a: 1 / a)
    exp = _function(math.exp, math.exp)
    relu = _function(lambda a: max(0, a), lambda a: float(a > 0))

    def backward(self):
        """Set .grad of every value this one depends on to d(self)/d(value), by the chain rule."""
        graph, todo = {self}, [self]
        while todo:  # collect the graph without recursion; parameters (leaves) need no visit
            new = [child for child in todo.pop().children if child.children and child not in graph]
            graph.update(new)
            todo += new
        self.grad = 1.0
        for v in sorted(graph, key=lambda v: v.serial, reverse=True):  # parents before children
            for child, local_grad in zip(v.children, v.local_grads):
                child.grad += local_grad * v.grad


# Helpers: the few vector operations a transformer is made of.
def matrix(nout, nin, init):
    """A nout x nin matrix of parameters, each set by init(), row by row."""
    return [[Value(init()) for _ in range(nin)] for _ in range(nout)]


def linear(x, w):
    """w @ x, one fused dot-product node per row of w: its local gradients are the other vector.
    Same floats as a chain of * and + nodes added left to right from 0, a fraction of the nodes."""
    xd = [xi.data for xi in x]
    wds = [[wi.data for wi in row] for row in w]
    return [Value(reduce(add, map(mul, wd, xd), 0.0), row + x, xd + wd) for row, wd in zip(w, wds)]


def dot(a, b):
    """a · b as one node."""
    return linear(b, [a])[0]


def softmax(logits):
    """Probabilities from logits; subtracting the max (a constant) keeps exp from overflowing."""
    top = max(z.data for z in logits)
    exps = [(z - top).exp() for z in logits]
    total = sum(exps)
    return [e / total for e in exps]


def rmsnorm(x):
    """Rescale x to unit root-mean-square."""
    scale = (dot(x, x) / len(x) + 1e-5) ** -0.5
    return [xi * scale for xi in x]


def cross_entropy(logits, target):
    """-log(softmax(logits)[target]) as one stable node; its local gradients: softmax - one-hot."""
    top = max(z.data for z in logits)
    exps = [math.exp(z.data - top) for z in logits]
    total = sum(exps)
    grads = [e / total - (i == target) for i, e in enumerate(exps)]
    return Value(math.log(total) - (logits[target].data - top), logits, grads)


# The model: a GPT-2-style transformer that reads one character at a time.
SIZES = ('n_layer', 'n_embd', 'n_head', 'block_size')  # the settings that shape a model


class GPT:
    """A character-level GPT: settings, vocabulary and parameters. Calling it runs one position."""

    def __init__(self, uchars, n_layer=1, n_embd=16, n_head=4, block_size=16,
                 init=lambda: random.gauss(0, 0.08)):
        self.uchars, self.vocab_size = uchars, len(uchars) + 1
        self.BOS = len(uchars)  # one extra token marks where a document begins and ends
        self.ids = {ch: i for i, ch in enumerate(uchars)}
        self.n_layer, self.n_embd = n_layer, n_embd
        self.n_head, self.block_size = n_head, block_size
        self.wte, self.wpe, self.lm_head = [matrix(n, n_embd, init) for n in
                                            (self.vocab_size, block_size, self.vocab_size)]
        e = n_embd
        shapes = dict(wq=(e, e), wk=(e, e), wv=(e, e), wo=(e, e), fc1=(4 * e, e), fc2=(e, 4 * e))
        self.layers = [{name: matrix(*shape, init) for name, shape in shapes.items()}
                       for _ in range(n_layer)]
        mats = [self.wte, self.wpe, self.lm_head] + [m for lay in self.layers for m in lay.values()]
        self.params = [p for mat in mats for row in mat for p in row]

    def encode(self, text):
        return [self.ids[ch] for ch in text]

    def empty_cache(self):
        """Per layer, the keys and the values of the positions read so far: none yet."""
        return [[] for _ in self.layers], [[] for _ in self.layers]

    def __call__(self, token, pos, keys, values):
        """Logits for the token after `token` at position `pos`; appends to the key/value cache."""
        hd = self.n_embd // self.n_head  # channels per head
        x = rmsnorm([t + p for t, p in zip(self.wte[token], self.wpe[pos])])
        for layer, layer_keys, layer_values in zip(self.layers, keys, values):
            residual, x = x, rmsnorm(x)
            q = linear(x, layer['wq'])
            layer_keys.append(linear(x, layer['wk']))
            layer_values.append(linear(x, layer['wv']))
            heads = []
            for h in range(0, self.n_embd, hd):  # each head attends with its own slice of channels
                scores = linear(q[h:h + hd], [k[h:h + hd] for k in layer_keys])
                att = softmax([s / hd**0.5 for s in scores])
                heads += linear(att, [[v[j] for v in layer_values] for j in range(h, h + hd)])
            x = [a + b for a, b in zip(linear(heads, layer['wo']), residual)]
            residual, x = x, rmsnorm(x)
            hidden = [z.relu() for z in linear(x, layer['fc1'])]
            x = [a + b for a, b in zip(linear(hidden, layer['fc2']), residual)]
        return linear(x, self.lm_head)


# Adam: step each parameter against its gradient, scaled by running averages of the gradients.
def adam(params, m, v, step, num_steps, lr=0.01, beta1=0.85, beta2=0.99, eps=1e-8):
    """One bias-corrected Adam update with a learning rate decaying linearly to 0; zeroes grads."""
    lr_t = lr * (1 - step / num_steps)
    m_fix, v_fix = 1 - beta1 ** (step + 1), 1 - beta2 ** (step + 1)  # bias corrections, hoisted
    for i, p in enumerate(params):
        m[i] = beta1 * m[i] + (1 - beta1) * p.grad
        v[i] = beta2 * v[i] + (1 - beta2) * p.grad ** 2
        p.data -= lr_t * (m[i] / m_fix) / ((v[i] / v_fix) ** 0.5 + eps)
        p.grad = 0.0


# Training: one document per step, predicting each next character from the ones before it.
def document_loss(model, tokens):
    """Mean cross-entropy of predicting each next token of one document (BOS ... BOS)."""
    n = min(model.block_size, len(tokens) - 1)
    keys, values = model.empty_cache()
    return (1 / n) * sum(cross_entropy(model(tokens[i], i, keys, values), tokens[i + 1])
                         for i in range(n))


def train(model, docs, num_steps, lr=0.01):
    """Train the model in place, yielding (step, loss) after each step's update."""
    m, v = [0.0] * len(model.params), [0.0] * len(model.params)
    for step in range(num_steps):
        tokens = [model.BOS] + model.encode(docs[step % len(docs)]) + [model.BOS]
        loss = document_loss(model, tokens)
        loss.backward()
        adam(model.params, m, v, step, num_steps, lr)
        yield step, loss.data


# Sampling: generate new text one character at a time, feeding each back in.
def sample(model, temperature=0.5, prompt=''):
    """A new document starting with prompt, drawn a token at a time until BOS or the block ends."""
    keys, values = model.empty_cache()
    tokens = [model.BOS] + model.encode(prompt)
    for pos in range(model.block_size):
        logits = model(tokens[pos], pos, keys, values)
        if pos + 1 < len(tokens):
            continue  # still reading the prompt into the cache
        probs = softmax([z / temperature for z in logits])
        tokens.append(random.choices(range(model.vocab_size), weights=[p.data for p in probs])[0])
        if tokens[-1] == model.BOS:
            break
    return ''.join(model.uchars[t] for t in tokens[1:] if t != model.BOS)


# Checkpoints: settings, vocabulary and parameters as JSON, so loading one runs no code.
def save(model, path):
    """Write a checkpoint atomically: a crash mid-write never leaves a broken file at path."""
    with open(f'{path}.tmp', 'w', encoding='utf-8') as f:
        json.dump({'format': 'microgpt', 'version': 1, 'vocab': ''.join(model.uchars),
                   'config': {k: getattr(model, k) for k in SIZES},
                   'params': [p.data for p in model.params]}, f)  # repr floats read back exactly
        f.flush()
        os.fsync(f.fileno())
    os.replace(f'{path}.tmp', path)


def load(path):
    """The model in a checkpoint written by save(), or a clear error if it is not one."""
    try:
        ckpt = json.loads(read_text(path, '--load'))
        if (ckpt['format'], ckpt['version']) != ('microgpt', 1):
            raise ValueError('its format is not microgpt version 1')
        floats = iter(ckpt['params'])  # handed out in the order the parameters are created
        model = GPT(list(ckpt['vocab']), **ckpt['config'], init=lambda: float(next(floats)))
        if next(floats, None) is not None:
            raise ValueError('it has more parameters than its settings need')
        if min(getattr(model, k) for k in SIZES) < 1 or model.n_embd % model.n_head:
            raise ValueError(f'its settings make no model: {ckpt["config"]}')
        return model
    except (KeyError, TypeError, ValueError, ArithmeticError, StopIteration) as e:
        fail(f'--load {path} is not a valid microgpt checkpoint ({type(e).__name__}: {e})')


# Command line: train, sample, save and load; bad input gets one clear line, not a traceback.
def fail(message):
    """Report bad input in one line on stderr and exit with status 2."""
    print(f'microgpt: error: {message}', file=sys.stderr)
    sys.exit(2)


def read_text(path, flag):
    """The contents of a UTF-8 text file, or a clear error naming the flag that gave it."""
    try:
        with open(path, encoding='utf-8') as f:
            return f.read()
    except (OSError, UnicodeError) as e:
        fail(f'cannot read {flag} {path}: {getattr(e, "strerror", None) or e}')


def parse_args(argv):
    """The command-line settings, checked."""
    here = os.path.dirname(os.path.abspath(__file__))  # so data/ is found from any folder
    p = argparse.ArgumentParser(prog='microgpt', description=__doc__.split('\n')[0],
                                allow_abbrev=False)  # so sizes given by hand can be spotted
    p.error = fail  # one line and exit status 2, instead of argparse's usage block
    for flag, default, meaning in [
            ('--data', os.path.join(here, 'data', 'names.txt'), 'UTF-8 text, one document a line'),
            ('--steps', 1000, 'training steps'), ('--samples', 20, 'samples to print'),
            ('--temperature', 0.5, 'sampling temperature'), ('--seed', 42, 'random seed'),
            ('--lr', 0.01, 'Adam learning rate'), ('--n-layer', 1, 'transformer layers'),
            ('--n-embd', 16, 'embedding width'), ('--n-head', 4, 'attention heads'),
            ('--block-size', 16, 'context length'), ('--prompt', '', 'start every sample with it'),
            ('--save', '', 'write the model to this checkpoint'), ('--load', '', 'start from it')]:
        p.add_argument(flag, type=type(default), default=default, help=f'{meaning} ({default})')
    a = p.parse_args(argv)
    size_flags = ['--' + k.replace('_', '-') for k in SIZES]
    sizes = [s for s in argv if s.split('=')[0] in size_flags]
    for bad, message in [
            (a.load and sizes, f'{" ".join(sizes)}: with --load, the checkpoint sets the sizes'),
            (min(a.steps, a.samples) < 0, '--steps and --samples must be 0 or more'),
            (not (a.temperature > 0 and a.lr > 0), '--temperature and --lr must be above 0'),
            (min(a.n_layer, a.n_embd, a.n_head, a.block_size) < 1,
             '--n-layer, --n-embd, --n-head and --block-size must be at least 1'),
            (a.n_embd % max(a.n_head, 1), f'--n-head {a.n_head} must divide --n-embd {a.n_embd}'),
            (a.save and not os.path.isdir(os.path.dirname(os.path.abspath(a.save))),
             f'--save {a.save}: its folder does not exist')]:
        if bad:
            fail(message)
    return a


def main(argv=None):
    """The command line; returns the exit status: 0, or 130 after Ctrl-C."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    stop = []  # Ctrl-C appends here: the step or sample in progress finishes, then the run stops
    previous = signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    gc.disable()  # the graph has no reference cycles, so the cycle collector would only cost time
    try:
        return run(args, stop)
    finally:  # leave the caller's process as it was
        gc.enable()
        signal.signal(signal.SIGINT, previous)


def run(args, stop):
    """Load or build the model, train it, save it and sample from it, as the flags say."""
    random.seed(args.seed)
    model, docs = load(args.load) if args.load else None, []
    if args.steps or not model:
        docs = [line.strip() for line in read_text(args.data, '--data').split('\n') if line.strip()]
        if not docs:
            fail(f'--data {args.data} has no documents: give a text file, one document per line')
        random.shuffle(docs)
        print(f'num docs: {len(docs)}')
    model = model or GPT(sorted(set(''.join(docs))), *(getattr(args, k) for k in SIZES))
    unknown = ''.join(sorted(set(args.prompt + ''.join(docs)) - set(model.uchars)))
    if unknown:
        fail(f'{unknown!r} is not in the vocabulary of the model ({"".join(model.uchars)!r})')
    if len(args.prompt) >= model.block_size:
        fail(f'--prompt fills the whole block of {model.block_size}: leave room to generate')
    print(f'vocab size: {model.vocab_size}\nnum params: {len(model.params)}')
    tty, start = sys.stdout.isatty(), time.perf_counter()
    for step, loss in train(model, docs, args.steps, args.lr):
        line = f'step {step + 1:4d} / {args.steps:4d} | loss {loss:.4f}'
        if tty:  # one line, rewritten in place, with speed and time left
            rate = (step + 1) / (time.perf_counter() - start)
            line = f'\r{line} | {rate:.1f} steps/s | {(args.steps - step - 1) / rate:.0f} s left '
        print(line, end='' if tty else '\n', flush=tty)
        if stop:
            break
    if tty and args.steps:
        print()
    if args.save:
        save(model, args.save)
        print(f'saved the model to {args.save}')
    if args.samples and not stop:
        print('\n--- inference (new, hallucinated names) ---')
    for i in range(args.samples):
        if stop:
            break
        print(f'sample {i + 1:2d}: {sample(model, args.temperature, args.prompt)}')
    if stop:
        keep = f'saved in {args.save}' if args.save else 'add --save PATH to keep it next time'
        print(f'interrupted: the model is {keep}', file=sys.stderr)
        return 130
    return 0


if __name__ == '__main__':
    sys.exit(main())
