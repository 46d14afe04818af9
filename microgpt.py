"""microgpt: train a tiny GPT on a list of names and invent new ones, in pure Python.

The whole algorithm in one dependency-free file, meant to be read top to bottom: a scalar
autograd engine, a GPT-2-style transformer, the Adam optimizer, training, and sampling.

    python microgpt.py              # train on data/names.txt, then print 20 new names
    python microgpt.py --help       # every setting

It computes exactly what the classic 200-line microgpt computes: the same data, seed and
settings print the same losses and the same samples.
"""
import argparse
import math
import operator
import os
import random
import sys


# Autograd: a number that remembers how it was computed, so gradients can flow back through it.
class Value:
    """A scalar in a computation graph: its data, its gradient, and the children it came from."""
    __slots__ = ('data', 'grad', 'children', 'local_grads')

    def __init__(self, data, children=(), local_grads=()):
        self.data, self.grad = data, 0.0
        self.children, self.local_grads = children, local_grads  # d(self)/d(child), per child

    def __repr__(self):
        return f'Value(data={self.data}, grad={self.grad})'

    def backward(self):
        """Set .grad of every value this one depends on to d(self)/d(value), by the chain rule."""
        topo, visited, stack = [], set(), [(self, False)]
        while stack:  # depth-first, with a stack instead of recursion: no depth limit
            v, children_done = stack.pop()
            if children_done:
                topo.append(v)
            elif v not in visited:
                visited.add(v)
                stack.append((v, True))
                stack.extend((child, False) for child in v.children)
        self.grad = 1.0
        for v in reversed(topo):
            for child, local_grad in zip(v.children, v.local_grads):
                child.grad += local_grad * v.grad


def _operator(forward, grad_a, grad_b):
    """Turn one row of the table below into the method for `a op b` and its reflected twin."""
    def method(a, b):
        if isinstance(b, Value):
            return Value(forward(a.data, b.data), (a, b),
                         (grad_a(a.data, b.data), grad_b(a.data, b.data)))
        if isinstance(b, (int, float)):  # a plain number is a constant: no node, no gradient
            return Value(forward(a.data, b), (a,), (grad_a(a.data, b),))
        return NotImplemented  # so Python raises TypeError for foreign operands

    def reflected(b, a):  # `a op b` where only b is a Value, e.g. `2 - v`
        if isinstance(a, (int, float)):
            return Value(forward(a, b.data), (b,), (grad_b(a, b.data),))
        return NotImplemented
    return method, reflected


def _function(forward, derivative):
    """Turn one row of the table below into the method for a function of one value."""
    return lambda a: Value(forward(a.data), (a,), (derivative(a.data),))


# One row per operation: how to compute it, then d/da (and d/db) of its result.
Value.__add__, Value.__radd__ = _operator(operator.add, lambda a, b: 1, lambda a, b: 1)
Value.__sub__, Value.__rsub__ = _operator(operator.sub, lambda a, b: 1, lambda a, b: -1)
Value.__mul__, Value.__rmul__ = _operator(operator.mul, lambda a, b: b, lambda a, b: a)
Value.__truediv__, Value.__rtruediv__ = _operator(
    operator.truediv, lambda a, b: 1 / b, lambda a, b: -a / b ** 2)
Value.__pow__, Value.__rpow__ = _operator(
    operator.pow, lambda a, b: b * a ** (b - 1), lambda a, b: a ** b * math.log(a))
Value.__neg__ = _function(operator.neg, lambda a: -1)
Value.log = _function(math.log, lambda a: 1 / a)
Value.exp = _function(math.exp, math.exp)
Value.relu = _function(lambda a: max(0, a), lambda a: float(a > 0))


# Helpers: the few vector operations a transformer is made of.
def matrix(nout, nin, std=0.08):
    """A nout x nin matrix of parameters drawn from N(0, std), row by row."""
    return [[Value(random.gauss(0, std)) for _ in range(nin)] for _ in range(nout)]


def dot(ws, xs):
    """sum(w * x) as one node whose local gradients are the other vector: same floats as a chain
    of * and + nodes (added left to right from 0), a fraction of the nodes."""
    wd, xd = [w.data for w in ws], [x.data for x in xs]
    total = 0.0
    for w, x in zip(wd, xd):
        total += w * x
    return Value(total, (*ws, *xs), (*xd, *wd))


def linear(x, w):
    """Matrix-vector product: one dot product per row of w."""
    return [dot(row, x) for row in w]


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
    """-log(softmax(logits)[target]) as one node, computed stably: its local gradients are
    softmax(logits) minus one at the target."""
    zs = [z.data for z in logits]
    top = max(zs)
    exps = [math.exp(z - top) for z in zs]
    total = sum(exps)
    grads = [e / total - (i == target) for i, e in enumerate(exps)]
    return Value(math.log(total) - (zs[target] - top), tuple(logits), grads)


# The model: a GPT-2-style transformer that reads one character at a time.
class GPT:
    """Settings, vocabulary and parameters of a character-level GPT; call it to run one step."""

    def __init__(self, uchars, n_layer=1, n_embd=16, n_head=4, block_size=16):
        self.uchars, self.ids = uchars, {ch: i for i, ch in enumerate(uchars)}
        self.BOS = len(uchars)  # a token of its own marks where a document starts and ends
        self.vocab_size = len(uchars) + 1
        self.n_layer, self.n_embd, self.n_head, self.block_size = n_layer, n_embd, n_head, block_size
        self.head_dim = n_embd // n_head
        shapes = {'wte': (self.vocab_size, n_embd), 'wpe': (block_size, n_embd),
                  'lm_head': (self.vocab_size, n_embd)}
        for i in range(n_layer):
            shapes.update({f'layer{i}.attn_w{m}': (n_embd, n_embd) for m in 'qkvo'})
            shapes.update({f'layer{i}.mlp_fc1': (4 * n_embd, n_embd),
                           f'layer{i}.mlp_fc2': (n_embd, 4 * n_embd)})
        self.state = {name: matrix(*shape) for name, shape in shapes.items()}
        self.params = [p for mat in self.state.values() for row in mat for p in row]

    def encode(self, text):
        return [self.ids[ch] for ch in text]

    def __call__(self, token, pos, keys, values):
        """Logits for the token after `token` at position `pos`; appends to the key/value cache."""
        s = self.state
        x = rmsnorm([t + p for t, p in zip(s['wte'][token], s['wpe'][pos])])
        for i in range(self.n_layer):
            residual, x = x, rmsnorm(x)
            q = linear(x, s[f'layer{i}.attn_wq'])
            keys[i].append(linear(x, s[f'layer{i}.attn_wk']))
            values[i].append(linear(x, s[f'layer{i}.attn_wv']))
            heads = []
            for h in range(0, self.n_embd, self.head_dim):  # each head attends with its channels
                att = softmax([dot(q[h:h + self.head_dim], k[h:h + self.head_dim])
                               / self.head_dim ** 0.5 for k in keys[i]])
                heads += [dot(att, [v[j] for v in values[i]]) for j in range(h, h + self.head_dim)]
            x = [a + b for a, b in zip(linear(heads, s[f'layer{i}.attn_wo']), residual)]
            residual, x = x, rmsnorm(x)
            hidden = [z.relu() for z in linear(x, s[f'layer{i}.mlp_fc1'])]
            x = [a + b for a, b in zip(linear(hidden, s[f'layer{i}.mlp_fc2']), residual)]
        return linear(x, s['lm_head'])


# Adam: move each parameter against its gradient, scaled by running averages of the gradients.
def adam(params, m, v, step, num_steps, lr=0.01, beta1=0.85, beta2=0.99, eps=1e-8):
    """One bias-corrected Adam update with linearly decaying learning rate; zeroes the grads."""
    lr_t = lr * (1 - step / num_steps)
    for i, p in enumerate(params):
        m[i] = beta1 * m[i] + (1 - beta1) * p.grad
        v[i] = beta2 * v[i] + (1 - beta2) * p.grad ** 2
        m_hat = m[i] / (1 - beta1 ** (step + 1))
        v_hat = v[i] / (1 - beta2 ** (step + 1))
        p.data -= lr_t * m_hat / (v_hat ** 0.5 + eps)
        p.grad = 0.0


# Training: one document per step, predicting each next character from the ones before it.
def train(model, docs, num_steps, lr=0.01):
    """Train in place; yields (step, loss) after each step's update."""
    m, v = [0.0] * len(model.params), [0.0] * len(model.params)
    for step in range(num_steps):
        tokens = [model.BOS] + model.encode(docs[step % len(docs)]) + [model.BOS]
        n = min(model.block_size, len(tokens) - 1)
        keys, values = [[] for _ in range(model.n_layer)], [[] for _ in range(model.n_layer)]
        losses = [cross_entropy(model(tokens[i], i, keys, values), tokens[i + 1]) for i in range(n)]
        loss = (1 / n) * sum(losses)
        loss.backward()
        adam(model.params, m, v, step, num_steps, lr)
        yield step, loss.data


# Sampling: generate new text one character at a time, feeding each back in.
def sample(model, temperature=0.5):
    """One new document, drawn token by token until BOS or the end of the block."""
    keys, values = [[] for _ in range(model.n_layer)], [[] for _ in range(model.n_layer)]
    token, text = model.BOS, ''
    for pos in range(model.block_size):
        probs = softmax([z / temperature for z in model(token, pos, keys, values)])
        token = random.choices(range(model.vocab_size), weights=[p.data for p in probs])[0]
        if token == model.BOS:
            break
        text += model.uchars[token]
    return text


# Command line: read the data, train, sample, and say clearly what is wrong with bad input.
def fail(message):
    """Report bad input in one line and exit with status 2 (no traceback)."""
    print(f'microgpt: error: {message}', file=sys.stderr)
    sys.exit(2)


def read_docs(path):
    """The non-blank lines of a UTF-8 file, stripped."""
    try:
        with open(path, encoding='utf-8') as f:
            docs = [line.strip() for line in f if line.strip()]
    except OSError as e:
        fail(f'cannot read --data {path}: {e.strerror}; give a UTF-8 text file, one doc per line')
    except UnicodeDecodeError as e:
        fail(f'--data {path} is not UTF-8 text ({e.reason} at byte {e.start}); convert it first')
    if not docs:
        fail(f'--data {path} has no documents; give a file with one document per line')
    return docs


def parse_args(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(prog='microgpt', description=__doc__.split('\n')[0])
    p.error = fail  # one line on stderr and exit status 2, instead of usage and a traceback
    p.add_argument('--data', default=os.path.join(here, 'data', 'names.txt'),
                   help='UTF-8 text file, one document per line (default: data/names.txt)')
    for flag, kind, default, meaning in [
            ('--steps', int, 1000, 'training steps'), ('--samples', int, 20, 'samples to print'),
            ('--temperature', float, 0.5, 'sampling temperature, above 0'),
            ('--seed', int, 42, 'random seed'), ('--lr', float, 0.01, 'Adam learning rate'),
            ('--n-layer', int, 1, 'transformer layers'), ('--n-embd', int, 16, 'embedding width'),
            ('--n-head', int, 4, 'attention heads'), ('--block-size', int, 16, 'context length')]:
        p.add_argument(flag, type=kind, default=default, help=f'{meaning} (default: {default})')
    args = p.parse_args(argv)
    if args.steps < 0 or args.samples < 0:
        fail('--steps and --samples must be 0 or more')
    if not args.temperature > 0 or not args.lr > 0:
        fail('--temperature and --lr must be above 0')
    if min(args.n_layer, args.n_embd, args.n_head, args.block_size) < 1:
        fail('--n-layer, --n-embd, --n-head and --block-size must be at least 1')
    if args.n_embd % args.n_head:
        fail(f'--n-embd {args.n_embd} is not divisible by --n-head {args.n_head}')
    return args


def main(argv=None):
    args = parse_args(argv)
    random.seed(args.seed)
    docs = read_docs(args.data)
    random.shuffle(docs)
    print(f'num docs: {len(docs)}')
    model = GPT(sorted(set(''.join(docs))), args.n_layer, args.n_embd, args.n_head, args.block_size)
    print(f'vocab size: {model.vocab_size}')
    print(f'num params: {len(model.params)}')
    for step, loss in train(model, docs, args.steps, args.lr):
        print(f'step {step + 1:4d} / {args.steps:4d} | loss {loss:.4f}')
    if args.samples:
        print('\n--- inference (new, hallucinated names) ---')
    for i in range(args.samples):
        print(f'sample {i + 1:2d}: {sample(model, args.temperature)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
