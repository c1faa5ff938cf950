"""The 5 heads of a fold column trained together as one graph: one call per batch runs every
live head's forward and backward pass and a fused Adam update (TF's ResourceApplyAdam kernel),
so TensorFlow overlaps the heads on the cores. The same math as model.Head one head at a time:
each head starts from that head's initialisation, draws its own batch order and views from its
own generator, has its own dropout mask, cyclical learning rate and Adam state, and stops early
on its own; a stopped head is frozen (it leaves the graph) and keeps its best weights. One
difference by choice: the training matmuls run in settings["train_matmul"] (train.py --matmul,
invoke.yaml train_matmul; auto: bfloat16 where the CPU and oneDNN have bf16 kernels,
shared/hardware.py; bfloat16 keeps float32 weights, Adam moments and updates: the matmuls'
rounding only), validation and test in float32.

Why: at the original's batch size one head's step is small (a 32-row batch through a 2048 x C
layer), so one Python call and an unfused Adam update (a pass over the weights per operation)
per head and batch cost as much as the arithmetic. XLA (jit_compile) was measured and left out:
on this CPU it made the step 2-3x slower, stacked (batched matmul) or not."""
import math

import numpy as np

from services.head.model import HISTORY, Head
from shared.method.clr import exp_range

BETA_1, BETA_2, EPSILON = 0.9, 0.999, 1e-7  # keras.optimizers.Adam's defaults, as model.Head uses


class Heads(object):
    """Heads of one shape trained side by side; `seeds`: each head's (initialisation, data
    order, dropout)."""

    def __init__(self, dim, classes, settings, seeds):
        import tensorflow as tf

        self.tf, self.settings, self.seeds, self.dim = tf, settings, list(seeds), dim
        initial = [Head(dim, classes, settings, seed).model.get_weights() for seed in self.seeds]  # model.Head's
        self.weights = [[tf.Variable(w) for w in head] for head in initial]
        self.best = [[tf.Variable(w) for w in head] for head in initial]
        self.moments = [[(tf.Variable(np.zeros_like(w)), tf.Variable(np.zeros_like(w))) for w in head]
                        for head in initial]
        self.steps = {}  # the step graph of each set of heads taking a step together

    def _logits(self, head, x, keep=None, dtype="float32"):
        """The two matmuls in `dtype` (bfloat16: AVX512-BF16 kernels; the gradients flow back
        through the casts to the float32 weights), bias, ReLU, dropout and logits in float32."""
        tf = self.tf
        w1, b1, w2, b2 = self.weights[head]

        def matmul(a, w):
            return tf.cast(tf.matmul(tf.cast(a, dtype), tf.cast(w, dtype)), tf.float32)

        hidden = tf.nn.relu(matmul(x, w1) + b1)
        return matmul(hidden if keep is None else hidden * keep, w2) + b2

    def _step_graph(self, heads):
        """One batch of each head in `heads` (a tuple), their rows stacked in head order: x, y,
        each head's row count, learning rate, Adam's beta powers and dropout seed. Flat
        tensors: binding a nested structure to a tf.function costs more than the step. (A whole
        epoch in one graph, a while loop over the batches, was measured slower.)"""
        tf, rate = self.tf, self.settings["dropout"]
        count = len(heads)
        spec = [tf.TensorSpec([None, self.dim], tf.float32), tf.TensorSpec([None], tf.int64),
                tf.TensorSpec([count], tf.int64)] + [tf.TensorSpec([count], tf.float32)] * 3 + \
            [tf.TensorSpec([count, 2], tf.int64)]

        def step(x, y, rows, lr, beta_1_power, beta_2_power, seeds):
            variables = [v for h in heads for v in self.weights[h]]
            xs, ys = tf.split(x, rows, num=count), tf.split(y, rows, num=count)
            with tf.GradientTape() as tape:
                total = 0.0
                for i, h in enumerate(heads):
                    shape = (rows[i], self.weights[h][0].shape[1])
                    keep = tf.cast(tf.random.stateless_uniform(shape, seeds[i]) >= rate, tf.float32) / (1.0 - rate)
                    # each head's own mean loss: their sum gives each head its own gradient
                    total += tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                        labels=ys[i], logits=self._logits(h, xs[i], keep, self.settings["train_matmul"])))
            grads = tape.gradient(total, variables)
            for i, h in enumerate(heads):
                for j, (weight, (m, v)) in enumerate(zip(self.weights[h], self.moments[h])):
                    tf.raw_ops.ResourceApplyAdam(var=weight.handle, m=m.handle, v=v.handle, beta1_power=beta_1_power[i],
                                                 beta2_power=beta_2_power[i], lr=lr[i], beta1=BETA_1, beta2=BETA_2,
                                                 epsilon=EPSILON, grad=grads[4 * i + j])

        return tf.function(step, input_signature=spec)

    def train_batch(self, batches):
        """batches: {head: (x, y, learning rate, step number from 1)} of the heads taking a step."""
        heads = tuple(sorted(batches))
        if heads not in self.steps:  # the set only shrinks as heads stop: a handful of graphs
            self.steps[heads] = self._step_graph(heads)
        found = [batches[h] for h in heads]
        steps = np.array([t for _, _, _, t in found], np.float32)
        self.steps[heads](np.concatenate([x for x, _, _, _ in found]).astype(np.float32),
                          np.concatenate([y for _, y, _, _ in found]).astype(np.int64),
                          np.array([len(y) for _, y, _, _ in found], np.int64),
                          np.array([lr for _, _, lr, _ in found], np.float32),
                          np.float32(BETA_1) ** steps, np.float32(BETA_2) ** steps,
                          np.array([[self.seeds[h], t] for h, (_, _, _, t) in zip(heads, found)], np.int64))

    def probabilities(self, head, x):
        """Softmax of head `head` on x (N, D)."""
        if not len(x):
            return np.zeros((0, self.weights[head][3].shape[0]), np.float32)
        return self.tf.nn.softmax(self._logits(head, self.tf.constant(np.asarray(x, np.float32)))).numpy()

    def validate(self, head, x_val, y_val):
        """(accuracy, -loss) of one head on its clean validation rows, as model.Head.validate."""
        if not len(y_val):
            return (0.0, 0.0)
        probs = self.probabilities(head, x_val)
        loss = -np.mean(np.log(np.maximum(probs[np.arange(len(y_val)), y_val], 1e-12)))
        return (float(np.mean(probs.argmax(axis=1) == y_val)), -float(loss))

    def fit(self, heads, epochs, patience, on_epoch=None):
        """heads: per head a dict pools (N, V, D), labels, x_val, y_val (model.Head.fit's
        arguments). Returns per head (best val top-1, best epoch, epochs run, history), as
        model.Head.fit; the heads are left with their best weights. `on_epoch(n)`: n heads
        finished an epoch."""
        batch, clr = self.settings["batch_size"], self.settings["clr"]
        rngs = [np.random.RandomState(seed) for seed in self.seeds]
        steps = [int(math.ceil(len(h["labels"]) / float(batch))) for h in heads]
        state = [{"iteration": 0, "best": (-1.0, 0.0), "best_epoch": -1, "waited": 0, "epochs": 0, "rate": 0.0,
                  "history": dict((key, []) for key in HISTORY)} for _ in heads]
        live = list(range(len(heads)))
        for epoch in range(epochs):
            drawn = {}
            for h in live:  # each head's draws, in model.Head.fit's order
                order = rngs[h].permutation(len(heads[h]["labels"]))
                pools = heads[h]["pools"]
                drawn[h] = (pools[order, rngs[h].randint(pools.shape[1], size=len(order))], heads[h]["labels"][order])
            for i in range(max(steps[h] for h in live)):
                batches = {}
                for h in (h for h in live if i < steps[h]):
                    s = state[h]
                    s["rate"] = exp_range(s["iteration"], clr["base_lr"], clr["max_lr"], clr["step_epochs"] * steps[h],
                                          clr["gamma"])
                    s["iteration"] += 1
                    batches[h] = (drawn[h][0][i * batch:(i + 1) * batch], drawn[h][1][i * batch:(i + 1) * batch],
                                  s["rate"], s["iteration"])
                self.train_batch(batches)
            if on_epoch:
                on_epoch(len(live))
            live = [h for h in live if self._end_epoch(h, heads[h], state[h], epoch, patience)]
            if not live:
                break
        for head in range(len(heads)):
            for weight, best in zip(self.weights[head], self.best[head]):
                weight.assign(best)
        return [(s["best"][0], s["best_epoch"], s["epochs"], s["history"]) for s in state]

    def _end_epoch(self, h, head, s, epoch, patience):
        """Validation, history and early stopping of head `h` after `epoch`: whether it goes on."""
        score = self.validate(h, head["x_val"], head["y_val"])
        s["epochs"] = epoch + 1
        for key, value in zip(HISTORY, (score[0], -score[1], s["rate"])):
            s["history"][key].append(round(float(value), 6))
        if score > s["best"]:
            s["best"], s["best_epoch"], s["waited"] = score, epoch, 0
            for weight, best in zip(self.weights[h], self.best[h]):
                best.assign(weight)
            return True
        s["waited"] += 1
        return s["waited"] < patience
