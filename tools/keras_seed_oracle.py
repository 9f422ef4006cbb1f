#!/usr/bin/env python3
"""The oracle for facegan's `seed` preset: the TensorFlow tutorial's own model and train_step,
in Keras, fed facegan's initial weights, batches and noise, and compared with facegan's results.

Keras comes from PyPI as `tensorflow-cpu` (TF 2.21, Keras 3 on its TensorFlow backend): the
tutorial is TensorFlow code, so this runs it as written, with `@tf.function` and two
GradientTapes; it installs cleanly here (one wheel set, no GPU libraries).

Input: the folder written by `cargo run --release -p facegan-bench --example seed_check_dump`
(see crates/bench/src/seed_check.rs): facegan's initial weights, the batches and noise of 3
steps, facegan's forward outputs and losses, and its weights after the 3 steps. Dropout is off
in both (its masks are random draws two frameworks cannot share); all else is the seed preset.

Checks (the process exits 1 if any fails), printed as one JSON line:
  - G's and D's forward outputs, training and inference mode: max |diff| <= 1e-5;
  - the losses of each step: relative diff <= 1e-4;
  - every weight and BatchNorm statistic after 3 steps: max |diff| over a network's weights
    <= 1e-4 * its largest weight. The worst tensors relative to their own scale are reported:
    zero-initialised ones (betas, biases) after 3 steps, where a LeakyReLU(0.01) input within
    float rounding of 0 takes either branch in either framework, and the biases right before a
    BatchNorm (exact gradient 0: both move them by Adam-normalised float noise) apart;
  - Keras' BinaryCrossentropy gradient on a saturated fake (logit -30, p ~ 1e-13): whether it
    is the logits form's p - 1 or the clipped form's 0 (reported; facegan uses the former).
With --write-fixture PATH it also writes Keras' first-step losses and per-tensor checksums
(sum, sum of squares, sum of |w| after one step) for the Rust test that pins the step.

Usage: keras_seed_oracle.py DUMP_DIR [--write-fixture PATH]
"""
import argparse
import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # plain f32 kernels, no reordering

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
from keras import layers  # noqa: E402

LATENT, H, W = 64, 96, 80
SLOPE = 0.01


def load_dump(folder):
    index = json.load(open(os.path.join(folder, "index.json")))
    data = np.fromfile(os.path.join(folder, "tensors.bin"), dtype="<f4")
    out = {}
    for e in index:
        n = int(np.prod(e["shape"]))
        out[e["name"]] = data[e["offset"]: e["offset"] + n].reshape(e["shape"])
    return out


# The tutorial's networks, layer for layer (NHWC), with dropout off for the comparison.
def make_generator():
    return keras.Sequential([
        keras.Input((LATENT,)),
        layers.Dense(6 * 5 * 64, use_bias=False), layers.LeakyReLU(SLOPE),
        layers.Reshape((6, 5, 64)),
        layers.Conv2DTranspose(256, 3, strides=2, padding="same"), layers.BatchNormalization(),
        layers.LeakyReLU(SLOPE),
        layers.Conv2DTranspose(128, 3, strides=2, padding="same"), layers.BatchNormalization(),
        layers.LeakyReLU(SLOPE),
        layers.Conv2DTranspose(128, 3, strides=2, padding="same"), layers.BatchNormalization(),
        layers.LeakyReLU(SLOPE),
        layers.Conv2DTranspose(64, 3, strides=2, padding="same"), layers.LeakyReLU(SLOPE),
        layers.Conv2D(3, 3, padding="same", activation="sigmoid"),
    ])


def make_discriminator(dropout=0.0):
    return keras.Sequential([
        keras.Input((H, W, 3)),
        layers.Conv2D(32, 3, strides=2, padding="same"), layers.Dropout(dropout),
        layers.BatchNormalization(), layers.LeakyReLU(SLOPE),
        layers.Conv2D(64, 3, strides=2, padding="same"), layers.Dropout(dropout),
        layers.BatchNormalization(), layers.LeakyReLU(SLOPE),
        layers.Conv2D(128, 3, strides=2, padding="same"), layers.Dropout(dropout),
        layers.LeakyReLU(SLOPE),
        layers.Conv2D(128, 3, strides=2, padding="same"), layers.Dropout(dropout),
        layers.LeakyReLU(SLOPE),
        layers.Flatten(), layers.Dropout(dropout), layers.LeakyReLU(SLOPE),
        layers.Dense(1, activation="sigmoid"),
    ])


# Layout conversions, facegan (NCHW, Burn) <-> Keras (NHWC).
def g_dense_to_keras(w):  # [64, 1920] with outputs (c, h, w) -> outputs (h, w, c)
    return w.reshape(LATENT, 64, 6, 5).transpose(0, 2, 3, 1).reshape(LATENT, -1)


def d_head_to_keras(w):  # [3840, 1] with inputs (c, h, w) -> inputs (h, w, c)
    return w.reshape(128, 6, 5, 1).transpose(1, 2, 0, 3).reshape(-1, 1)


def g_dense_from_keras(w):
    return w.reshape(LATENT, 6, 5, 64).transpose(0, 3, 1, 2).reshape(LATENT, -1)


def d_head_from_keras(w):
    return w.reshape(6, 5, 128, 1).transpose(2, 0, 1, 3).reshape(-1, 1)


def conv_to_keras(w):  # Conv2D [out, in, kh, kw] -> (kh, kw, in, out)
    return w.transpose(2, 3, 1, 0)


def convt_to_keras(w):  # Conv2DTranspose [in, out, kh, kw] -> (kh, kw, out, in)
    return w.transpose(2, 3, 1, 0)


def weight_map(prefix, dump):
    """(keras layer kind, [facegan names]) in each model's layer order."""
    g = [("dense", ["g.project.weight"])]
    for i in range(4):
        g.append(("convt", [f"g.up{i}.weight", f"g.up{i}.bias"]))
        if i < 3:
            g.append(("bn", [f"g.bn{i}.gamma", f"g.bn{i}.beta", f"g.bn{i}.mean", f"g.bn{i}.var"]))
    g.append(("conv", ["g.to_rgb.weight", "g.to_rgb.bias"]))
    d = []
    for i in range(4):
        d.append(("conv", [f"d.conv{i}.weight", f"d.conv{i}.bias"]))
        if i < 2:
            d.append(("bn", [f"d.bn{i}.gamma", f"d.bn{i}.beta", f"d.bn{i}.mean", f"d.bn{i}.var"]))
    d.append(("head", ["d.head.weight", "d.head.bias"]))
    return g, d


def to_keras(kind, arrays):
    if kind == "dense":
        return [g_dense_to_keras(arrays[0])]
    if kind == "convt":
        return [convt_to_keras(arrays[0]), arrays[1]]
    if kind == "conv":
        return [conv_to_keras(arrays[0]), arrays[1]]
    if kind == "head":
        return [d_head_to_keras(arrays[0]), arrays[1]]
    return list(arrays)  # bn: gamma, beta, moving mean, moving variance


def from_keras(kind, arrays):
    if kind == "dense":
        return [g_dense_from_keras(arrays[0])]
    if kind in ("convt", "conv"):
        return [arrays[0].transpose(3, 2, 0, 1), arrays[1]]
    if kind == "head":
        return [d_head_from_keras(arrays[0]), arrays[1]]
    return list(arrays)


def weighted_layers(model):
    return [l for l in model.layers if l.get_weights()]


def set_weights(model, plan, dump, prefix):
    for layer, (kind, names) in zip(weighted_layers(model), plan):
        layer.set_weights(to_keras(kind, [dump[f"{prefix}.{n}"] for n in names]))


def get_weights(model, plan):
    out = {}
    for layer, (kind, names) in zip(weighted_layers(model), plan):
        for n, v in zip(names, from_keras(kind, layer.get_weights())):
            out[n] = np.asarray(v)
    return out


def nhwc(x):
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def saturated_bce_gradient():
    """d BCE(1, sigmoid(x)) / dx at x = -30 through Keras' sigmoid activation, in a tf.function
    as the tutorial's train_step runs: -1 (p - 1) for the logits form, 0 for the clipped one."""
    bce = keras.losses.BinaryCrossentropy()
    x = tf.Variable([[-30.0]])

    @tf.function
    def grad():
        with tf.GradientTape() as tape:
            p = keras.activations.sigmoid(x)
            loss = bce(tf.ones_like(p), p)
        return tape.gradient(loss, x)

    return float(grad().numpy()[0, 0])


def tutorial_train_step(gen, disc):
    """The tutorial's `train_step(images, noise)` on these networks, with its loss and its two
    Adam(1e-4) optimizers: one simultaneous update of both networks from two GradientTapes.
    Returns (D loss, G loss, mean D(x), mean D(G(z))). Wrap it in `tf.function`, as the
    tutorial does."""
    cross_entropy = keras.losses.BinaryCrossentropy()
    gen_opt = keras.optimizers.Adam(1e-4)
    disc_opt = keras.optimizers.Adam(1e-4)

    def train_step(images, noise):
        with tf.GradientTape() as gen_tape, tf.GradientTape() as disc_tape:
            generated = gen(noise, training=True)
            real_output = disc(images, training=True)
            fake_output = disc(generated, training=True)
            gen_loss = cross_entropy(tf.ones_like(fake_output), fake_output)
            disc_loss = (cross_entropy(tf.ones_like(real_output), real_output)
                         + cross_entropy(tf.zeros_like(fake_output), fake_output))
        g_grads = gen_tape.gradient(gen_loss, gen.trainable_variables)
        d_grads = disc_tape.gradient(disc_loss, disc.trainable_variables)
        gen_opt.apply_gradients(zip(g_grads, gen.trainable_variables))
        disc_opt.apply_gradients(zip(d_grads, disc.trainable_variables))
        return (disc_loss, gen_loss, tf.reduce_mean(real_output), tf.reduce_mean(fake_output))

    return train_step


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dump")
    ap.add_argument("--write-fixture")
    args = ap.parse_args()
    dump = load_dump(args.dump)
    tf.keras.utils.set_random_seed(0)

    gen, disc = make_generator(), make_discriminator()
    g_plan, d_plan = weight_map("init", dump)
    set_weights(gen, g_plan, dump, "init")
    set_weights(disc, d_plan, dump, "init")
    # Keras "Total params" (trainable + BatchNorm moving statistics), as model.summary() shows.
    params = {"g": gen.count_params(), "d": disc.count_params()}

    # Forward outputs of the initial networks (before any training-mode call moves the BN stats:
    # inference first, then training mode on copies of the weights).
    z0, x0 = dump["noise.0"], nhwc(dump["real.0"])
    fwd = {
        "g_infer": (gen(z0, training=False).numpy().transpose(0, 3, 1, 2), dump["forward.g_infer"]),
        "d_infer": (disc(x0, training=False).numpy(), dump["forward.d_infer"]),
    }
    gen_t, disc_t = make_generator(), make_discriminator()
    set_weights(gen_t, g_plan, dump, "init")
    set_weights(disc_t, d_plan, dump, "init")
    fwd["g_train"] = (gen_t(z0, training=True).numpy().transpose(0, 3, 1, 2), dump["forward.g_train"])
    fwd["d_train"] = (disc_t(x0, training=True).numpy(), dump["forward.d_train"])
    forward_diff = {k: float(np.max(np.abs(a - b))) for k, (a, b) in fwd.items()}

    # The tutorial's training step, as written.
    train_step = tf.function(tutorial_train_step(gen, disc))

    steps = sorted(int(k.split(".")[1]) for k in dump if k.startswith("stats."))
    loss_rel = []
    keras_stats = []
    first_weights = None
    for k in steps:
        out = [float(v) for v in train_step(nhwc(dump[f"real.{k}"]), dump[f"noise.{k}"])]
        keras_stats.append(out)
        ours = dump[f"stats.{k}"]
        loss_rel.append(float(max(abs(a - b) / max(abs(b), 1e-12) for a, b in zip(ours[:2], out[:2]))))
        if k == 0:
            first_weights = {**get_weights(gen, g_plan), **get_weights(disc, d_plan)}

    final = {**get_weights(gen, g_plan), **get_weights(disc, d_plan)}
    # Tensors whose exact gradient is zero (a bias right before BatchNorm, which subtracts it
    # again): both frameworks move them by Adam-normalised float noise, so they are left out of
    # the criterion and reported apart.
    pre_bn = {f"g.up{i}.bias" for i in range(3)} | {f"d.conv{i}.bias" for i in range(2)}
    # Per network: max |facegan - keras| over all its weights, relative to its largest weight.
    # Per tensor (reported): the same relative to the tensor's own largest value.
    net_rel, tensor_rel = {}, {}
    for net in ("g", "d"):
        names = [n for n in final if n.startswith(net + ".")]
        scale = max(float(np.max(np.abs(final[n]))) for n in names)
        worst = 0.0
        for name in names:
            ours, v = dump[f"final.{name}"], final[name]
            assert ours.shape == v.shape, f"{name}: shapes {ours.shape} vs {v.shape}"
            diff = float(np.max(np.abs(ours - v)))
            if name not in pre_bn:
                worst = max(worst, diff)
            tensor_rel[name] = diff / max(float(np.max(np.abs(v))), 1e-12)
        net_rel[net] = worst / scale
    if os.environ.get("ORACLE_VERBOSE"):
        print(json.dumps(tensor_rel, indent=0), file=sys.stderr)
    ranked = sorted((n for n in tensor_rel if n not in pre_bn), key=tensor_rel.get, reverse=True)
    bce_grad = saturated_bce_gradient()

    ok = (max(forward_diff.values()) <= 1e-5 and max(loss_rel) <= 1e-4
          and max(net_rel.values()) <= 1e-4)
    report = {
        "ok": ok,
        "steps": len(steps),
        "batch": int(dump["noise.0"].shape[0]),
        "dropout": "off in both",
        "keras_params": params,
        "forward_max_abs_diff": forward_diff,
        "loss_max_rel_diff_per_step": loss_rel,
        "keras_losses": [s[:2] for s in keras_stats],
        "facegan_losses": [[float(v) for v in dump[f"stats.{k}"][:2]] for k in steps],
        "weights_max_abs_diff_over_max_weight": net_rel,
        "tensors_worst_rel_diff": {n: tensor_rel[n] for n in ranked[:4]},
        "pre_batchnorm_biases_max_abs_diff": max(
            float(np.max(np.abs(dump[f"final.{n}"] - final[n]))) for n in pre_bn),
        "keras_bce_grad_at_logit_minus_30": bce_grad,
        "keras_bce_form": "logits (p - 1, no clip)" if bce_grad < -0.5 else "clipped (0)",
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
    print(json.dumps(report))
    if args.write_fixture:
        fixture = {
            "source": "tools/keras_seed_oracle.py --write-fixture: Keras "
                      f"{keras.__version__} on TensorFlow {tf.__version__} (CPU), the tutorial's "
                      "train_step on facegan's seed_check inputs (seed preset, dropout off), "
                      "after one step",
            "losses": keras_stats[0][:2],
            "d_real": keras_stats[0][2],
            "d_fake": keras_stats[0][3],
            "tensors": {n: [float(np.sum(v, dtype=np.float64)),
                            float(np.sum(np.square(v, dtype=np.float64))),
                            float(np.sum(np.abs(v), dtype=np.float64))]
                        for n, v in sorted(first_weights.items())},
        }
        with open(args.write_fixture + ".tmp", "w") as f:
            json.dump(fixture, f, indent=1)
        os.replace(args.write_fixture + ".tmp", args.write_fixture)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
