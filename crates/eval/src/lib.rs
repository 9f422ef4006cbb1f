//! Stage 3 of the pipeline: evaluate a trained run. Reads `RUN/checkpoints/` and a shard, writes
//! `RUN/eval/`: `grid.png`, `real.png`, `interp.png`, `interp.gif`, `nn.png`, `report.json` and
//! `report.html`.
//!
//! [`evaluate`] is the whole stage as a sequence of steps, each in its own module:
//! - [`inputs`]: which checkpoint ([`CheckpointChoice`], [`find_checkpoint`]), the shard, the
//!   real images sampled from it, and the fakes (generated, or a `--fake-dir` folder).
//! - [`generate`]: a checkpoint's G and D ([`generate::Models`]) run in batches, and slerp.
//! - [`scores`]: SWD against the holdout beside its noise floor, and D accuracy.
//! - [`inception_scores`]: FID, KID and precision/recall on pytorch-fid's Inception features,
//!   when its weight file is given or found.
//! - [`interp`]: the interpolation grid and GIF.
//! - [`memorisation`]: the nearest training images of a few fakes.
//! - [`report`]: `report.json` ([`EvalReport`]) and the self-contained `report.html`.
//! - [`swd`]: the ProGAN sliced Wasserstein distance (from `facegan-metrics`).
//! - [`sample`], [`export`]: `facegan sample` (latent files too) and `facegan export`.
//! - [`project`]: `facegan project`, a real face's latent found by Adam on z through G and D.
//! - [`compare`]: `facegan compare`: several runs' quality curves with their bands.
//! - [`truncation`]: `--truncation-sweep`, the scores at each truncation PSI.

// CI fails on a dependency the crate no longer uses (unit-test builds also see dev-dependencies).
#![cfg_attr(not(test), deny(unused_crate_dependencies))]

pub mod compare;
pub mod export;
pub mod generate;
pub mod inception_scores;
pub mod inputs;
pub mod interp;
pub mod memorisation;
pub mod project;
pub mod report;
pub mod sample;
pub mod scores;
pub mod truncation;
pub use facegan_metrics::swd;

pub use facegan_inception::Resize as FidResize;
pub use inputs::{find_checkpoint, load_fake_dir, Against, CheckpointChoice};
pub use memorisation::Neighbours;
pub use report::EvalReport;
pub use scores::DAccuracy;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use burn::tensor::backend::Backend;
use facegan_common::images::{chw_to_rgb_images, grid, save_png};
use facegan_common::TOOL_VERSION;

use generate::Models;
use inputs::{Fakes, Reals};

#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub run: PathBuf,
    pub data: Option<PathBuf>,
    pub checkpoint: CheckpointChoice,
    pub n: usize,
    pub fake_dir: Option<PathBuf>,
    pub seed: u64,
    /// What the fakes are scored against (`--against`).
    pub against: Against,
    /// pytorch-fid's Inception weight file (`--inception`); else `FACEGAN_INCEPTION` or the
    /// cache location; without one, FID and its kin are skipped with a note.
    pub inception: Option<PathBuf>,
    /// The SHA-256 of other Inception weights the user vouches for (`make check-fid`'s test
    /// network); scores with them are labelled as not comparable.
    pub inception_sha256: Option<String>,
    /// How images reach the network's 299x299 (`--fid-resize`): pytorch-fid's bilinear resize
    /// (the default) or clean-fid's PIL bicubic.
    pub fid_resize: FidResize,
    /// Also score the fakes at each truncation PSI (`--truncation-sweep`).
    pub truncation_sweep: bool,
    /// Where the report and its images go (`--out`); `None`: `RUN/eval/`.
    pub out: Option<PathBuf>,
}

/// Runs the whole evaluation on backend `B` (an inference backend: BatchNorm uses running stats).
pub fn evaluate<B: Backend>(opts: &EvalOptions, device: &B::Device) -> Result<EvalReport> {
    let start = Instant::now();
    // The weight file is checked before anything slow runs.
    let inception_weights = match facegan_inception::weights::locate(opts.inception.as_deref())? {
        Some(path) => Some(inception_scores::InceptionSetup {
            weights: facegan_inception::weights::check(&path, opts.inception_sha256.as_deref())?,
            resize: opts.fid_resize,
        }),
        None => {
            eprintln!(
                "note: no FID, KID or precision/recall: {}",
                facegan_inception::weights::how_to_get()
            );
            None
        }
    };
    let src = inputs::resolve(opts)?;
    let out_dir = inputs::create_out_dir(&opts.run, opts.out.as_deref())?;
    let reals = inputs::sample_reals(&src.shard, opts.n, opts.seed);
    let models = src.ckpt.as_ref().map(|c| Models::<B>::load(c, device));
    let models = models.transpose()?;
    let reference = inputs::reference(&opts.against, &src.shard, &reals, opts.n, opts.seed)?;
    let fakes = inputs::fakes(opts, &src.shard, reference.n, models.as_ref(), device)?;

    let swd = scores::swd_scores(&reference, &fakes, (reals.h, reals.w), opts.seed);
    let (acc_hold, acc_train) = models
        .as_ref()
        .map(|m| scores::d_accuracy(&m.d, &reals, &fakes, device))
        .unzip();

    write_grids(&out_dir, &reals, &fakes)?;
    if let Some(m) = &models {
        let size = (reals.h, reals.w);
        interp::write_interpolations(&out_dir, &m.g, m.latent, opts.seed, size, device)?;
    }
    let fake_imgs = &fakes.images[..fakes.n_side * reals.per_image()];
    let nn = memorisation::check(&out_dir, &src.shard, fake_imgs)?;
    let inception = inception_weights.as_ref().and_then(|setup| {
        let n = reference.n.min(fakes.n_side);
        let real_imgs = &reference.images[..n * reals.per_image()];
        let fake_imgs = &fake_imgs[..n * reals.per_image()];
        let (h, w) = (reals.h, reals.w);
        inception_scores::score::<B>(
            setup, &src.data, real_imgs, fake_imgs, h, w, opts.seed, device,
        )
        .map(|mut s| {
            s.reals = reference.name.clone();
            s
        })
        .map_err(|e| eprintln!("warning: no FID, KID or precision/recall: {e:#}"))
        .ok()
    });

    let truncation = match (&models, opts.truncation_sweep) {
        (Some(m), true) => truncation::sweep::<B>(
            m,
            &reference,
            (reals.h, reals.w),
            &fake_imgs[..reference.n.min(fakes.n_side) * reals.per_image()],
            (&swd.fake_vs_holdout, inception.as_ref()),
            opts.seed,
            inception_weights.as_ref().map(|s| (s, src.data.as_path())),
            &out_dir,
            device,
        )?,
        _ => Vec::new(),
    };

    let report = EvalReport {
        tool_version: TOOL_VERSION.into(),
        run: opts.run.display().to_string(),
        data: src.data.display().to_string(),
        source: fakes.source,
        checkpoint: src.ckpt.as_ref().map(report::checkpoint_json),
        config: src.ckpt.map(|(_, s)| s.config),
        settings: report::settings_json(opts, fakes.n_side),
        swd_fake_vs_holdout: swd.fake_vs_holdout,
        swd_train_vs_holdout: swd.train_vs_holdout,
        d_accuracy_holdout: acc_hold,
        d_accuracy_train: acc_train,
        nearest_neighbours: nn.neighbours,
        nn_level: nn.level,
        swd_seconds: swd.seconds,
        against: reference.name.clone(),
        floor_second_sample: reference.second_name.clone(),
        inception,
        truncation,
        seconds: start.elapsed().as_secs_f64(),
        html_path: out_dir.join("report.html"),
    };
    report::write(&out_dir, &report)?;
    Ok(report)
}

/// `grid.png`: up to 64 fakes; `real.png`: up to 64 holdout images (8 per row).
fn write_grids(out_dir: &Path, reals: &Reals, fakes: &Fakes) -> Result<()> {
    let (h, w, per) = (reals.h, reals.w, reals.per_image());
    let fake_rgb = chw_to_rgb_images(&fakes.images[..fakes.n_side.min(64) * per], h, w);
    save_png(&out_dir.join("grid.png"), &grid(&fake_rgb, 8))?;
    let real_rgb = chw_to_rgb_images(&reals.holdout[..reals.n.min(64) * per], h, w);
    save_png(&out_dir.join("real.png"), &grid(&real_rgb, 8))?;
    Ok(())
}
