#!/usr/bin/env python3
"""facegan's PyTorch twin of the `seed` preset: the same networks and the same two-pass GAN step
as facegan's trainer (crates/trainer/src/gan.rs), timed the same way as `facegan bench-train`.

Networks (NCHW, 96x80 images, latent 64), Keras defaults (Glorot-uniform kernels, zero biases,
BatchNorm momentum 0.99 / epsilon 1e-3, Adam betas 0.9/0.999 epsilon 1e-7, lr 1e-4):
  D: [Conv3x3 s2 -> Dropout(0.1) -> (BatchNorm) -> LeakyReLU(0.01)] x 4 (32, 64, 128, 128; BN on
     the first two) -> Flatten(3840) -> Dropout -> LeakyReLU -> Linear(3840, 1) -> sigmoid
  G: Linear(64, 1920, no bias) -> LeakyReLU -> 64x6x5 -> [ConvT3x3 s2 (pad 1, out pad 1) -> (BN)
     -> LeakyReLU] x 4 (256, 128, 128, 64; BN on the first three) -> Conv3x3(64, 3) -> sigmoid
Step: z ~ N(0, 1); fake = G(z); D step on BCE(D(real), 1) + BCE(D(fake.detach()), 0); then G
step on BCE(D(fake), 1) through the updated D. Each step ends with reading both losses back.

Prints one JSON line. Usage: torch_dcgan.py [--device cpu|cuda] [--batch 64] [--steps 10]
[--warmup 2] [--threads N] [--amp] [--channels-last]
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


class Discriminator(nn.Module):
    def __init__(self):
        super().__init__()
        layers, cin = [], 3
        for cout, bn in [(32, True), (64, True), (128, False), (128, False)]:
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.Dropout(0.1)]
            layers += [batchnorm(cout)] if bn else []
            layers += [leaky()]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.1), leaky(), nn.Linear(128 * 6 * 5, 1))

    def forward(self, x):
        return torch.sigmoid(self.head(self.features(x)))


class Generator(nn.Module):
    def __init__(self):
        super().__init__()
        self.project = nn.Linear(LATENT, 64 * 6 * 5, bias=False)
        layers, cin = [], 64
        for cout, bn in [(256, True), (128, True), (128, True), (64, False)]:
            layers += [nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1)]
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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    ap.add_argument("--amp", action="store_true", help="bf16 autocast for forward passes")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
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
    opt_d = torch.optim.Adam(d.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-7)
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-7)
    bce = nn.BCELoss()
    real = torch.rand(a.batch, 3, H, W, device=dev).contiguous(memory_format=fmt)
    ones = torch.ones(a.batch, 1, device=dev)
    zeros = torch.zeros(a.batch, 1, device=dev)

    def autocast():
        return torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=a.amp)

    times, first_step_s, t_start = [], None, time.perf_counter()
    for step in range(a.warmup + a.steps):
        t = time.perf_counter()
        with autocast():
            fake = g(torch.randn(a.batch, LATENT, device=dev))
            p_real, p_fake = d(real), d(fake.detach())
        loss_d = bce(p_real.float(), ones) + bce(p_fake.float(), zeros)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        with autocast():
            p_gen = d(fake)
        loss_g = bce(p_gen.float(), ones)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
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
