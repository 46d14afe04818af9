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
    """The non-blank lines of a UTF-8 text file, stripped of spaces, in a shuffled order."""
    with open(path, encoding='utf-8-sig') as f:
        docs = [line.strip() for line in f if line.strip()]
    if not docs:
        raise ValueError(f'{path} has no documents: give a text file with one document a line')
    random.shuffle(docs)  # the first draw from the random stream, which the caller seeds
    return docs


class Tokenizer:
    """Turns text into token ids and back. A character's id is its place in the sorted vocabulary.
    One more id, BOS, marks where a document begins and ends. With the names, BOS is 26."""

    def __init__(self, text):
        self.chars = sorted(set(text))
        self.BOS, self.vocab_size = len(self.chars), len(self.chars) + 1

    def encode(self, text):
        return [self.BOS] + [self.chars.index(ch) for ch in text]

    def decode(self, tokens):
        return ''.join(self.chars[t] for t in tokens if t != self.BOS)


# Autograd. A Value is a number that remembers how it was computed, so gradients can flow back.
def binary(forward, d_dx, d_dy):
    """Value's two methods for an operator, made from its row: the result for plain numbers x and
    y, and the derivatives d/dx and d/dy. The second method is for a number on the left: 2 - v."""
    def method(self, other):
        if isinstance(other, Value):
            x, y = self.data, other.data
            return Value(forward(x, y), (self, other), (d_dx(x, y), d_dy(x, y)))
        if isinstance(other, (int, float)):  # a plain number is a constant, so it gets no gradient
            return Value(forward(self.data, other), (self,), (d_dx(self.data, other),))
        return NotImplemented  # so Python raises its usual TypeError

    def reflected(self, other):
        return method(Value(other), self) if isinstance(other, (int, float)) else NotImplemented
    return method, reflected


def unary(forward, derivative):
    """Value's method for a function of one value, made from the function and its derivative."""
    return lambda self: Value(forward(self.data), (self,), (derivative(self.data),))


class Value:
    """A number in a computation graph. It keeps the children it was computed from, and its local
    gradients, which say how much it moves per unit of each child. backward() fills in grad."""
    __slots__ = ('children', 'data', 'grad', 'local_grads')  # a step makes thousands of values

    def __init__(self, data, children=(), local_grads=()):
        self.data, self.grad = data, 0.0
        self.children, self.local_grads = children, local_grads

    def __repr__(self):
        return f'Value(data={self.data}, grad={self.grad})'

    # One row per operator. Each row gives the result for plain numbers x and y, then d/dx and d/dy.
    __add__, __radd__ = binary(add, lambda x, y: 1, lambda x, y: 1)
    __sub__, __rsub__ = binary(sub, lambda x, y: 1, lambda x, y: -1)
    __mul__, __rmul__ = binary(mul, lambda x, y: y, lambda x, y: x)
    __truediv__, __rtruediv__ = binary(truediv, lambda x, y: 1 / y, lambda x, y: -x / y**2)
    __pow__, __rpow__ = binary(pow, lambda x, y: y * x**(y - 1), lambda x, y: x**y * math.log(x))
    __neg__ = unary(neg, lambda x: -1)
    log = unary(math.log, lambda x: 1 / x)
    exp = unary(math.exp, math.exp)

    def relu(self):  # below 0 the result is the constant 0, so no gradient flows back through it
        return Value(self.data, (self,), (1.0,)) if self.data > 0 else Value(0.0)

    def backward(self):
        """Add d(self)/d(v) to v.grad for every value v that self depends on. Gradients add up, so a
        second backward() doubles them. A topological sort first puts each value after its children,
        by a depth-first search with a stack of its own (recursion would hit Python's limit)."""
        order, visited, stack = [], set(), [(self, False)]
        while stack:
            value, children_done = stack.pop()
            if children_done:
                order.append(value)
            elif value not in visited:
                visited.add(value)
                stack.append((value, True))
                for child in value.children:
                    if child.children and child not in visited:  # leaves pass nothing on
                        stack.append((child, False))
        self.grad = 1.0
        for value in reversed(order):  # a value's gradient is complete before it is passed on
            for child, local_grad in zip(value.children, value.local_grads):
                child.grad += local_grad * value.grad  # the chain rule


# Helpers, the vector operations of a transformer. A node can be any function whose local gradients
# we know. So dot and cross_entropy are one node each, where the operators would make many.
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
    """x scaled to a root mean square of 1, so that numbers keep their size through the layers."""
    scale = (dot(x, x) / len(x) + 1e-5) ** -0.5
    return [xi * scale for xi in x]


def cross_entropy(logits, target):
    """The loss -log(softmax(logits)[target]), which is low when the target was likely. Its local
    gradient for logit i is the probability that softmax gives i, minus 1 for the target."""
    top = max(z.data for z in logits)
    exps = [math.exp(z.data - top) for z in logits]
    total = math.fsum(exps)
    grads = [e / total - (i == target) for i, e in enumerate(exps)]
    return Value(math.log(total) - (logits[target].data - top), logits, grads)


# The model, a GPT-2-style transformer. It reads one token at a time and predicts the next one.
# The matrices of a layer, with their rows and columns in units of n_embd, the model's width.
LAYER = {'wq': (1, 1), 'wk': (1, 1), 'wv': (1, 1), 'wo': (1, 1), 'fc1': (4, 1), 'fc2': (1, 4)}


class GPT:
    def __init__(self, tokenizer, n_layer=1, n_embd=16, n_head=4, block_size=16,
                 init=lambda: random.gauss(0, 0.08)):  # the reference's sizes and initial spread
        if min(n_layer, n_embd, n_head, block_size) < 1 or n_embd % n_head:
            raise ValueError('model sizes must be at least 1, and n_head must divide n_embd')
        self.tokenizer, self.n_layer, self.n_embd = tokenizer, n_layer, n_embd
        self.n_head, self.block_size, self.head_dim = n_head, block_size, n_embd // n_head
        # An embedding is a learned row of n_embd numbers, for a token (wte) or a position (wpe).
        # The parameters are made in the reference's order, which decides their random draws.
        self.wte = matrix(tokenizer.vocab_size, n_embd, init)
        self.wpe = matrix(block_size, n_embd, init)
        self.lm_head = matrix(tokenizer.vocab_size, n_embd, init)
        self.layers = [{name: matrix(rows * n_embd, cols * n_embd, init)
                        for name, (rows, cols) in LAYER.items()} for _ in range(n_layer)]
        mats = [self.wte, self.wpe, self.lm_head] + [m for lay in self.layers for m in lay.values()]
        self.params = [p for mat in mats for row in mat for p in row]

    def empty_cache(self):
        """For each layer, the keys and values of the positions read so far, and the attention
        weights that each head gave them. The cache starts empty."""
        return [([], [], []) for _ in self.layers]

    def __call__(self, token, pos, cache):
        """The logits after `token` at position `pos`: a score for each token that may come next."""
        x = rmsnorm([t + p for t, p in zip(self.wte[token], self.wpe[pos])])
        for layer, layer_cache in zip(self.layers, cache):
            # Each block adds to x, the residual stream, rather than replacing it.
            x = [a + b for a, b in zip(x, self.attention(rmsnorm(x), layer, *layer_cache))]
            # The MLP computes on what attention gathered, in a layer 4 times as wide, bent by relu.
            hidden = [z.relu() for z in linear(rmsnorm(x), layer['fc1'])]
            x = [a + b for a, b in zip(x, linear(hidden, layer['fc2']))]
        return linear(x, self.lm_head)

    def attention(self, x, layer, keys, values, seen):
        """What this position gathers from the positions so far. Its query is matched against each
        one's key, and it takes in each one's value in proportion to how well they match."""
        query = linear(x, layer['wq'])
        keys.append(linear(x, layer['wk']))
        values.append(linear(x, layer['wv']))
        heads = []  # later positions are not in the cache yet, so none is seen (a causal mask)
        for start in range(0, self.n_embd, self.head_dim):  # each head has its own channels
            head = slice(start, start + self.head_dim)
            # scaled, so that the softmax does not put all its weight on one position
            scores = [dot(query[head], key[head]) / self.head_dim**0.5 for key in keys]
            weights = softmax(scores)
            seen.append(weights)
            for j in range(start, start + self.head_dim):
                heads.append(dot(weights, [value[j] for value in values]))
        return linear(heads, layer['wo'])  # wo mixes what the heads found


# Adam. Each parameter moves against a running mean of its gradient (m), divided by the root of a
# running mean of its square (v). So every step is about lr, whatever the size of the gradient.
def adam(params, m, v, step, num_steps, lr=0.01, beta1=0.85, beta2=0.99, eps=1e-8):
    """One update with the reference's settings; then each gradient is set back to 0."""
    lr_t = lr * (1 - step / num_steps)  # the learning rate decays linearly to 0
    # m and v start at 0, so they are too small at first. Dividing by these undoes that.
    m_correction, v_correction = 1 - beta1 ** (step + 1), 1 - beta2 ** (step + 1)
    for i, p in enumerate(params):
        m[i] = beta1 * m[i] + (1 - beta1) * p.grad
        v[i] = beta2 * v[i] + (1 - beta2) * p.grad ** 2
        p.data -= lr_t * (m[i] / m_correction) / ((v[i] / v_correction) ** 0.5 + eps)
        p.grad = 0.0


# Training: one document a step, predicting each next character from the ones before it. A loss
# of ln 27 = 3.30 is a uniform guess among the 27 tokens of the names.
def document_loss(model, doc):
    """The mean loss of predicting each next token of BOS, doc, BOS: one graph, via the cache."""
    tokens = model.tokenizer.encode(doc[:model.block_size]) + [model.tokenizer.BOS]
    n = min(model.block_size, len(tokens) - 1)
    cache = model.empty_cache()
    losses = [cross_entropy(model(tokens[i], i, cache), tokens[i + 1]) for i in range(n)]
    return sum(losses) / n


def train(model, docs, num_steps, lr=0.01, start=0, moments=None):
    """Gradient descent from step `start`, yielding (step, loss) after each step. The moments are
    Adam's m and v, which a resumed run passes in."""
    if start < num_steps and not docs:
        raise ValueError('no documents to train on')
    m, v = moments or ([0.0] * len(model.params), [0.0] * len(model.params))
    for step in range(start, num_steps):
        loss = document_loss(model, docs[step % len(docs)])
        if not math.isfinite(loss.data):  # training diverged, so stop before the update
            raise FloatingPointError(f'step {step + 1}: the loss is {loss.data} with lr {lr}')
        loss.backward()
        adam(model.params, m, v, step, num_steps, lr)
        yield step, loss.data


# Sampling: new text, one token at a time, each drawn from the model's probabilities. No
# backward() follows, so the graph that each step builds is simply dropped.
def sample(model, temperature=0.5, prompt='', top_k=0):
    """Text that starts with prompt, until BOS or the end of the block. A temperature below 1
    favours likely tokens. With top_k above 0, only the k likeliest tokens can be drawn."""
    if not (0 < temperature < math.inf and top_k >= 0 and len(prompt) < model.block_size):
        raise ValueError(f'need temperature > 0, top_k >= 0, prompt < {model.block_size} chars')
    tokens = model.tokenizer.encode(prompt)
    cache = model.empty_cache()
    for pos in range(model.block_size):
        logits = model(tokens[pos], pos, cache)
        if pos < len(tokens) - 1:
            continue  # still in the prompt, so the next token is already known
        probs = [p.data for p in softmax([z / temperature for z in logits])]
        if top_k:
            kth = sorted(probs, reverse=True)[min(top_k, len(probs)) - 1]
            probs = [p if p >= kth else 0.0 for p in probs]
        tokens.append(random.choices(range(model.tokenizer.vocab_size), weights=probs)[0])
        if tokens[-1] == model.tokenizer.BOS:
            break
    return model.tokenizer.decode(tokens)


# The lesson ends here; the rest is plumbing: checkpoints and the command line.
import argparse
import gc
import hashlib
import json
import os
import pathlib
import signal
import sys
import time
from statistics import fmean

SIZES = ('n_layer', 'n_embd', 'n_head', 'block_size')  # the settings that shape a model
SAVE_EVERY = 100  # steps between checkpoints while training: a kill loses at most these
# Held out: documents that training never reached (it reads them in order, one a step), scored
# after training to see whether the model generalizes; 50 cost about 2% of the default run.
HELD_OUT = 50
# The signals caught (SIGINT for Ctrl-C, SIGTERM for a kill), by the handlers program() sets:
# once this list has one, training stops after the step in progress, sampling too.
STOP = []


def save(model, path, run):
    """Write a JSON checkpoint atomically: a crash mid-write never leaves a broken file at path.
    run is what it takes to continue the run (made by prepare): seed, steps planned, lr, the
    losses so far, Adam's m and v, the data's path and SHA-256, and whether it began from --load."""
    if not all(math.isfinite(p.data) for p in model.params):
        raise FloatingPointError(f'the model is no longer finite, so {path} was kept as it was')
    with open(f'{path}.tmp', 'w', encoding='utf-8') as f:
        # The random stream's state goes in too, so a resumed run draws what this one would have.
        json.dump({'format': 'microgpt', 'version': 2, 'vocab': ''.join(model.tokenizer.chars),
                   'config': {k: getattr(model, k) for k in SIZES},
                   'params': [p.data for p in model.params],  # repr floats read back exactly
                   'run': {**run, 'random': random.getstate()}}, f)
        f.flush()
        os.fsync(f.fileno())  # on the disk before it replaces the previous checkpoint
    os.replace(f'{path}.tmp', path)


def load(path):
    """The model and the run of a checkpoint written by save(); version 1 held no run: None."""
    try:
        ckpt = json.loads(pathlib.Path(path).read_text(encoding='utf-8'))
        if ckpt['format'] != 'microgpt' or ckpt['version'] not in (1, 2):
            raise ValueError('its format is not microgpt version 1 or 2')
        # init hands out the saved numbers instead of random draws, in the order GPT() creates
        # the parameters: the order they were saved in (too few: StopIteration, caught below;
        # float() turns an entry that is not a number into a ValueError or TypeError)
        floats = iter(ckpt['params'])
        model = GPT(Tokenizer(ckpt['vocab']), **ckpt['config'], init=lambda: float(next(floats)))
        if next(floats, None) is not None:
            raise ValueError('it has more parameters than its settings need')
        return model, ckpt.get('run')
    except (KeyError, TypeError, ValueError, StopIteration) as e:
        raise ValueError(f'{path} is not a microgpt checkpoint ({type(e).__name__}: {e})') from None


def explain(model, text):
    """After BOS and after each character of text: the 5 likeliest next tokens, (prob, char)."""
    cache = model.empty_cache()
    names = model.tokenizer.chars + ['<end>']  # the last id, BOS, predicted: the text ends
    for pos, token in enumerate(model.tokenizer.encode(text)):
        probs = [p.data for p in softmax(model(token, pos, cache))]
        yield text[:pos], sorted(zip(probs, names), reverse=True)[:5]


def sparkline(losses, encoding, width=40):
    """The loss curve in a line: each character is the mean loss over an equal slice of steps."""
    bars = '\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588'  # the eight block characters
    # Two encodings differ when the output lacks a block: 'replace' writes ?, 'ignore' drops it
    if bars.encode(encoding or 'ascii', 'replace') != bars.encode(encoding or 'ascii', 'ignore'):
        bars = '_.-~=+*#'  # then ASCII, lowest to highest
    n = min(width, len(losses))
    means = [fmean(losses[i * len(losses) // n:(i + 1) * len(losses) // n]) for i in range(n)]
    low, high = min(means), max(means)
    curve = ''.join(bars[round(7 * (m - low) / ((high - low) or 1))] for m in means)
    return f'loss curve: {means[0]:.4f} {curve} {means[-1]:.4f} ({n} slices of the steps)'


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        raise ValueError(message)  # so main() reports it in one line, like every other error


DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', 'names.txt')
FLAGS = [  # flag, type, default, meaning
    ('--data', str, DATA, 'UTF-8 text, one document a line'),
    ('--seed', int, 42, 'random seed'), ('--steps', int, 1000, 'training steps'),
    ('--lr', float, 0.01, 'learning rate, above 0'), ('--samples', int, 20, 'samples to print'),
    ('--temperature', float, 0.5, 'sampling temperature above 0: lower is safer'),
    ('--top-k', int, 0, 'sample only from the k likeliest tokens (0: all)'),
    ('--prompt', str, '', 'text every sample starts with'),
    ('--explain', str, '', 'show what the model predicts after each character of this text'),
    ('--n-layer', int, 1, 'transformer layers'), ('--n-embd', int, 16, 'embedding width'),
    ('--n-head', int, 4, 'attention heads'), ('--block-size', int, 16, 'context length'),
    ('--save', str, '', f'keep the model and the run here, every {SAVE_EVERY} steps and at end'),
    ('--load', str, '', 'start from the model in this checkpoint'),
    ('--resume', str, '', 'continue the run saved in this checkpoint to its planned end')]


def parse_args(argv):
    """The command-line settings, with the values and combinations that make no sense refused."""
    # allow_abbrev=False: an abbreviated flag (--n-emb) would slip past the checks on given flags
    parser = ArgumentParser(prog='microgpt', description=__doc__.split('\n')[0], allow_abbrev=False)
    for flag, kind, default, meaning in FLAGS:
        parser.add_argument(flag, type=kind, default=default, help=f'{meaning} [{default!r}]')
    args = parser.parse_args(argv)
    if not (0 < args.temperature < math.inf and 0 < args.lr < math.inf):
        raise ValueError('--temperature and --lr must be finite numbers above 0')
    if min(args.steps, args.samples, args.top_k) < 0:
        raise ValueError('--steps, --samples and --top-k must be 0 or more')
    # A flag typed by hand for what a checkpoint decides would be silently overruled: refuse it.
    # A checkpoint decides the sizes; a run to continue also its seed, learning rate and steps.
    given = {arg.split('=')[0] for arg in argv}  # the flags typed (and values: they match none)
    fixed = {'--' + size.replace('_', '-') for size in SIZES}
    if args.resume:
        fixed |= {'--seed', '--lr', '--steps', '--load'}
    clash = sorted(given & fixed) if args.load or args.resume else []
    if clash:
        raise ValueError(f'{" ".join(clash)}: the checkpoint decides these, so leave them out')
    if args.resume and '--data' not in given:
        args.data = None  # prepare() takes the data path the run recorded
    args.save = args.save or args.resume  # a resumed run goes on saving where it was
    return args


def prepare(args):
    """The model, the documents and the run the flags ask for; prints the first lines of a run.
    The three modes (parse_args refuses the flags a checkpoint decides):
        new run:    a new model from the documents' vocabulary; a new run, held-out loss scored
        --load:     the checkpoint's model; documents only to train further; a new run, with no
                    held-out loss (the model may have seen those documents); size flags refused
        --resume:   the checkpoint's model and run; its seed and data, checked by hash; the
                    random stream restored to where the run stopped; size flags, --seed, --lr
                    and --steps refused"""
    model, run = load(args.load or args.resume) if args.load or args.resume else (None, None)
    if args.resume and not (run and len(run['losses']) < run['steps']):
        raise ValueError(f'{args.resume}: no run to continue (to sample: --load it --steps 0)')
    if args.resume:  # the run's seed and data give its document order again
        args.seed, args.data = run['seed'], args.data or run['data']
    random.seed(args.seed)
    # Documents are needed to train, to continue a run and to build a new model's vocabulary;
    # sampling from a checkpoint needs none.
    needs_docs = args.steps or args.resume or not model
    docs = read_documents(args.data) if needs_docs else []
    digest = hashlib.sha256(pathlib.Path(args.data).read_bytes()).hexdigest() if docs else ''
    if args.resume and digest != run['sha256']:
        raise ValueError(f'{args.data} is not the data the run trained on: its SHA-256 differs')
    if docs:
        print(f'num docs: {len(docs)}')
    model = model or GPT(Tokenizer(''.join(docs)), **{k: getattr(args, k) for k in SIZES})
    unknown = set(''.join(docs) + args.prompt + args.explain) - set(model.tokenizer.chars)
    if unknown:
        raise ValueError(f'{"".join(sorted(unknown))!r}: not in the vocabulary of the model')
    if max(len(args.prompt), len(args.explain)) >= model.block_size:
        raise ValueError(f'--prompt and --explain must be shorter than the block of the model, '
                         f'{model.block_size} characters')
    print(f'vocab size: {model.tokenizer.vocab_size}\nnum params: {len(model.params)}')
    if args.resume:  # the stream as the run left it, so its samples are an unbroken run's
        # (JSON turned the state's tuples into lists)
        random.setstate((run['random'][0], tuple(run['random'][1]), run['random'][2]))
        return model, docs, run
    n = len(model.params)
    return model, docs, {'seed': args.seed, 'steps': args.steps, 'lr': args.lr, 'losses': [],
                         'm': [0.0] * n, 'v': [0.0] * n, 'sha256': digest,
                         'data': os.path.abspath(args.data) if docs else '',
                         'pretrained': bool(args.load)}  # it may have seen the held-out docs


def train_and_save(model, docs, run, path):
    """Train to the run's planned end, printing each step; with a path, checkpoint as it goes."""
    first, start_time, tty = len(run['losses']), time.perf_counter(), sys.stdout.isatty()
    if path and not first:
        save(model, path, run)  # at step 0, so a path that cannot be written fails before training
    try:
        for step, loss in train(model, docs, run['steps'], run['lr'], first, (run['m'], run['v'])):
            run['losses'].append(loss)
            print_step(run['losses'], run['steps'], tty, first, start_time)
            if path and (STOP or (step + 1) % SAVE_EVERY == 0 or step + 1 == run['steps']):
                save(model, path, run)
            if STOP:
                break
    except FloatingPointError as e:  # the last checkpoint, with a finite model, stays as it was
        # the step it holds, read back from the file: what is on disk, not what we think is
        held = f'; {path} still holds step {len(load(path)[1]["losses"])}' if path else ''
        raise FloatingPointError(f'{e}: try a lower --lr{held}') from None
    if tty and len(run['losses']) > first:
        print()  # end the line that was rewritten in place


def print_step(losses, steps, tty, first, start_time):
    """The reference's step line; on a terminal, one line rewritten in place with more to see."""
    line = f'step {len(losses):4d} / {steps:4d} | loss {losses[-1]:.4f}'
    if not tty:
        return print(line)
    rate = (len(losses) - first) / (time.perf_counter() - start_time)  # steps a second
    print(f'\r{line} | last 100: {fmean(losses[-100:]):.4f} | {rate:.1f} steps/s | '
          f'{(steps - len(losses)) / rate:.0f} s left ', end='', flush=True)


def report(model, docs, run, args):
    """What the run learned: its loss curve, the loss on documents it never saw, what the model
    predicts after each character of --explain, samples, and how many of them are new."""
    losses, steps = run['losses'], run['steps']
    if losses:
        print(sparkline(losses, sys.stdout.encoding))
    # Never trained on: train() read docs[step % len(docs)], so if it wrapped round none are left
    unseen = docs[steps:steps + HELD_OUT]
    if losses and not run['pretrained'] and unseen:
        held_out = fmean(document_loss(model, doc).data for doc in unseen)
        print(f'held-out loss {held_out:.4f} on {len(unseen)} documents never trained on (mean of '
              f'the last {min(len(losses), 100)} steps: {fmean(losses[-100:]):.4f})')
    elif losses and not run['pretrained']:
        print(f'held-out loss: none, all {len(docs)} documents were trained on')
    if args.explain:
        for prefix, top in explain(model, args.explain):
            guesses = '  '.join(f'{char} {100 * prob:4.1f}%' for prob, char in top)
            print(f'next after {prefix!r:>{len(args.explain) + 2}}: {guesses}')
    if args.samples:
        print('\n--- inference (new, hallucinated names) ---')
    texts = []
    while len(texts) < args.samples and not STOP:
        texts.append(sample(model, args.temperature, args.prompt, args.top_k))
        print(f'sample {len(texts):2d}: {texts[-1]}')
    if docs and texts:  # exact matches, against the documents in a list: 20 scans, milliseconds
        print(f'new: {sum(text not in docs for text in texts)} of {len(texts)} samples are not '
              'in the data')


def main(argv=None):
    """The command line. Its exit status: 0 when done, 1 when training diverged, 2 for bad input,
    130 after Ctrl-C and 143 after SIGTERM (the step in progress finishes, then the run stops)."""
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        model, docs, run = prepare(args)
        train_and_save(model, docs, run, args.save)
        if not STOP:
            report(model, docs, run, args)
        if STOP and len(run['losses']) < run['steps']:  # stopped in training: say how to go on
            keep = f'go on with --resume {args.save}' if args.save else 'keep it with --save PATH'
            print(f'interrupted at step {len(run["losses"])}: {keep}', file=sys.stderr)
        return 128 + STOP[0] if STOP else 0  # the shell's convention: 128 + the signal number
    except (ArithmeticError, OSError, ValueError) as e:
        print(f'microgpt: error: {e}', file=sys.stderr)
        return 1 if isinstance(e, ArithmeticError) else 2


def program():
    """`python microgpt.py` and the `microgpt` command: main() in a process set up for a long run.
    Only here, not in main(), so that a caller of main() from Python keeps its own settings."""
    # Ctrl-C (SIGINT) and SIGTERM let the step in progress finish: the handler only notes them.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: STOP.append(signum))
    if sys.implementation.name == 'cpython':  # PyPy's collector is its only one, so it stays on
        gc.disable()  # the graph has no reference cycles: CPython's cycle collector only costs time
    return main()


if __name__ == '__main__':
    sys.exit(program())
