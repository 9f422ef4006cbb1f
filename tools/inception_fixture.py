"""Writes tests/fixtures/inception/: a reduced network made of pytorch-fid's own pieces, with
seeded weights, and its outputs, for `make test` (no Python there).

The network: pytorch-fid's input step (bilinear resize to 299x299 without corner alignment,
then 2x - 1), a BasicConv2d 3 -> 4 (3x3, stride 2, BatchNorm eps 0.001, ReLU), a 3x3 max pool
with stride 2, pytorch-fid's FIDInceptionC(4, channels_7x7=2) (factorised 7x7 convolutions,
average pooling that does not count the padding), and the global average pool. Saved in the
legacy (non-zip) format of pytorch-fid's real weight file. Beside it, clean_resize.json:
clean-fid's own resize (cleanfid.resize.make_resizer("PIL", False, "bicubic", (299, 299)))
of the first image, every 7th row and column, for facegan's `--fid-resize clean-fid`.

Usage: inception_fixture.py OUT_DIR
"""

import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_fid import inception as pfi
from torchvision.models.inception import BasicConv2d

torch.manual_seed(7)
np.random.seed(7)


class Reduced(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = BasicConv2d(3, 4, kernel_size=3, stride=2)
        self.block = pfi.FIDInceptionC(4, channels_7x7=2)

    def forward(self, x):
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        x = 2 * x - 1
        x = F.max_pool2d(self.stem(x), kernel_size=3, stride=2)
        x = self.block(x)
        return x.mean(dim=(2, 3))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    net = Reduced()
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
        elif isinstance(m, torch.nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)
    net.eval()
    images = np.random.randint(0, 256, size=(2, 12, 10, 3), dtype=np.uint8)
    x = torch.from_numpy(images.astype(np.float32) / 255.0).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        y = net(x).numpy()
    torch.save(net.state_dict(), os.path.join(out, "reduced.pth"), _use_new_zipfile_serialization=False)
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump({
            "about": "tools/inception_fixture.py: pytorch-fid " + getattr(pfi, "__version__", "")
                     + ", torch " + torch.__version__,
            "height": 12,
            "width": 10,
            "images": images.reshape(2, -1).tolist(),
            "features": y.tolist(),
        }, f)
    from cleanfid.resize import make_resizer
    resized = make_resizer("PIL", False, "bicubic", (299, 299))(images[0])
    with open(os.path.join(out, "clean_resize.json"), "w") as f:
        json.dump({
            "about": "tools/inception_fixture.py: clean-fid's PIL bicubic resize of images[0] of "
                     "expected.json to 299x299, HWC floats, rows and columns 0, 7, 14, ...",
            "stride": 7,
            "resized": resized[::7, ::7, :].astype(np.float64).tolist(),
        }, f)
    print(f"wrote {out}: features of shape {y.shape}, std {y.std():.4f}")


if __name__ == "__main__":
    main()
