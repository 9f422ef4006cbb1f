"""make check-fid: facegan's FID, KID and precision/recall against pytorch-fid and clean-fid.

pytorch-fid's Inception-v3 (its FID blocks) is built without its weight download and given
seeded random weights that keep activations alive: He-normal convolutions, and BatchNorm running
statistics set from real faces (one forward in training mode with a cumulative average), so
every layer's output is normalised and the features have a spread of order 1 (asserted). The
weights are saved in the legacy (non-zip) format of pytorch-fid's real file, under the same
keys, and facegan loads that file. Then, one JSON line:
- features: facegan's and pytorch-fid's on the same PNG faces (relative max difference);
- clean-fid's resize (`--fid-resize clean-fid`): facegan's 299x299 pixels against
  cleanfid.resize.make_resizer("PIL", False, "bicubic") on the same faces (max absolute
  difference, 0-255 scale), and the features of pytorch-fid's network on each (relative);
- FID on the same feature arrays: facegan's against pytorch-fid's calculate_frechet_distance;
- KID on the same feature arrays, one subset of all n: facegan's against clean-fid's;
- end to end: FID of two folders of faces, each side's features computed by its own tool
  (N_END_TO_END 0 skips it and the same-feature scores: the feature checks alone take minutes).

Usage: check_fid.py FACES_DIR WORK_DIR FID_CHECK_BIN [N_FEATURES] [N_END_TO_END]
FACES_DIR holds face images (any size; read with PIL, saved as PNG so both tools read the
same pixels); FID_CHECK_BIN is facegan's `fid_check` example binary.
"""

import json
import os
import subprocess
import sys
import time

import numpy as np
import torch
from PIL import Image
from pytorch_fid import inception as pfi
from pytorch_fid.fid_score import calculate_frechet_distance
from cleanfid.fid import kernel_distance
from cleanfid.resize import make_resizer

torch.manual_seed(0)
np.random.seed(0)
torch.set_num_threads(os.cpu_count() or 1)


def build_inception_without_download():
    """pytorch_fid.inception.fid_inception_v3, less its weight download."""
    net = pfi._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    net.Mixed_5b = pfi.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = pfi.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = pfi.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = pfi.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = pfi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = pfi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = pfi.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = pfi.FIDInceptionE_1(1280)
    net.Mixed_7c = pfi.FIDInceptionE_2(2048)
    build_inception_without_download.built = net
    return net


def load_png_batch(paths):
    arr = np.stack([np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) / 255.0 for p in paths])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def torch_features(model, paths, batch=50):
    out = []
    with torch.no_grad():
        for i in range(0, len(paths), batch):
            out.append(model(load_png_batch(paths[i:i + batch]))[0].squeeze(3).squeeze(2).numpy())
    return np.concatenate(out).astype(np.float32)


def torch_features_clean_resize(model, paths, batch=50):
    """pytorch-fid's network on clean-fid's resize: PIL bicubic to 299x299 of float channels,
    clipped, then [0, 1] (pytorch-fid's own bilinear step is the identity at 299x299)."""
    resize = make_resizer("PIL", False, "bicubic", (299, 299))
    out = []
    with torch.no_grad():
        for i in range(0, len(paths), batch):
            imgs = np.stack([resize(np.asarray(Image.open(p).convert("RGB"))) for p in paths[i:i + batch]])
            x = torch.from_numpy(imgs.astype(np.float32) / 255.0).permute(0, 3, 1, 2).contiguous()
            out.append(model(x)[0].squeeze(3).squeeze(2).numpy())
    return np.concatenate(out).astype(np.float32)


def stats(f):
    f = f.astype(np.float64)
    return f.mean(axis=0), np.cov(f, rowvar=False)


def fid_by_eigh(mu1, s1, mu2, s2):
    """The same Fréchet distance through symmetric eigendecompositions (numpy's eigh), the route
    facegan takes: tr sqrt(S1 S2) = sum sqrt(eig(sqrt(S1) S2 sqrt(S1)))."""
    w, u = np.linalg.eigh(s1)
    root = (u * np.sqrt(np.clip(w, 0, None))) @ u.T
    m = root @ s2 @ root
    lam = np.linalg.eigvalsh((m + m.T) / 2)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(lam, 0, None)).sum())


def rel(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))) / max(np.max(np.abs(b)), 1e-30))


def main():
    faces, work, binary = sys.argv[1], sys.argv[2], sys.argv[3]
    n_feat = int(sys.argv[4]) if len(sys.argv) > 4 else 64
    n_e2e = int(sys.argv[5]) if len(sys.argv) > 5 else 2100
    os.makedirs(work, exist_ok=True)

    # The same pixels for both tools: faces as PNG.
    names = sorted(n for n in os.listdir(faces) if n.lower().endswith((".jpg", ".jpeg", ".png")))
    n_a = max(n_e2e, n_feat, 256)  # the first 256 set the test network's BatchNorm statistics
    need = n_a + n_e2e
    if len(names) < need:
        sys.exit(f"{faces}: {len(names)} images, need {need}")
    folders = {k: os.path.join(work, k) for k in ("a", "b")}
    for d in folders.values():
        os.makedirs(d, exist_ok=True)
    for i, name in enumerate(names[:need]):
        d = folders["a"] if i < n_a else folders["b"]
        out = os.path.join(d, f"{i:06d}.png")
        if not os.path.exists(out):
            Image.open(os.path.join(faces, name)).convert("RGB").save(out)
    a_all = sorted(os.path.join(folders["a"], n) for n in os.listdir(folders["a"]))[:n_a]
    a_paths = a_all[:n_e2e]
    b_paths = sorted(os.path.join(folders["b"], n) for n in os.listdir(folders["b"]))[:n_e2e]

    # pytorch-fid's network, seeded weights that keep activations alive.
    pfi.fid_inception_v3 = build_inception_without_download
    model = pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]])
    inner = build_inception_without_download.built
    for m in inner.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
        elif isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average: one forward sets the batch's statistics
            torch.nn.init.ones_(m.weight)
            torch.nn.init.zeros_(m.bias)
    model.train()
    with torch.no_grad():
        model(load_png_batch(a_all[:256]))
    model.eval()
    weights = os.path.join(work, "inception-test.pth")
    torch.save(inner.state_dict(), weights, _use_new_zipfile_serialization=False)
    sha = subprocess.run(["sha256sum", weights], capture_output=True, text=True, check=True).stdout.split()[0]

    # 1. Features of the same faces.
    feat_paths = a_all[:n_feat]
    t = time.time()
    ref = torch_features(model, feat_paths)
    torch_s = time.time() - t
    std = float(ref.std())
    assert 0.05 < std < 20, f"features' std {std}: the test network's activations died or blew up"
    list_file = os.path.join(work, "features.txt")
    with open(list_file, "w") as f:
        f.write("\n".join(feat_paths) + "\n")
    ours_file = os.path.join(work, "features.f32")
    run = subprocess.run([binary, "features", weights, sha, list_file, ours_file], capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(run.stderr)
    ours = np.fromfile(ours_file, dtype=np.float32).reshape(-1, 2048)
    feat_rel = rel(ours, ref)

    # 1b. clean-fid's resize: the pixels, then the features.
    resize = make_resizer("PIL", False, "bicubic", (299, 299))
    ref_px = np.stack([resize(np.asarray(Image.open(p).convert("RGB"))) for p in feat_paths]).astype(np.float32)
    px_file = os.path.join(work, "resized.f32")
    run = subprocess.run([binary, "resized", list_file, px_file], capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(run.stderr)
    ours_px = np.fromfile(px_file, dtype=np.float32).reshape(ref_px.shape)
    px_diff = float(np.max(np.abs(ours_px - ref_px)))
    ref_clean = torch_features_clean_resize(model, feat_paths)
    clean_file = os.path.join(work, "features-clean.f32")
    run = subprocess.run([binary, "features", weights, sha, list_file, clean_file, "clean-fid"],
                         capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(run.stderr)
    clean_rel = rel(np.fromfile(clean_file, dtype=np.float32).reshape(-1, 2048), ref_clean)
    feature_checks = {
        "features_compared": n_feat,
        "features_std": round(std, 4),
        "features_max_rel_diff": feat_rel,
        "clean_fid_resize_max_abs_diff_0_255": px_diff,
        "clean_fid_resize_features_max_rel_diff": clean_rel,
        "clean_fid_resize_vs_pytorch_fid_resize_features_rel_diff": rel(ref_clean, ref),
    }
    features_ok = feat_rel < 1e-4 and clean_rel < 1e-4 and px_diff < 1e-2
    if n_e2e == 0:
        print(json.dumps({**feature_checks, "ok": features_ok}))
        return

    # 2. FID, KID and precision/recall on the same feature arrays.
    fa = torch_features(model, a_paths)
    fb = torch_features(model, b_paths)
    fa.tofile(os.path.join(work, "a.f32"))
    fb.tofile(os.path.join(work, "b.f32"))
    run = subprocess.run([binary, "scores", os.path.join(work, "a.f32"), os.path.join(work, "b.f32")],
                         capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(run.stderr)
    scores = json.loads(run.stdout)
    mu1, s1 = stats(fa)
    mu2, s2 = stats(fb)
    fid_ref = float(calculate_frechet_distance(mu1, s1, mu2, s2))
    fid_eigh = fid_by_eigh(mu1, s1, mu2, s2)
    kid_ref = kernel_distance(fa.astype(np.float64), fb.astype(np.float64), num_subsets=1, max_subset_size=len(fa))

    # 3. End to end: each tool's own features of the two folders.
    for side, paths in (("a", a_paths), ("b", b_paths)):
        with open(os.path.join(work, f"{side}.txt"), "w") as f:
            f.write("\n".join(paths) + "\n")
    t = time.time()
    for side in ("a", "b"):
        run = subprocess.run([binary, "features", weights, sha, os.path.join(work, f"{side}.txt"),
                              os.path.join(work, f"{side}-facegan.f32")], capture_output=True, text=True)
        if run.returncode != 0:
            sys.exit(run.stderr)
    facegan_s = time.time() - t
    run = subprocess.run([binary, "scores", os.path.join(work, "a-facegan.f32"), os.path.join(work, "b-facegan.f32")],
                         capture_output=True, text=True)
    e2e = json.loads(run.stdout)
    print(json.dumps({
        **feature_checks,
        "fid_same_features": {"facegan": scores["fid"], "pytorch_fid": fid_ref,
                              "rel_diff": abs(scores["fid"] - fid_ref) / abs(fid_ref),
                              "numpy_eigh": fid_eigh,
                              "rel_diff_to_numpy_eigh": abs(scores["fid"] - fid_eigh) / abs(fid_eigh)},
        "kid_same_features_one_subset": {"facegan": scores["kid_one_subset"], "clean_fid": kid_ref,
                                         "rel_diff": abs(scores["kid_one_subset"] - kid_ref) / abs(kid_ref)},
        "fid_end_to_end": {"images_per_side": n_e2e, "facegan": e2e["fid"], "pytorch_fid": fid_ref,
                           "rel_diff": abs(e2e["fid"] - fid_ref) / abs(fid_ref)},
        "features_img_per_s": {"facegan": round(2 * n_e2e / facegan_s, 2),
                               "pytorch": round(n_feat / torch_s, 2)},
        "ok": features_ok and abs(scores["fid"] - fid_ref) / abs(fid_ref) < 1e-6
              and abs(scores["kid_one_subset"] - kid_ref) / abs(kid_ref) < 1e-4
              and abs(e2e["fid"] - fid_ref) / abs(fid_ref) < 1e-3,
    }))


if __name__ == "__main__":
    main()
