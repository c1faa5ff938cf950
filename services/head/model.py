"""One Keras head of the original solution and its training loop: Dense(width, uniform init) -
ReLU - Dropout - Dense(C) - softmax, Adam with an exp_range cyclical learning rate, early
stopping on clean validation accuracy. Each fit keeps its per-epoch history for the report."""
import math

import numpy as np

from shared.method.clr import exp_range

HISTORY = ("val_top1", "val_loss", "learning_rate")  # per epoch, in each head's summary record


class Head(object):
    """One head and its training loop (a plain loop: the CLR needs per-batch control)."""

    def __init__(self, dim, classes, settings, seed):
        import keras
        import tensorflow as tf

        keras.utils.set_random_seed(seed)
        self.settings = settings
        init = keras.initializers.RandomUniform(-0.05, 0.05, seed=seed)  # Keras 2's "uniform"
        self.model = keras.Sequential([
            keras.Input((dim,)),
            keras.layers.Dense(settings["width"], kernel_initializer=init, activation="relu"),
            keras.layers.Dropout(settings["dropout"], seed=seed),
            keras.layers.Dense(classes, kernel_initializer=init, activation="softmax"),
        ])
        self.optimizer = keras.optimizers.Adam(learning_rate=settings["learning_rate"])
        self.loss = keras.losses.SparseCategoricalCrossentropy()
        model, optimizer, loss = self.model, self.optimizer, self.loss

        @tf.function(input_signature=[tf.TensorSpec([None, dim], tf.float32),
                                      tf.TensorSpec([None], tf.int64), tf.TensorSpec([], tf.float32)])
        def step(x, y, learning_rate):
            optimizer.learning_rate.assign(learning_rate)
            with tf.GradientTape() as tape:
                value = loss(y, model(x, training=True))
            grads = tape.gradient(value, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))

        self.step = step

    def predict(self, x):
        return np.asarray(self.model.predict_on_batch(x.astype(np.float32)) if len(x) else
                          np.zeros((0, self.model.output_shape[-1]), np.float32))

    def fit(self, pools, labels, x_val, y_val, epochs, patience, rng, on_epoch=None):
        """pools: (N, V, D) views per training row; returns (best val top-1, best epoch, epochs run,
        history: per epoch the validation top-1 and loss and the learning rate of its last batch).
        `on_epoch()`, when given, is called after each epoch (progress).

        Early stopping watches clean validation accuracy as the original did; an epoch with the
        same accuracy but a lower validation loss also counts as better. Without that tie-break
        (the original's strict rule) small folds, whose accuracy saturates within a few epochs,
        keep a barely trained head whose probabilities are almost flat, and the probability
        thresholds of the pseudo-label rules never fire."""
        batch, clr = self.settings["batch_size"], self.settings["clr"]
        steps = int(math.ceil(len(labels) / float(batch)))
        step_size = clr["step_epochs"] * steps
        iteration, best, best_epoch, best_weights, waited = 0, (-1.0, 0.0), -1, None, 0
        history = dict((key, []) for key in HISTORY)
        for epoch in range(epochs):
            order = rng.permutation(len(labels))
            drawn = pools[order, rng.randint(pools.shape[1], size=len(order))]
            for lo in range(0, len(order), batch):
                rate = exp_range(iteration, clr["base_lr"], clr["max_lr"], step_size, clr["gamma"])
                self.step(drawn[lo:lo + batch], labels[order[lo:lo + batch]], np.float32(rate))
                iteration += 1
            score = self.validate(x_val, y_val)
            for key, value in zip(HISTORY, (score[0], -score[1], rate)):
                history[key].append(round(float(value), 6))
            if on_epoch:
                on_epoch()
            if score > best:
                best, best_epoch, best_weights, waited = score, epoch, self.model.get_weights(), 0
            else:
                waited += 1
                if waited >= patience:
                    break
        self.model.set_weights(best_weights)
        return best[0], best_epoch, epoch + 1, history

    def validate(self, x_val, y_val):
        """(accuracy, -loss) on the clean validation rows: compared as a tuple."""
        if not len(y_val):
            return (0.0, 0.0)
        probs = self.predict(x_val)
        loss = -np.mean(np.log(np.maximum(probs[np.arange(len(y_val)), y_val], 1e-12)))
        return (float(np.mean(probs.argmax(axis=1) == y_val)), -float(loss))

