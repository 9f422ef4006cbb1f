#!/usr/bin/env python3
"""facegan's PyTorch twin of the `seed` preset: the same networks and the same GAN step as
facegan's trainer (crates/trainer/src/gan.rs), timed the same way as `facegan bench-train`, and,
with --train-npy, trained on the same pixels (a shard's train split from
`facegan inspect SHARD --export-train FILE.npy`) with a per-epoch log of D(x) and D(G(z)).

Networks (NCHW, 96x80 images, latent 64), Keras defaults (Glorot-uniform kernels, zero biases,
BatchNorm momentum 0.99 / epsilon 1e-3, Adam betas 0.9/0.999 epsilon 1e-7, lr 1e-4):
  D: [Conv3x3 s2 -> Dropout(0.1) -> (BatchNorm) -> LeakyReLU(0.01)] x 4 (32, 64, 128, 128; BN on
     the first two) -> Flatten(3840) -> Dropout -> LeakyReLU -> Linear(3840, 1); BCE on logits
  G: Linear(64, 1920, no bias) -> LeakyReLU -> 64x6x5 -> [ConvT3x3 s2 -> (BN) -> LeakyReLU] x 4
     (256, 128, 128, 64; BN on the first three) -> Conv3x3(64, 3) -> sigmoid
Padding (--padding): keras (default, the tutorial's "same": a stride-2 3x3 convolution pads 0
before and 1 after; the transposed one is its adjoint, padding 0 with the last row and column
cropped) or torch (symmetric padding 1, output padding 1).
Step (--step): simultaneous (default, the tutorial's: D on reals and fakes, D's gradients from D's
loss and G's from G's loss through the same D, then both optimizers) or alternating (D step on
the detached fake, then G through the updated D). The loss is BCE on D's logits, as Keras
computes it for a sigmoid output. Each step ends with reading both losses back.

Prints one JSON line. Usage: torch_dcgan.py [--device cpu|cuda] [--batch 64] [--steps 10]
[--warmup 2] [--threads N] [--amp] [--channels-last] [--step S] [--padding P]
[--train-npy FILE --epochs N --seed S]
"""
import argparse
import json
import statistics
import sys
import time

import torch
from torch import nn

LATENT, H, W = 64, 96, 80
KERAS_TOTAL_D, KERAS_TOTAL_G = 245_057, 790_787


def leaky():
    return nn.LeakyReLU(0.01)


def batchnorm(c):
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)


PADDING = "keras"  # set from --padding before the networks are built


class KerasStride2Conv(nn.Module):
    """Keras Conv2D(3, strides=2, padding="same") on an even size: pad 0 before, 1 after."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride=2, padding=0)

    def forward(self, x):
        return self.conv(nn.functional.pad(x, (0, 1, 0, 1)))


class KerasConvT(nn.Module):
    """Keras Conv2DTranspose(3, strides=2, padding="same"): padding 0, last row/column cropped."""

    def __init__(self, cin, cout):
        super().__init__()
        self.convt = nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=0)

    def forward(self, x):
        h, w = x.shape[-2:]
        return self.convt(x)[..., : 2 * h, : 2 * w]


def conv_s2(cin, cout):
    if PADDING == "keras":
        return KerasStride2Conv(cin, cout)
    return nn.Conv2d(cin, cout, 3, stride=2, padding=1)


def conv_t(cin, cout):
    if PADDING == "keras":
        return KerasConvT(cin, cout)
    return nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1)


class Discriminator(nn.Module):
    def __init__(self):
        super().__init__()
        layers, cin = [], 3
        for cout, bn in [(32, True), (64, True), (128, False), (128, False)]:
            layers += [conv_s2(cin, cout), nn.Dropout(0.1)]
            layers += [batchnorm(cout)] if bn else []
            layers += [leaky()]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.1), leaky(), nn.Linear(128 * 6 * 5, 1))

    def forward(self, x):
        return self.head(self.features(x))  # logits


class Generator(nn.Module):
    def __init__(self):
        super().__init__()
        self.project = nn.Linear(LATENT, 64 * 6 * 5, bias=False)
        layers, cin = [], 64
        for cout, bn in [(256, True), (128, True), (128, True), (64, False)]:
            layers += [conv_t(cin, cout)]
            layers += [batchnorm(cout)] if bn else []
            layers += [leaky()]
            cin = cout
        layers += [nn.Conv2d(64, 3, 3, padding=1)]
        self.body = nn.Sequential(*layers)

    def forward(self, z):
        x = torch.nn.functional.leaky_relu(self.project(z), 0.01).view(-1, 64, 6, 5)
        return torch.sigmoid(self.body(x))


def keras_init(module):
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def keras_total(module):
    stats = sum(b.numel() for n, b in module.named_buffers() if n.endswith(("running_mean", "running_var")))
    return sum(p.numel() for p in module.parameters()) + stats


class KerasAdam(torch.optim.Optimizer):
    """Keras' Adam: epsilon added to sqrt(v) before the bias correction (facegan's keras_adam)."""

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.999), eps=1e-7):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["t"], st["m"], st["v"] = 0, torch.zeros_like(p), torch.zeros_like(p)
                st["t"] += 1
                st["m"].mul_(b1).add_(p.grad, alpha=1 - b1)
                st["v"].mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                alpha = group["lr"] * (1 - b2 ** st["t"]) ** 0.5 / (1 - b1 ** st["t"])
                p.addcdiv_(st["m"], st["v"].sqrt().add_(group["eps"]), value=-alpha)


def main():
    global PADDING
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    ap.add_argument("--amp", action="store_true", help="bf16 autocast for forward passes")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--step", choices=["simultaneous", "alternating"], default="simultaneous")
    ap.add_argument("--padding", choices=["keras", "torch"], default="keras")
    ap.add_argument("--train-npy", help="train on this [N, H, W, 3] u8 array instead of timing")
    ap.add_argument("--epochs", type=int, default=3)
    a = ap.parse_args()
    PADDING = a.padding
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    dev = torch.device(a.device)
    d, g = Discriminator(), Generator()
    keras_init(d)
    keras_init(g)
    assert keras_total(d) == KERAS_TOTAL_D and keras_total(g) == KERAS_TOTAL_G, (keras_total(d), keras_total(g))
    d.to(dev)
    g.to(dev)
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    d.to(memory_format=fmt)
    g.to(memory_format=fmt)
    opt_d = KerasAdam(d.parameters())
    opt_g = KerasAdam(g.parameters())
    bce = nn.BCEWithLogitsLoss()
    ones = torch.ones(a.batch, 1, device=dev)
    zeros = torch.zeros(a.batch, 1, device=dev)

    def autocast():
        return torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=a.amp)

    def train_step(real):
        """One step of the chosen kind; returns (loss_d, loss_g, mean D(x), mean D(G(z)))."""
        if a.step == "simultaneous":
            with autocast():
                fake = g(torch.randn(a.batch, LATENT, device=dev))
                l_real, l_fake = d(real), d(fake)
            loss_d = bce(l_real.float(), ones) + bce(l_fake.float(), zeros)
            loss_g = bce(l_fake.float(), ones)
            gd = torch.autograd.grad(loss_d, list(d.parameters()), retain_graph=True)
            gg = torch.autograd.grad(loss_g, list(g.parameters()))
            for p, gr in zip(d.parameters(), gd):
                p.grad = gr
            for p, gr in zip(g.parameters(), gg):
                p.grad = gr
            opt_d.step()
            opt_g.step()
            return loss_d, loss_g, l_real, l_fake
        with autocast():
            fake = g(torch.randn(a.batch, LATENT, device=dev))
            l_real, l_fake = d(real), d(fake.detach())
        loss_d = bce(l_real.float(), ones) + bce(l_fake.float(), zeros)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        with autocast():
            l_gen = d(fake)
        loss_g = bce(l_gen.float(), ones)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        return loss_d, loss_g, l_real, l_gen

    if a.train_npy:
        import numpy as np

        data = torch.from_numpy(np.load(a.train_npy)).permute(0, 3, 1, 2).contiguous()
        gen = torch.Generator().manual_seed(a.seed)
        epochs = []
        for epoch in range(a.epochs):
            order = torch.randperm(len(data), generator=gen)
            sums, n = torch.zeros(4, device=dev), 0
            t = time.perf_counter()
            for s0 in range(0, len(order) - a.batch + 1, a.batch):
                real = (data[order[s0:s0 + a.batch]].to(dev).float() / 255.0).contiguous(memory_format=fmt)
                ld, lg, lr_, lf = train_step(real)
                sums += torch.stack([ld.detach(), lg.detach(), torch.sigmoid(lr_.float()).mean().detach(),
                                     torch.sigmoid(lf.float()).mean().detach()])
                n += 1
            m = (sums / n).tolist()
            epochs.append({"epoch": epoch + 1, "loss_d": m[0], "loss_g": m[1], "d_real": m[2], "d_fake": m[3],
                           "seconds": round(time.perf_counter() - t, 2)})
            print(json.dumps(epochs[-1]), file=sys.stderr)
        print(json.dumps({"impl": f"torch-{torch.__version__}", "step": a.step, "padding": a.padding,
                          "seed": a.seed, "batch": a.batch, "images": len(data), "epochs": epochs}))
        return

    real = torch.rand(a.batch, 3, H, W, device=dev).contiguous(memory_format=fmt)
    times, first_step_s, t_start = [], None, time.perf_counter()
    for step in range(a.warmup + a.steps):
        t = time.perf_counter()
        loss_d, loss_g, _, _ = train_step(real)
        ld, lg = loss_d.item(), loss_g.item()  # the read-back syncs the device
        dt = time.perf_counter() - t
        if first_step_s is None:
            first_step_s = time.perf_counter() - t_start
        print(f"{'warmup' if step < a.warmup else 'step'} {step}: {dt * 1e3:.1f} ms loss_d {ld:.4f} loss_g {lg:.4f}",
              file=sys.stderr)
        if step >= a.warmup:
            times.append(dt)
    total = sum(times)
    print(json.dumps({
        "impl": f"torch-{torch.__version__}",
        "backend": dev.type,
        "threads": torch.get_num_threads(),
        "batch": a.batch,
        "steps": a.steps,
        "warmup": a.warmup,
        "step_kind": a.step,
        "padding": a.padding,
        "img_per_s": round(a.batch * a.steps / total, 3),
        "ms_per_step_median": round(statistics.median(times) * 1e3, 3),
        "first_step_s": round(first_step_s, 3),
        "loss_d": ld,
        "loss_g": lg,
        "params_d": keras_total(d),
        "params_g": keras_total(g),
        "amp": a.amp,
        "channels_last": a.channels_last,
    }))


if __name__ == "__main__":
    main()
