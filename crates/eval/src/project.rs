//! `facegan project`: finds the latent code whose face reproduces a real one. The image goes
//! through preprocess's own decode, crop and resize with the run's shard settings (so it must be
//! aligned like the training faces, as CelebA's aligned crops are); then Adam on z, from several
//! seeded restarts at once, against a pixel loss (mean squared error in [0, 1]) plus a feature
//! loss (the mean squared difference of D's block activations, D's own features: nothing is
//! downloaded), with a weak pull of each latent's mean square toward the prior's 1. G and D run
//! as at inference (`facegan_model::layers::as_at_inference`: BatchNorm on running statistics,
//! no dropout) on an autodiff backend, so only z moves. Writes the target, the reconstruction,
//! both side by side, the latent file and the loss curve.
//!
//! `--shard-faces H,T` projects H held-out and T training faces of the shard instead, and
//! writes `summary.json`: for each held-out face, the share of the other held-out faces its
//! reconstruction is farther from than from its own target (a reconstruction of that face, not
//! of a face in general, scores near 1), and the mean error on held-out against training
//! faces (much lower on training faces means G memorised them).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use burn::module::Module;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};
use facegan_common::charts::{write_line_chart, Line};
use facegan_common::images::{chw_to_rgb_images, grid, save_png, zoom};
use facegan_model::layers::as_at_inference;
use facegan_rundir::networks;
use facegan_shard::{Shard, Split};
use serde::Serialize;

use crate::generate::latents;
use crate::sample::latent_file;
use crate::swd::{sample_ids, Planes};
use crate::{find_checkpoint, CheckpointChoice};

/// What `facegan project` does.
#[derive(Debug, Clone)]
pub struct ProjectOptions {
    pub run: PathBuf,
    pub checkpoint: CheckpointChoice,
    /// The real faces; each gets its own folder `out/<file stem>/`.
    pub images: Vec<PathBuf>,
    /// Project this many held-out and training faces of the shard instead (`holdout-ID/`,
    /// `train-ID/`), with `summary.json`.
    pub shard_faces: Option<(usize, usize)>,
    pub out: PathBuf,
    /// The shard whose decode, crop and resize the images go through (default: the run's).
    pub data: Option<PathBuf>,
    /// Latents optimised at once from seeded starts; the best reconstruction wins.
    pub restarts: usize,
    pub steps: usize,
    /// Adam's learning rate on z (ramped down over the last quarter of the steps).
    pub lr: f64,
    /// The weight of D's feature loss beside the pixel loss.
    pub feature_weight: f64,
    pub seed: u64,
}

/// The weight of the pull of each latent's mean square toward 1 (the prior's).
pub const PRIOR_WEIGHT: f64 = 0.01;

/// One face's projection, as `projection.json` holds it.
#[derive(Debug, Clone, Serialize)]
pub struct Projection {
    pub image: String,
    /// Mean squared pixel error of the reconstruction, pixels in [0, 1].
    pub pixel_mse: f64,
    /// Root of it, in 8-bit levels (0-255): the typical error of one pixel value.
    pub rms_levels: f64,
    pub feature_loss: f64,
    pub restart: usize,
    pub restarts: usize,
    pub steps: usize,
    /// The best restart's total loss after each step.
    pub loss_curve: Vec<f64>,
    pub seconds: f64,
}

/// Projects every image; returns one line per face.
pub fn project<B: AutodiffBackend>(
    opts: &ProjectOptions,
    device: &B::Device,
) -> Result<Vec<String>> {
    if opts.restarts == 0 || opts.steps == 0 {
        bail!("--restarts and --steps must be at least 1");
    }
    let (info, state) = find_checkpoint(&opts.run, opts.checkpoint)?;
    let data = opts
        .data
        .clone()
        .unwrap_or_else(|| PathBuf::from(&state.data_path));
    let shard = Shard::open(&data).with_context(|| {
        format!(
            "{}: cannot open the run's shard, whose decode, crop and resize the faces go through (give one of the run's size with --data)",
            data.display()
        )
    })?;
    let m = &state.config.model;
    if (shard.height(), shard.width()) != (m.height, m.width) {
        bail!(
            "{}: {}x{} images, but the run draws {}x{}",
            data.display(),
            shard.height(),
            shard.width(),
            m.height,
            m.width
        );
    }
    let (g, _) = networks::load_sampling_generator::<B>(&info.dir, &state.config, device)?;
    let d = networks::load_discriminator::<B>(&info.dir, &state.config, device)?;
    let (g, d) = (g.no_grad(), d.no_grad());
    let mut faces: Vec<(String, String, Vec<f32>)> = Vec::new(); // (name, source, planes)
    for image in &opts.images {
        let target = crate::inputs::decode_like_shard(image, &shard)?;
        let stem = image
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "face".into());
        faces.push((stem, image.display().to_string(), target));
    }
    if let Some((nh, nt)) = opts.shard_faces {
        for (split, name, n) in [(Split::Holdout, "holdout", nh), (Split::Train, "train", nt)] {
            let ids = shard.indices(split);
            if ids.len() < n {
                bail!(
                    "{}: {} {name} faces, fewer than {n}",
                    data.display(),
                    ids.len()
                );
            }
            for id in sample_ids(&ids, n, opts.seed) {
                let source = format!(
                    "{} {name} image {id} ({})",
                    data.display(),
                    shard.meta().images[id].path
                );
                faces.push((format!("{name}-{id}"), source, shard_planes(&shard, id)));
            }
        }
    }
    let mut lines = Vec::new();
    let mut done: Vec<(String, Vec<f32>, Projection)> = Vec::new();
    for (stem, source_name, target) in faces {
        let dir = opts.out.join(&stem);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("{}: cannot create", dir.display()))?;
        let started = std::time::Instant::now();
        let (z, mut p) =
            project_one::<B>(&g, &d, &target, (m.height, m.width), m.latent, opts, device);
        p.image = source_name.clone();
        p.seconds = started.elapsed().as_secs_f64();
        let size = (m.height, m.width);
        let recon = write_outputs::<B>(&dir, &g, &target, &z, &p, size, m.latent, device)?;
        let source = format!("projected from {source_name}");
        latent_file(z, &info, &state, source).write(&dir.join("latent.safetensors"))?;
        lines.push(format!(
            "{}: pixel MSE {:.5} (RMS {:.1} of 255), best of {} restarts, {:.0} s -> {}",
            source_name,
            p.pixel_mse,
            p.rms_levels,
            p.restarts,
            p.seconds,
            dir.display()
        ));
        done.push((stem, recon, p));
    }
    if opts.shard_faces.is_some() {
        lines.push(write_summary(&opts.out, &shard, &done)?);
    }
    Ok(lines)
}

/// A shard image as `[3, h, w]` planes in [0, 1].
fn shard_planes(shard: &Shard, id: usize) -> Vec<f32> {
    Planes::from_hwc_u8(shard.height(), shard.width(), shard.image(id))
        .data
        .iter()
        .map(|v| v / 255.0)
        .collect()
}

/// One projected face in `summary.json`.
#[derive(Debug, Serialize)]
struct SummaryFace {
    name: String,
    pixel_mse: f64,
    /// Held-out faces only: the share of the other held-out faces the reconstruction is
    /// farther from (pixel MSE) than from its own target.
    own_face_rank: Option<f64>,
}

/// `summary.json` for `--shard-faces`: each face's error and, for held-out faces, its rank
/// among all held-out faces; the means on held-out and training faces. Returns its line.
fn write_summary(
    out: &Path,
    shard: &Shard,
    done: &[(String, Vec<f32>, Projection)],
) -> Result<String> {
    let holdout: Vec<Vec<f32>> = shard
        .indices(Split::Holdout)
        .into_iter()
        .map(|id| shard_planes(shard, id))
        .collect();
    let mse = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| ((x - y) as f64).powi(2))
            .sum::<f64>()
            / a.len() as f64
    };
    let mut faces = Vec::new();
    for (name, recon, p) in done {
        let own_face_rank = name.starts_with("holdout-").then(|| {
            // The target is among the held-out faces: the others are all but the one at the
            // reconstruction's own error.
            let own = p.pixel_mse;
            let others = holdout.len().saturating_sub(1).max(1);
            let farther = holdout
                .iter()
                .filter(|h| mse(recon, h) > own * (1.0 + 1e-6))
                .count();
            farther as f64 / others as f64
        });
        faces.push(SummaryFace {
            name: name.clone(),
            pixel_mse: p.pixel_mse,
            own_face_rank,
        });
    }
    let mean = |prefix: &str| {
        let v: Vec<f64> = faces
            .iter()
            .filter(|f| f.name.starts_with(prefix))
            .map(|f| f.pixel_mse)
            .collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    let (mh, mt) = (mean("holdout-"), mean("train-"));
    let ranks: Vec<f64> = faces.iter().filter_map(|f| f.own_face_rank).collect();
    let above_95 = ranks.iter().filter(|&&r| r >= 0.95).count();
    let summary = serde_json::json!({
        "holdout_faces_compared": holdout.len(),
        "holdout_mean_pixel_mse": mh,
        "train_mean_pixel_mse": mt,
        "holdout_over_train": mh.zip(mt).map(|(h, t)| h / t),
        "holdout_reconstructions_closer_to_own_face_than_95_percent": above_95,
        "holdout_projected": ranks.len(),
        "faces": faces,
    });
    let text = serde_json::to_string_pretty(&summary).expect("a summary serializes");
    facegan_common::write_atomic(&out.join("summary.json"), text.as_bytes())?;
    let show = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.5}"));
    Ok(format!(
        "summary: {above_95} of {} held-out reconstructions closer to their own face than to 95% of the {} held-out faces; mean pixel MSE held-out {} vs training {} -> {}",
        ranks.len(),
        holdout.len(),
        show(mh),
        show(mt),
        out.join("summary.json").display()
    ))
}

/// Adam on `restarts` latents at once toward `target` (`[3, h, w]` in [0, 1]); the best
/// restart's latent and its record.
fn project_one<B: AutodiffBackend>(
    g: &facegan_model::Generator<B>,
    d: &facegan_model::Discriminator<B>,
    target: &[f32],
    (h, w): (usize, usize),
    latent: usize,
    opts: &ProjectOptions,
    device: &B::Device,
) -> (Vec<f32>, Projection) {
    let r = opts.restarts;
    let target1 = Tensor::<B, 4>::from_data(TensorData::new(target.to_vec(), [1, 3, h, w]), device);
    let target_r = target1.clone().repeat_dim(0, r);
    let target_features: Vec<Tensor<B, 4>> = as_at_inference(|| d.block_features(target_r.clone()))
        .into_iter()
        .map(|f| f.detach())
        .collect();
    let mut z = Tensor::<B::InnerBackend, 2>::from_data(
        TensorData::new(latents::<B>(r, latent, opts.seed, device), [r, latent]),
        device,
    );
    let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8f64);
    let mut m1 = z.zeros_like();
    let mut m2 = z.zeros_like();
    let mut curve = Vec::with_capacity(opts.steps);
    for step in 0..opts.steps {
        let zt = Tensor::<B, 2>::from_inner(z.clone()).require_grad();
        let (pixel, feature, prior) = losses::<B>(g, d, zt.clone(), &target_r, &target_features);
        let total = pixel.clone() + feature.clone().mul_scalar(opts.feature_weight) + prior;
        let per_restart = total.clone().into_data().to_vec::<f32>().expect("f32");
        curve.push(per_restart.iter().fold(f32::INFINITY, |a, &b| a.min(b)) as f64);
        let grads = total.sum().backward();
        let gz = zt.grad(&grads).expect("z takes part in the loss");
        // Adam, its rate ramped down linearly over the last quarter of the steps.
        let t = (step + 1) as i32;
        let ramp = (4.0 * (1.0 - step as f64 / opts.steps as f64)).min(1.0);
        m1 = m1.mul_scalar(b1) + gz.clone().mul_scalar(1.0 - b1);
        m2 = m2.mul_scalar(b2) + gz.square().mul_scalar(1.0 - b2);
        let mhat = m1.clone().div_scalar(1.0 - b1.powi(t));
        let vhat = m2.clone().div_scalar(1.0 - b2.powi(t));
        z = z - (mhat / vhat.sqrt().add_scalar(eps)).mul_scalar(opts.lr * ramp);
    }
    // The curve is of the latents before each update: score the final ones.
    let zt = Tensor::<B, 2>::from_inner(z.clone());
    let (pixel, feature, _) = losses::<B>(g, d, zt, &target_r, &target_features);
    let pixel = pixel.into_data().to_vec::<f32>().expect("f32");
    let feature = feature.into_data().to_vec::<f32>().expect("f32");
    let best = (0..r)
        .min_by(|&a, &b| pixel[a].total_cmp(&pixel[b]))
        .expect("at least one restart");
    let all = z.into_data().to_vec::<f32>().expect("f32");
    let mse = pixel[best] as f64;
    let record = Projection {
        image: String::new(),
        pixel_mse: mse,
        rms_levels: mse.sqrt() * 255.0,
        feature_loss: feature[best] as f64,
        restart: best,
        restarts: r,
        steps: opts.steps,
        loss_curve: curve,
        seconds: 0.0,
    };
    (all[best * latent..(best + 1) * latent].to_vec(), record)
}

/// Per restart: the pixel MSE, D's feature loss and the prior pull, each `[restarts]`.
fn losses<B: AutodiffBackend>(
    g: &facegan_model::Generator<B>,
    d: &facegan_model::Discriminator<B>,
    z: Tensor<B, 2>,
    target: &Tensor<B, 4>,
    target_features: &[Tensor<B, 4>],
) -> (Tensor<B, 1>, Tensor<B, 1>, Tensor<B, 1>) {
    let r = z.dims()[0];
    let x = as_at_inference(|| g.forward(z.clone()));
    let pixel = (x.clone() - target.clone())
        .square()
        .reshape([r as i32, -1])
        .mean_dim(1)
        .reshape([r]);
    let features = as_at_inference(|| d.block_features(x));
    let mut feature = Tensor::<B, 1>::zeros([r], &z.device());
    for (f, t) in features.into_iter().zip(target_features) {
        feature = feature
            + (f - t.clone())
                .square()
                .reshape([r as i32, -1])
                .mean_dim(1)
                .reshape([r]);
    }
    let prior = (z.square().mean_dim(1).reshape([r]) - 1.0)
        .square()
        .mul_scalar(PRIOR_WEIGHT);
    (pixel, feature, prior)
}

/// `target.png`, `reconstruction.png`, `side_by_side.png` (the two, 4x zoomed),
/// `loss.png` and `projection.json` in `dir`; returns the reconstruction's planes.
#[allow(clippy::too_many_arguments)]
fn write_outputs<B: AutodiffBackend>(
    dir: &Path,
    g: &facegan_model::Generator<B>,
    target: &[f32],
    z: &[f32],
    p: &Projection,
    (h, w): (usize, usize),
    latent: usize,
    device: &B::Device,
) -> Result<Vec<f32>> {
    let zt = Tensor::<B, 2>::from_data(TensorData::new(z.to_vec(), [1, latent]), device);
    let recon = as_at_inference(|| g.forward(zt))
        .into_data()
        .to_vec::<f32>()
        .expect("f32");
    let target_img = chw_to_rgb_images(target, h, w).remove(0);
    let recon_img = chw_to_rgb_images(&recon, h, w).remove(0);
    save_png(&dir.join("target.png"), &target_img)?;
    save_png(&dir.join("reconstruction.png"), &recon_img)?;
    let pair = grid(&[target_img, recon_img], 2);
    save_png(&dir.join("side_by_side.png"), &zoom(&pair, 4))?;
    let points: Vec<(f64, f64)> = p
        .loss_curve
        .iter()
        .enumerate()
        .map(|(i, &l)| ((i + 1) as f64, l))
        .collect();
    let y_max = points.iter().map(|p| p.1).fold(0.0, f64::max).max(1e-6) * 1.05;
    write_line_chart(
        &dir.join("loss.png"),
        "projection: the best restart's loss",
        ("step", "pixel MSE + feature loss + prior"),
        (p.steps as f64, y_max),
        vec![Line {
            name: "loss".into(),
            rgb: (31, 119, 180),
            points,
            spread: Vec::new(),
        }],
    )?;
    let json = serde_json::to_string_pretty(p).expect("a projection serializes");
    facegan_common::write_atomic(&dir.join("projection.json"), json.as_bytes())?;
    Ok(recon)
}
