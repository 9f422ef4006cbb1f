#!/usr/bin/env python3
"""facegan's exported generator in PyTorch.

`facegan export --run RUN --out generator.safetensors` writes a trained generator as
safetensors, with its architecture (the run's `[model]` config, as TOML) in the file's metadata.
This module rebuilds that generator as a `torch.nn.Module`, loads every tensor of the file
strictly, and draws faces. It needs only torch and safetensors.

The latents come from facegan as a latent file (safetensors, one float32 tensor `z`
`[count, latent]`; see docs/export.md), so both draw the same faces:

    facegan sample --run RUN --n 16 --out faces.png --save-latents z.safetensors
    python tools/facegan_torch.py generator.safetensors --latents z.safetensors --out grid.png

`grid.png` lays the faces out as `faces.png` does; `--batch-stats` is `facegan sample
--batch-stats`. From Python:

    from facegan_torch import load_generator, read_latents
    g = load_generator("generator.safetensors")  # eval mode: BatchNorm uses running statistics
    z = read_latents("z.safetensors")             # [16, latent] float32
    with torch.no_grad():
        images = g(z)                             # [16, 3, H, W], RGB in [0, 1]

Any standard normal `[N, latent]` float32 tensor is a valid input too (`torch.randn`).
"""

import argparse
import math
import struct
import tomllib
import zlib
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import nn

# facegan generates in batches of this many faces; it matters only with batch statistics.
FACEGAN_BATCH = 64

# facegan's names for a BatchNorm's affine parameters, and PyTorch's.
BATCHNORM_NAMES = {"gamma": "weight", "beta": "bias"}


def batch_norm(cfg: dict, channels: int) -> nn.BatchNorm2d:
    """A BatchNorm with facegan's epsilon and momentum (both count momentum as the new batch's
    weight in the running statistics)."""
    return nn.BatchNorm2d(channels, eps=cfg["bn_epsilon"], momentum=cfg["bn_momentum"])


class UpConv(nn.Module):
    """G's x2 upsampling layer, by `g_upsample`: `resize` (nearest-neighbour x2, then a 3x3
    convolution), `transposed4` (4x4 stride-2 transposed convolution, padding 1) or `transposed3`
    (3x3 stride-2 transposed convolution: padding 1 and output padding 1 with `symmetric`
    padding; padding 0 and the last row and column cropped with `keras` padding)."""

    def __init__(self, upsample: str, padding: str, cin: int, cout: int):
        super().__init__()
        self.resize = nn.Conv2d(cin, cout, 3, padding=1) if upsample == "resize" else None
        self.crop_end = 0
        if upsample == "resize":
            self.transposed = None
        elif upsample == "transposed4":
            self.transposed = nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1)
        elif upsample == "transposed3" and padding == "symmetric":
            self.transposed = nn.ConvTranspose2d(
                cin, cout, 3, stride=2, padding=1, output_padding=1
            )
        elif upsample == "transposed3" and padding == "keras":
            self.transposed = nn.ConvTranspose2d(cin, cout, 3, stride=2)
            self.crop_end = 1
        else:
            raise ValueError(f"unknown g_upsample {upsample!r} or padding {padding!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.resize is not None:
            return self.resize(F.interpolate(x, scale_factor=2, mode="nearest"))
        y = self.transposed(x)
        return y[..., : y.shape[-2] - self.crop_end, : y.shape[-1] - self.crop_end]


class Refine(nn.Module):
    """One of a stage's `block_convs` extra layers: a 3x3 convolution, optional BatchNorm."""

    def __init__(self, cfg: dict, channels: int, batchnorm: bool):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm = batch_norm(cfg, channels) if batchnorm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y if self.norm is None else self.norm(y)


class Stage(nn.Module):
    """One resolution step: upsampling layer, optional BatchNorm, LeakyReLU, then the extra
    layers, each followed by LeakyReLU (and added to its input when `residual`)."""

    def __init__(self, cfg: dict, cin: int, cout: int, batchnorm: bool):
        super().__init__()
        upsample, padding = cfg.get("g_upsample", "transposed3"), cfg.get("padding", "symmetric")
        self.conv = UpConv(upsample, padding, cin, cout)
        self.norm = batch_norm(cfg, cout) if batchnorm else None
        self.refine = nn.ModuleList(
            Refine(cfg, cout, batchnorm) for _ in range(cfg.get("block_convs", 0))
        )
        self.slope = cfg["leaky_slope"]
        self.residual = cfg.get("residual", False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        x = F.leaky_relu(x, self.slope)
        for layer in self.refine:
            y = F.leaky_relu(layer(x), self.slope)
            x = x + y if self.residual else y
        return x


class Excitation(nn.Module):
    """FastGAN's skip-layer excitation, as facegan's `Excitation`: the coarse map average-pooled
    to 4x4, a dense layer (`squeeze`, no bias), Swish, a dense layer (`excite`, no bias), a
    sigmoid: one gate per channel of the fine map."""

    def __init__(self, coarse: int, fine: int):
        super().__init__()
        self.squeeze = nn.Linear(coarse * 16, fine, bias=False)
        self.excite = nn.Linear(fine, fine, bias=False)

    def forward(self, coarse: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
        pooled = F.adaptive_avg_pool2d(coarse, 4).flatten(1)
        gates = torch.sigmoid(self.excite(F.silu(self.squeeze(pooled))))
        return fine * gates[:, :, None, None]


class Generator(nn.Module):
    """facegan's generator: Linear (no bias) -> LeakyReLU -> reshape to the bottom feature map,
    one `Stage` per entry of `g_channels`, then a 3x3 convolution to RGB and a sigmoid. With
    `g_skip`, a 3x3 RGB convolution after every stage but the last too (`to_rgb_steps.N`): each
    stage's RGB is added to the running sum upsampled x2 (bilinear), the sigmoid taken of the
    total. With `g_sle`, `excitations.N` gates stage N+2's output with the bottom map (N = 0) or
    stage N-1's output. Tensor names are facegan's (`project`, `blocks.N.conv...`, `to_rgb`)."""

    def __init__(self, cfg: dict):
        super().__init__()
        steps = len(cfg["d_channels"])  # the bottom is image size / 2^steps, as in facegan
        self.latent = cfg["latent"]
        self.start = (cfg["g_start_channels"], cfg["height"] >> steps, cfg["width"] >> steps)
        self.slope = cfg["leaky_slope"]
        self.project = nn.Linear(self.latent, math.prod(self.start), bias=False)
        channels = [cfg["g_start_channels"], *cfg["g_channels"]]
        self.blocks = nn.ModuleList(
            Stage(cfg, cin, cout, batchnorm)
            for cin, cout, batchnorm in zip(channels, channels[1:], cfg["g_batchnorm"])
        )
        self.to_rgb = nn.Conv2d(channels[-1], 3, 3, padding=1)
        self.skip = cfg.get("g_skip", False)
        self.to_rgb_steps = nn.ModuleList(
            nn.Conv2d(c, 3, 3, padding=1) for c in (channels[1:-1] if self.skip else [])
        )
        self.excitations = nn.ModuleList(
            Excitation(coarse, fine)
            for coarse, fine in (zip(channels, channels[3:]) if cfg.get("g_sle", False) else [])
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Latents `[N, latent]` -> images `[N, 3, H, W]`, RGB in [0, 1]."""
        x = F.leaky_relu(self.project(z), self.slope).reshape(-1, *self.start)
        outputs = [x]
        rgb = None
        for i, stage in enumerate(self.blocks):
            x = stage(x)
            if self.excitations and i + 1 >= 3:
                x = self.excitations[i + 1 - 3](outputs[i + 1 - 3], x)
            outputs.append(x)
            last = i == len(self.blocks) - 1
            if self.skip or last:
                step_rgb = (self.to_rgb if last else self.to_rgb_steps[i])(x)
                if rgb is not None:
                    up = F.interpolate(rgb, scale_factor=2, mode="bilinear", align_corners=False)
                    step_rgb = up + step_rgb
                rgb = step_rgb
        return torch.sigmoid(rgb)

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """`forward` in batches of `FACEGAN_BATCH`, as facegan generates (with batch statistics,
        the faces that share a batch share its statistics)."""
        return torch.cat([self(batch) for batch in z.split(FACEGAN_BATCH)])

    def use_batch_statistics(self) -> "Generator":
        """Normalises with each batch's own statistics, as `facegan sample --batch-stats` does,
        leaving the running statistics untouched; `eval()` returns to the running ones."""
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.train()
                module.track_running_stats = False
        return self


def read_metadata(path: str | Path) -> dict:
    """The export's metadata (all strings), `model_config` parsed from TOML into a dict."""
    with safe_open(str(path), framework="pt") as f:
        metadata = dict(f.metadata())
    metadata["model_config"] = tomllib.loads(metadata["model_config"])
    return metadata


def load_generator(path: str | Path) -> Generator:
    """Rebuilds the exported generator from the file's metadata and loads its tensors strictly
    (every tensor used, none missing); returns it in eval mode."""
    generator = Generator(read_metadata(path)["model_config"])
    state = {}
    for name, tensor in load_file(str(path)).items():
        prefix, _, leaf = name.rpartition(".")
        state[f"{prefix}.{BATCHNORM_NAMES.get(leaf, leaf)}"] = tensor
    generator.load_state_dict(state, strict=True)
    return generator.eval()


# Latent files: what `facegan sample --save-latents`, `facegan interp` and `facegan project` write.

LATENT_FORMAT = "facegan-latents"
LATENT_VERSION = "1"


def read_latents(path: str | Path) -> torch.Tensor:
    """The latents of a facegan latent file, `[count, latent]` float32, row `i` the input of
    face `i`: a safetensors file with one f32 tensor `z` and the metadata `format` =
    `facegan-latents`, `version` = `1` and `latent` (see docs/export.md). Raises `ValueError`,
    naming the file, for anything else."""

    def refuse(problem: str) -> ValueError:
        return ValueError(
            f"{path}: not a facegan latent file ({problem}); write one with "
            "`facegan sample --save-latents FILE`"
        )

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            z = f.get_tensor("z") if "z" in f.keys() else None
    except OSError as error:
        raise ValueError(f"{path}: cannot read ({error})") from error
    except SafetensorError as error:
        raise refuse(str(error)) from error
    if metadata.get("format") != LATENT_FORMAT:
        raise refuse(f"format {metadata.get('format')!r}")
    if metadata.get("version") != LATENT_VERSION:
        raise ValueError(
            f"{path}: latent file version {metadata.get('version')!r}; "
            f"this reader knows version {LATENT_VERSION}"
        )
    if z is None or z.dtype != torch.float32 or z.ndim != 2 or 0 in z.shape:
        what = "missing" if z is None else f"{z.dtype} {list(z.shape)}"
        raise refuse(f"tensor 'z' is {what}, not float32 [count, latent]")
    if metadata.get("latent") != str(z.shape[1]):
        raise refuse(f"metadata latent {metadata.get('latent')!r}, tensor {list(z.shape)}")
    return z


# Images out, without numpy or Pillow.


def to_pixels(images: torch.Tensor) -> torch.Tensor:
    """`[N, 3, H, W]` in [0, 1] -> `[N, H, W, 3]` uint8, clamped and rounded half up as facegan
    rounds."""
    scaled = images.clamp(0.0, 1.0) * 255.0
    rounded = scaled.floor() + (scaled - scaled.floor() >= 0.5)
    return rounded.to(torch.uint8).permute(0, 2, 3, 1)


def grid(pixels: torch.Tensor) -> torch.Tensor:
    """`[N, H, W, 3]` faces tiled as facegan tiles them: ceil(sqrt(N)) columns, a 2-pixel gap,
    background (24, 24, 24)."""
    n, h, w, _ = pixels.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    gap = 2
    out = torch.full((rows * (h + gap) + gap, cols * (w + gap) + gap, 3), 24, dtype=torch.uint8)
    for i, face in enumerate(pixels):
        y, x = gap + (i // cols) * (h + gap), gap + (i % cols) * (w + gap)
        out[y : y + h, x : x + w] = face
    return out


def write_png(path: str | Path, rgb: torch.Tensor) -> None:
    """Writes an `[H, W, 3]` uint8 image as an 8-bit RGB PNG."""
    h, w, _ = rgb.shape
    rows = torch.cat([torch.zeros(h, 1, dtype=torch.uint8), rgb.reshape(h, w * 3)], dim=1)

    def chunk(tag: bytes, body: bytes) -> bytes:
        checksum = struct.pack(">I", zlib.crc32(tag + body))
        return struct.pack(">I", len(body)) + tag + body + checksum

    Path(path).write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(bytes(rows.flatten().tolist())))
        + chunk(b"IEND", b"")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Draw faces from a `facegan export` file.")
    parser.add_argument("file", help="the .safetensors file `facegan export` wrote")
    parser.add_argument(
        "--latents",
        required=True,
        help="a facegan latent file (.safetensors, from `facegan sample --save-latents`)",
    )
    parser.add_argument("--out", required=True, help="the grid PNG to write")
    parser.add_argument(
        "--batch-stats",
        action="store_true",
        help="normalise with each batch's own statistics (as facegan sample --batch-stats)",
    )
    args = parser.parse_args()

    generator = load_generator(args.file)
    if args.batch_stats:
        generator.use_batch_statistics()
    try:
        z = read_latents(args.latents)
    except ValueError as error:
        parser.error(str(error))
    if z.shape[1] != generator.latent:
        parser.error(
            f"{args.latents}: latents of size {z.shape[1]}, "
            f"but this generator takes {generator.latent}"
        )
    with torch.no_grad():
        images = generator.generate(z)
    write_png(args.out, grid(to_pixels(images)))
    print(f"a grid of {len(images)} faces ({args.latents}) to {args.out}")


if __name__ == "__main__":
    main()
