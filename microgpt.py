"""microgpt: train a tiny GPT on a list of names and invent new ones, in pure Python.

The whole algorithm in one dependency-free file, meant to be read top to bottom: the data and its
tokenizer, a scalar autograd engine, a GPT-2-style transformer, the Adam optimizer, training and
sampling. After them comes the plumbing: checkpoints and the command line.

    python microgpt.py              # train on data/names.txt, then print 20 new names
    python microgpt.py --help       # every setting

It computes exactly what the classic 200-line microgpt computes: the same data, seed and
settings print the same losses and the same samples. The few lines written a particular way only
to keep its floats, bit for bit, say so in a short comment.
"""
import argparse
import gc
import hashlib
import itertools
import json
import math
import os
import pathlib
import random
import signal
import sys
import time
from functools import reduce
from operator import add, mul, neg, sub, truediv
from statistics import fmean


# Data and tokenizer: the documents (here, names) and the token ids a model reads them as.
def read_documents(path):
    """The documents of a UTF-8 text file, one a line, shuffled. The shuffle is the first draw
    from the random stream (the caller seeds it), so a given seed always gives the same order."""
    with open(path, encoding='utf-8') as f:
        docs = [line.strip() for line in f if line.strip()]
    if not docs:
        raise ValueError(f'{path} has no documents: give a text file with one document a line')
    random.shuffle(docs)
    return docs


class Tokenizer:
    """Characters to token ids and back. The id of a character is its place in the sorted
    vocabulary; one more id, BOS (beginning of sequence), marks where a document starts and ends.
    For the names, a to z are 0 to 25 and BOS is 26: encode("emma") is [26, 4, 12, 12, 0], and
    training adds a closing 26 and learns each next id: e after BOS, m after e, ..., BOS after a."""

    def __init__(self, text):
        self.chars = sorted(set(text))  # the vocabulary: every character the text uses
        self.BOS, self.vocab_size = len(self.chars), len(self.chars) + 1

    def encode(self, text):
        """BOS and the id of each character, with no closing BOS: text the model can continue."""
        return [self.BOS] + [self.chars.index(ch) for ch in text]

    def decode(self, tokens):
        return ''.join(self.chars[t] for t in tokens if t != self.BOS)


# Autograd: numbers that remember how they were computed, so gradients can flow back through them.
# Training repeats p.data -= lr * p.grad for every parameter p, where p.grad, its gradient, is
# how much the loss (the model's error, a number computed from the parameters; see
# cross_entropy) moves per unit of p: each step lowers the loss a little. For example,
# with a, b = Value(2.0), Value(3.0) and loss = a * b + a, loss.backward() sets a.grad to
# b + 1 = 4 and b.grad to a = 2. Each operation records its inputs (its children) and how much
# it moves per unit of each (its local gradients); backward() chains those back from the loss.
class Value:
    """A scalar in a computation graph: its data, its gradient (.grad), the children it was
    computed from, and its local gradients: how much it moves per unit of each child. A value
    made by an operator has children; a leaf (a parameter, or a number) has none."""
    # __slots__: no attribute dict per value; a step makes thousands, so this saves memory and time.
    __slots__ = ('children', 'data', 'grad', 'local_grads', 'serial')
    # The serial is the creation order, which backward() sorts by: a value's children are always
    # created before it.
    _serials = itertools.count()

    def __init__(self, data, children=(), local_grads=()):
        self.data, self.grad, self.serial = data, 0.0, next(Value._serials)
        self.children, self.local_grads = children, local_grads  # d(self)/d(child), per child

    def __repr__(self):
        return f'Value(data={self.data}, grad={self.grad})'

    def backward(self):
        """Add d(self)/d(value) to the .grad of every value this one depends on, by the chain rule.
        Gradients add up, so they must start at 0: adam(), further down, zeroes them after use."""
        nodes, new = set(), {self}
        while new:  # a loop, as recursion would hit Python's depth limit on a long graph
            nodes |= new
            # The children of the values just found, except those seen before and the leaves: a
            # leaf (a parameter) gets its .grad in the loop below, from the values that use it;
            # it passes nothing on, so it needs no visit of its own.
            new = {child for value in new for child in value.children if child.children} - nodes
        self.grad = 1.0  # self moves 1 per unit of itself: where the chain starts
        # Newest first: a value is created after its children, so every value that uses it is
        # processed before it, and its gradient is complete before it is passed on.
        for value in sorted(nodes, key=lambda value: value.serial, reverse=True):
            grad = value.grad  # complete now: read once, not once per child
            for child, local_grad in zip(value.children, value.local_grads):
                # The chain rule: self moves grad per unit of value, and value moves local_grad
                # per unit of child, so the product per unit of child. += because a child used
                # by several values (or twice by one) collects from each use.
                child.grad += local_grad * grad

    # The operators make the graph that backward() walks. Written by hand, multiplication is
    #     def __mul__(self, other):  # d(x * y)/dx is y, and d(x * y)/dy is x
    #         return Value(self.data * other.data, (self, other), (other.data, self.data))
    # and every operator has that shape: only the forward function and the two local gradients
    # change. So each operator is one row of the table below, and _operator, an ordinary
    # function called once per row while the class body runs, returns the methods the row
    # assigns (CPython's fractions.py writes its operators this way).
    def _operator(forward, d_dx, d_dy):
        """One row of the table -> the method for `value op other` and its reflected twin."""
        def method(self, other):  # tuples: a little lighter than lists, for one or two children
            if isinstance(other, Value):
                x, y = self.data, other.data
                return Value(forward(x, y), (self, other), (d_dx(x, y), d_dy(x, y)))
            if isinstance(other, (int, float)):  # a plain number is a constant: no gradient
                return Value(forward(self.data, other), (self,), (d_dx(self.data, other),))
            return NotImplemented  # so Python raises its usual TypeError for foreign operands

        # `other op self` with other a number: 2 - v calls v.__rsub__(2), which returns
        # method(Value(2), v), that is Value(2) - v. Wrapping the number lets one method serve
        # both orders; the leaf's gradient goes unused. Training does this in sum() (which starts
        # from 0) and in (1 / n) * sum: an extra leaf each.
        def reflected(self, other):
            return method(Value(other), self) if isinstance(other, (int, float)) else NotImplemented
        return method, reflected

    def _function(forward, derivative):
        """One row of the table for a function of one value -> its method."""
        return lambda self: Value(forward(self.data), (self,), (derivative(self.data),))

    # One row per operator: its forward function of the floats x and y, then d/dx and d/dy.
    # (d/dy of x ** y, x**y * log(x), is computed whenever the power is, used or not, and log
    # needs x > 0: so with b a Value, a ** b needs a positive a.data.)
    __add__, __radd__ = _operator(add, lambda x, y: 1, lambda x, y: 1)
    __sub__, __rsub__ = _operator(sub, lambda x, y: 1, lambda x, y: -1)
    __mul__, __rmul__ = _operator(mul, lambda x, y: y, lambda x, y: x)
    __truediv__, __rtruediv__ = _operator(truediv, lambda x, y: 1 / y, lambda x, y: -x / y**2)
    __pow__, __rpow__ = _operator(pow, lambda x, y: y * x**(y - 1), lambda x, y: x**y * math.log(x))
    __neg__ = _function(neg, lambda x: -1)
    log = _function(math.log, lambda x: 1 / x)
    exp = _function(math.exp, math.exp)  # e^x is its own derivative
    # relu keeps positives and turns negatives into 0: a bend between the model's matrix
    # products, without which two of them in a row could only compute what one could. Its own
    # method, not a row: for a negative input it returns a bare Value(0.0), a leaf with no
    # children, which gives the same gradients as a local gradient of 0. So backward() skips the
    # values used only by relus that gave 0: about half the rows of each MLP's first layer.
    def relu(self):
        return Value(self.data, (self,), (1.0,)) if self.data > 0 else Value(0.0)


# Helpers: the few vector operations a transformer is made of. linear and cross_entropy make
# nodes by hand: the numbers and gradients the operators above would give, in one node instead of
# many, so the graph is far smaller.
def matrix(nout, nin, init):
    """A nout x nin matrix of parameters, each set by init(), row by row."""
    return [[Value(init()) for _ in range(nin)] for _ in range(nout)]


def linear(x, w):
    """w @ x, the matrix w times the vector x: for each row of w, the dot product
    sum(wi * xi for wi, xi in zip(row, x)), made as one node instead of a chain of 2 * len(x)
    nodes of * and +: a far smaller graph, the same number. d(row . x)/d(row[i]) is x[i] and
    d(row . x)/d(x[i]) is row[i], so each side's local gradients are the other side's data."""
    x_data = [xi.data for xi in x]  # read once for all the rows
    rows_data = [[wi.data for wi in row] for row in w]
    # Children: the row, then x (lists joined); local gradients crossed: x's data, then the row's.
    # reduce adds left to right, as the chain of + nodes would; sum() of floats, from Python 3.12
    # on, rounds more exactly, so its last bit could differ from the classic microgpt's.
    return [Value(reduce(add, map(mul, row_data, x_data), 0.0), row + x, x_data + row_data)
            for row, row_data in zip(w, rows_data)]


def softmax(logits):
    """Probabilities from logits (raw scores, one per choice): exp makes each positive, and
    dividing by the total makes them sum to 1. Subtracting the max first keeps exp from overflowing
    (and changes nothing else: it divides every exp by the same e^max)."""
    top = max(z.data for z in logits)
    exps = [(z - top).exp() for z in logits]
    total = sum(exps)  # a sum of Values: a chain of + nodes, so each term gets its gradient
    return [e / total for e in exps]


def rmsnorm(x):
    """Rescale x to unit root-mean-square, so the numbers flowing through the model keep one size
    from layer to layer; the 1e-5 keeps a zero x from dividing by 0."""
    # sum(xi * xi) as one node: linear() with x as its only row (each xi is a child twice)
    scale = (linear(x, [x])[0] / len(x) + 1e-5) ** -0.5
    return [xi * scale for xi in x]


def cross_entropy(logits, target):
    """-log(softmax(logits)[target]): low when the model gave the target a high probability.
    The number -softmax(logits)[target].log() would give, made as one node instead of a softmax's
    and a log's. The loss is log(sum_j e^z_j) - z_target; the derivative of the first term for
    logit i is e^z_i / sum_j e^z_j, the probability the model gave i, and of the second, 1 for
    the target only. So the gradient is the probability of i, minus 1 for the right answer.
    For logits [1, 2, 0] and target 1: probabilities [0.24, 0.67, 0.09], loss -ln 0.67 = 0.41,
    gradients [0.24, -0.33, 0.09]: the right logit goes up, the others down."""
    top = max(z.data for z in logits)
    exps = [math.exp(z.data - top) for z in logits]
    total = reduce(add, exps, 0.0)
    grads = [e / total - (i == target) for i, e in enumerate(exps)]
    # the loss above with top taken out of every z: log(sum_j e^z_j) = log(total) + top
    return Value(math.log(total) - (logits[target].data - top), logits, grads)


# The model: a GPT-2-style transformer that reads one token at a time and predicts the next.
# A layer has six matrices, for attention and the MLP (both explained where they run, in
# __call__); their shapes, rows x columns in units of n_embd, the width of the model:
LAYER = {'wq': (1, 1), 'wk': (1, 1), 'wv': (1, 1), 'wo': (1, 1), 'fc1': (4, 1), 'fc2': (1, 4)}


class GPT:
    """A character-level GPT: its sizes, tokenizer and parameters. Calling it runs one position:
    token and position embeddings -> rmsnorm -> per layer, attention and the MLP, each added onto
    x -> lm_head -> a logit per token. One position at a time, as sampling must; in training, the
    positions of a document join into one graph through the key/value cache."""

    def __init__(self, tokenizer, n_layer=1, n_embd=16, n_head=4, block_size=16,
                 init=lambda: random.gauss(0, 0.08)):  # small: near-equal first guesses
        if min(n_layer, n_embd, n_head, block_size) < 1 or n_embd % n_head:
            raise ValueError('model sizes must be at least 1, and n_head must divide n_embd')
        self.tokenizer, self.n_layer, self.n_embd = tokenizer, n_layer, n_embd
        self.n_head, self.block_size, self.head_dim = n_head, block_size, n_embd // n_head
        # Created in the classic microgpt's order, which decides the random draw each parameter
        # gets. GPT-2's names: an embedding, a learned row of n_embd numbers (channels), per token
        # (wte) and per position (wpe, up to block_size, the longest context); training moves
        # tokens that behave alike to rows alike. Then the output layer (lm_head, a logit per
        # token), then each layer's matrices.
        self.wte = matrix(tokenizer.vocab_size, n_embd, init)
        self.wpe = matrix(block_size, n_embd, init)
        self.lm_head = matrix(tokenizer.vocab_size, n_embd, init)
        self.layers = [{name: matrix(rows * n_embd, cols * n_embd, init)
                        for name, (rows, cols) in LAYER.items()} for _ in range(n_layer)]
        mats = [self.wte, self.wpe, self.lm_head] + [m for lay in self.layers for m in lay.values()]
        self.params = [p for mat in mats for row in mat for p in row]

    def empty_cache(self):
        """Per layer, the keys and the values of the positions read so far: none yet."""
        return [([], []) for _ in self.layers]

    def __call__(self, token, pos, cache):
        """The logits for the token after `token` at position `pos`: a raw score per token, which
        softmax turns into probabilities. The cache holds, per layer, the keys and the values of
        the positions read so far (at first model.empty_cache()); the call adds
        this position's. Sizes, with the defaults: x, query, key and value are 16 numbers (n_embd),
        split into 4 heads of 4 (head_dim); at position 3, each head has 4 scores and weights,
        one per cached position 0 to 3; the heads' outputs join back into 16; the MLP widens to 64;
        the logits are 27, one per token."""
        # What the token is plus where it is, normalised once: x is the residual stream, the running
        # sum each layer adds onto. Inside a layer the stream waits in `residual` while x names
        # its normalised copy, which feeds only that layer's branch.
        x = rmsnorm([t + p for t, p in zip(self.wte[token], self.wpe[pos])])
        for layer, (cached_keys, cached_values) in zip(self.layers, cache):
            # Attention: each position gathers from the positions so far. Its query (from wq)
            # says what it is looking for, each position's key (wk) what it can be found by, and
            # its value (wv) what it hands over once found. A query's dot product with a key scores
            # the match; the softmax of the scores weighs the values, and their weighted sum is
            # what this position takes.
            # The residual (x, added back afterwards) means a block only learns a correction to x,
            # and the gradient reaches earlier layers through the + unchanged (its local gradient
            # is 1), however many layers there are.
            residual, x = x, rmsnorm(x)
            query = linear(x, layer['wq'])  # n_embd numbers, like the key and the value
            cached_keys.append(linear(x, layer['wk']))
            cached_values.append(linear(x, layer['wv']))
            # The cache holds only the positions up to this one, so nothing can look ahead (models
            # that run all positions at once need a "causal mask" for that). Each head works on
            # its own slice of the channels, so each can learn to look for something else (the
            # previous letter, say, or whether a vowel came before).
            heads = []  # the heads' outputs, side by side: n_embd numbers again
            for start in range(0, self.n_embd, self.head_dim):
                head = slice(start, start + self.head_dim)
                # The spread of a dot product of head_dim random unit-size terms grows like
                # sqrt(head_dim); dividing keeps scores near unit size, so the softmax does not
                # put nearly all its weight on one position (where its gradient is nearly 0).
                scores = linear(query[head], [k[head] for k in cached_keys])  # a row per key
                weights = softmax([s / self.head_dim**0.5 for s in scores])  # they sum to 1
                # Output channel j is sum(w * v[j] for w, v in zip(weights, cached_values)): the
                # weights' dot product with column j of the cached values, so linear() with the
                # columns as its rows.
                columns = [[v[j] for v in cached_values] for j in range(start, head.stop)]
                heads += linear(weights, columns)
            # wo mixes the heads' outputs back together; then the residual is added back
            x = [a + b for a, b in zip(linear(heads, layer['wo']), residual)]
            # The MLP (multi-layer perceptron): attention gathered from the other positions; now
            # each position computes on what it gathered, widened 4x (fc1), bent by relu and
            # narrowed back (fc2).
            residual, x = x, rmsnorm(x)
            hidden = [z.relu() for z in linear(x, layer['fc1'])]
            x = [a + b for a, b in zip(linear(hidden, layer['fc2']), residual)]
        return linear(x, self.lm_head)


# Adam: step each parameter against its gradient, scaled by running averages of the gradients.
# Plain p -= lr * grad would move parameters with large gradients far and the rest hardly at all,
# and follow each step's noise (a step sees one document). Gradients differ by orders of magnitude
# from parameter to parameter, so no one lr suits them all: Adam averages each gradient over
# recent steps and gives every parameter a step of about the same size.
def adam(params, m, v, step, num_steps, lr=0.01, beta1=0.85, beta2=0.99, eps=1e-8):  # tuned
    """One Adam update of every parameter, then its gradient zeroed for the next backward().
    The learning rate decays linearly toward 0: large steps early, fine adjustments at the end.
    eps keeps a parameter whose gradients have all been 0 (so v is 0) from dividing by 0."""
    lr_t = lr * (1 - step / num_steps)
    # m and v are running means of each gradient and squared gradient, remembering about
    # 1 / (1 - beta) steps. They start at 0, so early on they are too small (after the first step,
    # m is 0.15 * grad), and dividing by these corrections (1 - 0.85 = 0.15) undoes that.
    m_correction, v_correction = 1 - beta1 ** (step + 1), 1 - beta2 ** (step + 1)
    for i, p in enumerate(params):
        m[i] = beta1 * m[i] + (1 - beta1) * p.grad
        v[i] = beta2 * v[i] + (1 - beta2) * p.grad ** 2
        # m / sqrt(v): a gradient that is always g gives m = g and sqrt(v) = |g|, a step of lr_t
        # against it, however large or small g is
        p.data -= lr_t * (m[i] / m_correction) / ((v[i] / v_correction) ** 0.5 + eps)
        p.grad = 0.0


# Training: one document per step, predicting each next character from the ones before it.
# A loss of ln(27) = 3.30 is a uniform guess among the 27 tokens of the names (26 letters and
# BOS); 2.3 is as unsure as a fair choice among e^2.3 = 10 of them.
def document_loss(model, doc):
    """Mean cross-entropy of predicting each next token of BOS, the document, BOS. It is one
    graph: through the cache, every position's loss reaches back into the earlier positions."""
    tokens = model.tokenizer.encode(doc) + [model.tokenizer.BOS]
    n = min(model.block_size, len(tokens) - 1)  # a longer document is cut: block_size positions
    cache = model.empty_cache()
    # In order: each position adds its key and value to the cache the later ones attend to.
    losses = [cross_entropy(model(tokens[i], i, cache), tokens[i + 1]) for i in range(n)]
    return (1 / n) * sum(losses)  # (1 / n) * rather than / n: for the floats


def train(model, docs, num_steps, lr=0.01, start=0, moments=None):
    """A generator: each next() trains one step, from step `start`, and yields (step, loss), so
    the caller can print and save between steps. start and moments (Adam's running averages m and
    v, updated in place) continue a run; a new run starts at 0."""
    m, v = moments or ([0.0] * len(model.params), [0.0] * len(model.params))
    # Gradient descent: the forward pass builds a new graph, backward() fills every parameter's
    # .grad, adam() moves the parameters against it and zeroes it. The graph is then dropped; the
    # parameters, its leaves, carry over to the next step.
    for step in range(start, num_steps):
        loss = document_loss(model, docs[step % len(docs)])
        if not math.isfinite(loss.data):  # diverged: stop before the update spoils the model
            raise FloatingPointError(f'step {step + 1}: the loss is {loss.data} with lr {lr}')
        loss.backward()
        adam(model.params, m, v, step, num_steps, lr)
        yield step, loss.data


# Sampling: generate new text one character at a time, feeding each back in.
def sample(model, temperature=0.5, prompt='', top_k=0):
    """A document that starts with prompt, drawn a token at a time until BOS or the block ends.
    Temperature below 1 sharpens the probabilities (dividing the logits widens their gaps);
    top_k > 0 keeps only the k likeliest tokens (and any that tie with the k-th). The prompt must
    be shorter than the block."""
    cache = model.empty_cache()
    tokens = model.tokenizer.encode(prompt)
    # Every prompt token but the last only fills the cache; the loop below feeds the last one
    # (its logits are what the first new token is drawn from), then each token it draws. With
    # prompt "em", tokens is [BOS, e, m]: BOS and e fill positions 0 and 1, the loop starts at 2.
    for pos, token in enumerate(tokens[:-1]):
        model(token, pos, cache)
    for pos in range(len(tokens) - 1, model.block_size):
        logits = model(tokens[-1], pos, cache)
        probs = [p.data for p in softmax([z / temperature for z in logits])]
        # floor: the k-th highest probability; lower ones are dropped (top_k 0 drops none). For
        # [0.5, 0.3, 0.2] and top_k 2, floor is 0.3 and the weights are [0.5, 0.3, 0.0].
        floor = sorted(probs, reverse=True)[:top_k][-1] if top_k else 0.0
        probs = [p if p >= floor else 0.0 for p in probs]
        tokens.append(random.choices(range(model.tokenizer.vocab_size), weights=probs)[0])
        if tokens[-1] == model.tokenizer.BOS:
            break
    return model.tokenizer.decode(tokens)


# The lesson ends here; the rest is plumbing: checkpoints and the command line.
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
