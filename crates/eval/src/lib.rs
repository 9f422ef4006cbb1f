//! Stage 3 of the pipeline: evaluate a trained run. Reads `RUN/checkpoints/` and a shard, writes
//! `RUN/eval/`: `grid.png`, `real.png`, `interp.png`, `interp.gif`, `nn.png`, `report.json` and
//! `report.html`.
//!
//! - [`swd`]: the ProGAN sliced Wasserstein distance on Laplacian-pyramid patches.
//! - [`generate`]: batched G and D in eval mode, slerp.
//! - [`report`]: the JSON report and the self-contained HTML page.
//! - [`sample`], [`export`]: `facegan sample` and `facegan export`.

pub mod export;
pub mod generate;
pub mod report;
pub mod sample;
pub use facegan_metrics::swd;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::tensor::backend::Backend;
use facegan_shard::{Shard, Split};
use facegan_trainer::artifacts::{self, chw_to_rgb_images, grid, grid_from_chw, save_png};
use facegan_trainer::checkpoint::{self, CheckpointInfo, TrainState};
use serde::Serialize;

use generate::{discriminate, generate, latents, slerp, to_planes};
use swd::{sample_ids, Planes, SwdResult};

pub const TOOL_VERSION: &str = concat!("facegan ", env!("CARGO_PKG_VERSION"));

/// Which checkpoint to evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointChoice {
    Latest,
    /// The run's best checkpoint by the trainer's quality probe (`checkpoints/best/`).
    Best,
    /// The checkpoint written after this many completed epochs.
    Epoch(usize),
}

impl CheckpointChoice {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "latest" => return Ok(CheckpointChoice::Latest),
            "best" => return Ok(CheckpointChoice::Best),
            _ => {}
        }
        s.parse()
            .map(CheckpointChoice::Epoch)
            .with_context(|| format!("--checkpoint {s:?}: use `latest`, `best` or an epoch number"))
    }
}

/// Finds the checkpoint and its state, with errors that say what to do.
pub fn find_checkpoint(
    run: &Path,
    choice: CheckpointChoice,
) -> Result<(CheckpointInfo, TrainState)> {
    if !run.is_dir() {
        bail!(
            "{}: no such run directory (train first: facegan train --run {})",
            run.display(),
            run.display()
        );
    }
    let found = match choice {
        CheckpointChoice::Latest => checkpoint::latest(run)?,
        CheckpointChoice::Best => checkpoint::best(run),
        CheckpointChoice::Epoch(e) => checkpoint::by_epoch(run, e)?,
    };
    let Some(info) = found else {
        match choice {
            CheckpointChoice::Latest => bail!("{}: the run has no finished checkpoint yet", run.display()),
            CheckpointChoice::Best => bail!(
                "{}: the run has no best checkpoint (the trainer keeps one when its quality probe is on: eval_every > 0 and a shard with a holdout)",
                run.display()
            ),
            CheckpointChoice::Epoch(e) => bail!(
                "{}: no checkpoint after epoch {e} (only the last few are kept; see {}/checkpoints)",
                run.display(),
                run.display()
            ),
        }
    };
    // `latest`, `best` and `by_epoch` return only checkpoints that pass their checksums.
    let state = checkpoint::load_state(&info.dir)?;
    Ok((info, state))
}

#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub run: PathBuf,
    pub data: Option<PathBuf>,
    pub checkpoint: CheckpointChoice,
    pub n: usize,
    pub fake_dir: Option<PathBuf>,
    pub seed: u64,
}

/// Accuracy of D (threshold 0.5) on reals and fakes, and its mean outputs.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DAccuracy {
    pub real: f64,
    pub fake: f64,
    pub balanced: f64,
    pub mean_d_real: f64,
    pub mean_d_fake: f64,
    pub n_real: usize,
    pub n_fake: usize,
}

impl DAccuracy {
    /// From D's probabilities on real and fake images.
    pub fn from_probs(real: &[f32], fake: &[f32]) -> Self {
        let frac = |v: &[f32], f: &dyn Fn(f32) -> bool| {
            v.iter().filter(|&&p| f(p)).count() as f64 / v.len().max(1) as f64
        };
        let mean = |v: &[f32]| v.iter().map(|&p| p as f64).sum::<f64>() / v.len().max(1) as f64;
        let r = frac(real, &|p| p > 0.5);
        let f = frac(fake, &|p| p <= 0.5);
        DAccuracy {
            real: r,
            fake: f,
            balanced: (r + f) / 2.0,
            mean_d_real: mean(real),
            mean_d_fake: mean(fake),
            n_real: real.len(),
            n_fake: fake.len(),
        }
    }
}

/// Nearest training images of one generated face.
#[derive(Debug, Clone, Serialize)]
pub struct Neighbours {
    pub fake_index: usize,
    pub train_paths: Vec<String>,
    pub distances: Vec<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub tool_version: String,
    pub run: String,
    pub data: String,
    pub source: String,
    pub checkpoint: Option<serde_json::Value>,
    pub config: Option<facegan_trainer::TrainConfig>,
    pub settings: serde_json::Value,
    pub swd_fake_vs_holdout: SwdResult,
    pub swd_train_vs_holdout: SwdResult,
    pub d_accuracy_holdout: Option<DAccuracy>,
    pub d_accuracy_train: Option<DAccuracy>,
    pub nearest_neighbours: Vec<Neighbours>,
    pub nn_level: (usize, usize),
    pub swd_seconds: f64,
    pub seconds: f64,
    #[serde(skip)]
    pub html_path: PathBuf,
}

impl EvalReport {
    pub fn summary_line(&self) -> String {
        let acc = self
            .d_accuracy_holdout
            .as_ref()
            .map(|a| {
                format!(
                    ", D accuracy on holdout {:.3} (real {:.3}, fake {:.3})",
                    a.balanced, a.real, a.fake
                )
            })
            .unwrap_or_default();
        format!(
            "SWD x1e3 {:.2} (noise floor train-vs-holdout {:.2}; per level {}){acc}, {} images per side, {:.1} s",
            self.swd_fake_vs_holdout.average,
            self.swd_train_vs_holdout.average,
            self.swd_fake_vs_holdout
                .per_level
                .iter()
                .map(|v| format!("{v:.2}"))
                .collect::<Vec<_>>()
                .join("/"),
            self.swd_fake_vs_holdout.images_per_side,
            self.seconds
        )
    }
}

/// Reads shard images as `[3, H, W]` f32 in [0, 1].
fn shard_images(shard: &Shard, ids: &[usize]) -> Vec<f32> {
    let (h, w) = (shard.height(), shard.width());
    let mut out = Vec::with_capacity(ids.len() * 3 * h * w);
    for &i in ids {
        let p = Planes::from_hwc_u8(h, w, shard.image(i));
        out.extend(p.data.iter().map(|v| v / 255.0));
    }
    out
}

/// Loads a folder of images resized like the shard. Bad files are listed on stderr and skipped.
pub fn load_fake_dir(dir: &Path, shard: &Shard, limit: usize) -> Result<Vec<f32>> {
    use facegan_preprocess::decode::{decode_rgb, resize_rgb};
    let files = facegan_preprocess::scan(dir)?;
    let s = &shard.meta().settings;
    let crop = facegan_preprocess::Crop::parse(&s.crop).unwrap_or(facegan_preprocess::Crop::None);
    let filter = facegan_preprocess::Filter::parse(&s.filter)
        .unwrap_or(facegan_preprocess::Filter::CatmullRom);
    let (h, w) = (shard.height() as u32, shard.width() as u32);
    let mut resizer = fast_image_resize::Resizer::new();
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for f in files.iter() {
        if out.len() / (3 * (h * w) as usize) >= limit {
            break;
        }
        let img = std::fs::read(&f.path)
            .map_err(|e| e.to_string())
            .and_then(|b| decode_rgb(&b).map_err(|e| e.to_string()));
        match img {
            Ok(rgb) => {
                let px = resize_rgb(&mut resizer, rgb, h, w, crop, filter);
                out.extend(
                    Planes::from_hwc_u8(h as usize, w as usize, &px)
                        .data
                        .iter()
                        .map(|v| v / 255.0),
                );
            }
            Err(e) => bad.push(format!("{}: {e}", f.path.display())),
        }
    }
    for b in &bad {
        eprintln!("skipping unreadable image {b}");
    }
    if out.is_empty() {
        bail!(
            "{}: no usable images ({} files, {} unreadable)",
            dir.display(),
            files.len(),
            bad.len()
        );
    }
    Ok(out)
}

/// The low-pass pyramid level used for nearest neighbours.
fn low_pass(p: &Planes) -> Planes {
    let levels = swd::level_sizes(p.h, p.w).len();
    let mut cur = p.clone();
    for _ in 1..levels {
        cur = swd::pyr_down(&cur);
    }
    cur
}

fn l2(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| ((x - y) as f64).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// Runs the whole evaluation on backend `B` (an inference backend: BatchNorm uses running stats).
pub fn evaluate<B: Backend>(opts: &EvalOptions, device: &B::Device) -> Result<EvalReport> {
    use rayon::prelude::*;
    let start = Instant::now();
    let run = &opts.run;
    let ckpt = if opts.fake_dir.is_some() && opts.data.is_some() && !run.is_dir() {
        None
    } else {
        Some(find_checkpoint(run, opts.checkpoint)?)
    };
    let data = match (&opts.data, &ckpt) {
        (Some(d), _) => d.clone(),
        (None, Some((_, s))) if !s.data_path.is_empty() => PathBuf::from(&s.data_path),
        _ => bail!("no shard known for this run; pass --data SHARD"),
    };
    let shard = Shard::open(&data)?;
    let (h, w) = (shard.height(), shard.width());
    if let Some((_, s)) = &ckpt {
        facegan_trainer::run::check_shard_matches(&shard, &s.config)?;
    }
    let holdout = shard.indices(Split::Holdout);
    let train = shard.indices(Split::Train);
    if holdout.is_empty() {
        bail!(
            "{}: the shard has no holdout images (preprocess with --holdout > 0)",
            data.display()
        );
    }
    let n = opts.n.min(holdout.len()).min(train.len()).max(1);
    let out_dir = run.join("eval");
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("{}: cannot create", out_dir.display()))?;

    let holdout_ids = sample_ids(&holdout, n, opts.seed ^ 1);
    let train_ids = sample_ids(&train, n, opts.seed ^ 2);
    let holdout_imgs = shard_images(&shard, &holdout_ids);
    let train_imgs = shard_images(&shard, &train_ids);

    let models = match &ckpt {
        Some((info, s)) => {
            let (g, which) =
                checkpoint::load_sampling_generator::<B>(&info.dir, &s.config, device)?;
            Some((
                g,
                checkpoint::load_discriminator::<B>(&info.dir, &s.config, device)?,
                s.config.model.latent,
                which,
            ))
        }
        None => None,
    };
    let (fake_imgs, source) = match (&opts.fake_dir, &models) {
        (Some(dir), _) => (
            load_fake_dir(dir, &shard, n)?,
            format!("folder {}", dir.display()),
        ),
        (None, Some((g, _, latent, which))) => {
            let z = latents::<B>(n, *latent, opts.seed, device);
            (generate(g, &z, *latent, device), which.to_string())
        }
        (None, None) => unreachable!("a checkpoint is required without --fake-dir"),
    };
    let n_fake = fake_imgs.len() / (3 * h * w);
    let n_side = n.min(n_fake);

    // SWD: fakes vs holdout, and the train-vs-holdout noise floor.
    let t = Instant::now();
    let pyr_hold = swd::pyramids(&to_planes(&holdout_imgs, h, w));
    let pyr_train = swd::pyramids(&to_planes(&train_imgs, h, w));
    let pyr_fake = swd::pyramids(&to_planes(&fake_imgs, h, w));
    let swd_fake = swd::swd(&pyr_fake[..n_side], &pyr_hold[..n_side], opts.seed);
    let swd_floor = swd::swd(&pyr_train[..n_side], &pyr_hold[..n_side], opts.seed);
    let swd_seconds = t.elapsed().as_secs_f64();

    // D accuracy (eval mode), on holdout and on as many train images.
    let (acc_hold, acc_train) = match &models {
        Some((_, d, _, _)) => {
            let p_fake = discriminate(d, &fake_imgs[..n_side * 3 * h * w], h, w, device);
            let p_hold = discriminate(d, &holdout_imgs, h, w, device);
            let p_train = discriminate(d, &train_imgs, h, w, device);
            (
                Some(DAccuracy::from_probs(&p_hold, &p_fake)),
                Some(DAccuracy::from_probs(&p_train, &p_fake)),
            )
        }
        None => (None, None),
    };

    // Grids.
    let fake_rgb = chw_to_rgb_images(&fake_imgs[..n_side.min(64) * 3 * h * w], h, w);
    save_png(&out_dir.join("grid.png"), &grid(&fake_rgb, 8))?;
    let real_rgb = chw_to_rgb_images(&holdout_imgs[..n.min(64) * 3 * h * w], h, w);
    save_png(&out_dir.join("real.png"), &grid(&real_rgb, 8))?;

    // Interpolations: 8 rows of 10 slerp steps, and a GIF of a 4x4 grid morphing through keys.
    if let Some((g, _, latent, _)) = &models {
        let latent = *latent;
        let ends = latents::<B>(16, latent, opts.seed ^ 0x1E, device);
        let mut z = Vec::new();
        for r in 0..8 {
            let (a, b) = (
                &ends[2 * r * latent..(2 * r + 1) * latent],
                &ends[(2 * r + 1) * latent..(2 * r + 2) * latent],
            );
            for k in 0..10 {
                z.extend(slerp(a, b, k as f32 / 9.0));
            }
        }
        let imgs = generate(g, &z, latent, device);
        save_png(
            &out_dir.join("interp.png"),
            &grid_from_chw(&imgs, 80, h, w, 10),
        )?;
        let keys = latents::<B>(16 * 4, latent, opts.seed ^ 0x61F, device);
        let mut frames = Vec::new();
        for key in 0..4 {
            let next = (key + 1) % 4;
            for k in 0..8 {
                let t = k as f32 / 8.0;
                let mut zf = Vec::new();
                for cell in 0..16 {
                    let a = &keys[(key * 16 + cell) * latent..(key * 16 + cell + 1) * latent];
                    let b = &keys[(next * 16 + cell) * latent..(next * 16 + cell + 1) * latent];
                    zf.extend(slerp(a, b, t));
                }
                frames.push(grid_from_chw(
                    &generate(g, &zf, latent, device),
                    16,
                    h,
                    w,
                    4,
                ));
            }
        }
        artifacts::write_gif(&out_dir.join("interp.gif"), &frames, 120)?;
    }

    // Memorisation check: 8 fakes, 3 nearest train images at the low-pass level.
    let fake_planes = to_planes(&fake_imgs[..n_side.min(8) * 3 * h * w], h, w);
    let fake_low: Vec<Planes> = fake_planes.iter().map(low_pass).collect();
    let train_low: Vec<(usize, Planes)> = train
        .par_iter()
        .map(|&i| (i, low_pass(&Planes::from_hwc_u8(h, w, shard.image(i)))))
        .collect();
    let nn_level = (fake_low[0].h, fake_low[0].w);
    let mut neighbours = Vec::new();
    let mut nn_tiles = Vec::new();
    let fake_tiles = chw_to_rgb_images(&fake_imgs[..fake_planes.len() * 3 * h * w], h, w);
    for (fi, f) in fake_low.iter().enumerate() {
        let mut d: Vec<(f64, usize)> = train_low
            .par_iter()
            .map(|(i, t)| (l2(&f.data, &t.data), *i))
            .collect();
        d.sort_by(|a, b| a.0.total_cmp(&b.0));
        d.truncate(3);
        nn_tiles.push(fake_tiles[fi].clone());
        for &(_, i) in &d {
            let hwc = shard.image(i).to_vec();
            nn_tiles.push(
                image::RgbImage::from_raw(w as u32, h as u32, hwc).expect("shard image size"),
            );
        }
        neighbours.push(Neighbours {
            fake_index: fi,
            train_paths: d
                .iter()
                .map(|&(_, i)| shard.meta().images[i].path.clone())
                .collect(),
            distances: d.iter().map(|&(v, _)| v).collect(),
        });
    }
    save_png(&out_dir.join("nn.png"), &grid(&nn_tiles, 4))?;

    let checkpoint_json = ckpt.as_ref().map(|(info, s)| {
        let hash = std::fs::read(info.dir.join("generator.bin"))
            .map(|b| format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&b)))
            .unwrap_or_default();
        serde_json::json!({
            "dir": info.dir.display().to_string(),
            "epoch": s.epoch,
            "step": s.step,
            "images_seen": s.images_seen,
            "generator_xxh3": hash,
        })
    });
    let report = EvalReport {
        tool_version: TOOL_VERSION.into(),
        run: run.display().to_string(),
        data: data.display().to_string(),
        source,
        checkpoint: checkpoint_json,
        config: ckpt.as_ref().map(|(_, s)| s.config.clone()),
        settings: serde_json::json!({"n": opts.n, "images_per_side": n_side, "seed": opts.seed,
            "checkpoint": format!("{:?}", opts.checkpoint),
            "swd": {"patch": swd::PATCH, "patches_per_image": swd::PATCHES_PER_IMAGE,
                    "dir_repeats": swd::DIR_REPEATS, "dirs_per_repeat": swd::DIRS_PER_REPEAT}}),
        swd_fake_vs_holdout: swd_fake,
        swd_train_vs_holdout: swd_floor,
        d_accuracy_holdout: acc_hold,
        d_accuracy_train: acc_train,
        nearest_neighbours: neighbours,
        nn_level,
        swd_seconds,
        seconds: start.elapsed().as_secs_f64(),
        html_path: out_dir.join("report.html"),
    };
    artifacts::write_atomic(
        &out_dir.join("report.json"),
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    let metrics = artifacts::read_metrics(&run.join("metrics.csv")).unwrap_or_default();
    report::write_html(&out_dir, &report, &metrics)?;
    Ok(report)
}
