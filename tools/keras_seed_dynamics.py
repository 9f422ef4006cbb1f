#!/usr/bin/env python3
"""The tutorial itself trained for a few epochs on facegan's pixels: per-epoch mean D(x) and
D(G(z)), for comparing facegan's `seed` preset (and the PyTorch twin) with the original's
dynamics, not only its first step (`keras_seed_oracle.py`).

It is the tutorial's Keras model and `@tf.function` train_step (two GradientTapes, one
simultaneous update, BinaryCrossentropy, Adam 1e-4 for both), with its Keras initialisation and
dropout 0.1, on the train split exported by `facegan inspect SHARD --export-train FILE.npy`
(u8 [N, 96, 80, 3]), scaled to [0, 1], shuffled per epoch, batches of 64 (last partial batch
dropped, as facegan does). Prints one JSON line per epoch on stderr and a summary on stdout.

Usage: keras_seed_dynamics.py TRAIN.npy [--epochs 3] [--seed 0] [--threads 1]
"""
import argparse
import json
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from keras_seed_oracle import (  # noqa: E402
    LATENT, make_discriminator, make_generator, tutorial_train_step)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("train_npy")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(a.threads)
    tf.config.threading.set_inter_op_parallelism_threads(a.threads)
    keras.utils.set_random_seed(a.seed)
    data = np.load(a.train_npy)
    gen, disc = make_generator(), make_discriminator(dropout=0.1)
    tutorial_step = tutorial_train_step(gen, disc)

    @tf.function
    def train_step(images):
        noise = tf.random.normal([tf.shape(images)[0], LATENT])
        return tf.stack(tutorial_step(images, noise))

    rng = np.random.default_rng(a.seed)
    epochs = []
    for epoch in range(a.epochs):
        order = rng.permutation(len(data))
        t = time.perf_counter()
        sums, n = np.zeros(4), 0
        for s0 in range(0, len(order) - a.batch + 1, a.batch):
            batch = data[np.sort(order[s0:s0 + a.batch])].astype(np.float32) / 255.0
            sums += train_step(tf.constant(batch)).numpy()
            n += 1
        m = sums / n
        epochs.append({"epoch": epoch + 1, "loss_d": m[0], "loss_g": m[1], "d_real": m[2],
                       "d_fake": m[3], "seconds": round(time.perf_counter() - t, 1)})
        print(json.dumps(epochs[-1]), file=sys.stderr, flush=True)
    print(json.dumps({"impl": f"keras-{keras.__version__}-tf-{tf.__version__}", "seed": a.seed,
                      "batch": a.batch, "images": len(data), "epochs": epochs}))


if __name__ == "__main__":
    main()
