//! `eval`, `compare`, `sample` and `export`: what a trained run gives.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use facegan_trainer::device::{self, ResolvedDevice};

use super::{at_least_one, pick_device};

#[derive(Args)]
pub struct EvalArgs {
    #[arg(long, default_value = "runs/default")]
    run: PathBuf,
    /// Shard (default: the one the run was trained on, from its config).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Which checkpoint: `latest`, `best` (the best quality probe), an epoch number, or
    /// `images:COUNT` (one kept by `train --keep-at`).
    #[arg(long, default_value = "latest")]
    checkpoint: String,
    /// Images per side for SWD, FID and D accuracy (capped by the size of the reference set:
    /// the holdout by default).
    #[arg(long, default_value_t = 10000, value_parser = at_least_one())]
    n: usize,
    /// Evaluate this folder of images instead of the run's generator.
    #[arg(long)]
    fake_dir: Option<PathBuf>,
    /// What the fakes are scored against: `holdout` (the default, as the live probe),
    /// `train` (the faces the generator learned from; the floor is a second, disjoint train
    /// sample) or a folder of real faces (decoded and resized like the shard; floor: a train
    /// sample). The report names it beside every score.
    #[arg(long, default_value = "holdout")]
    against: String,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    #[arg(long, default_value = "auto")]
    device: String,
    /// pytorch-fid's Inception weights (pt_inception-2015-12-05-6726825d.pth) for FID, KID and
    /// precision/recall; default: FACEGAN_INCEPTION, else ~/.cache/facegan/. Without them
    /// those scores are skipped, with a note on where to get the file.
    #[arg(long)]
    inception: Option<PathBuf>,
    /// Accept Inception weights with this SHA-256 instead of pytorch-fid's (scores are then
    /// labelled as not comparable with published ones).
    #[arg(long)]
    inception_sha256: Option<String>,
    /// How images are resized to the Inception network's 299x299: `pytorch-fid` (bilinear
    /// without corner alignment, as pytorch-fid does) or `clean-fid` (PIL's bicubic on float
    /// channels, clean-fid's resize; the network stays pytorch-fid's). The report names it.
    #[arg(long, default_value = "pytorch-fid")]
    fid_resize: String,
    /// Also score the fakes at each truncation PSI (1, 0.9, 0.8, 0.7, 0.5, 0.3; the same
    /// latents): SWD with its spread, and FID, KID, precision/recall with Inception weights.
    /// Writes truncation.png (a row of faces per PSI).
    #[arg(long)]
    truncation_sweep: bool,
    /// Folder for the report and its images (default: RUN/eval), so the checkpoints of one run
    /// (say `images:43600` and `images:87100`) can be scored side by side.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn eval(a: EvalArgs) -> Result<()> {
    let opts = facegan_eval::EvalOptions {
        run: a.run,
        data: a.data,
        checkpoint: facegan_eval::CheckpointChoice::parse(&a.checkpoint)?,
        n: a.n,
        fake_dir: a.fake_dir,
        seed: a.seed,
        against: facegan_eval::Against::parse(&a.against)?,
        inception: a.inception,
        inception_sha256: a.inception_sha256,
        fid_resize: facegan_eval::FidResize::parse(&a.fid_resize)?,
        truncation_sweep: a.truncation_sweep,
        out: a.out,
    };
    let dev = pick_device(&a.device)?;
    let report = with_backend!(dev, inference, |B, device| facegan_eval::evaluate::<B>(
        &opts, &device
    ))?;
    println!("{}", report.summary_line());
    if let Some(scores) = &report.inception {
        println!("{}", scores.summary());
    }
    for line in facegan_eval::truncation::summary(&report.truncation) {
        println!("{line}");
    }
    println!("report: {}", report.html_path.display());
    Ok(())
}

#[derive(Args)]
pub struct SampleArgs {
    #[arg(long, default_value = "runs/default")]
    run: PathBuf,
    #[arg(long, default_value_t = 64, value_parser = at_least_one())]
    n: usize,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// `faces.png` for a grid, or a folder path ending in `/` for one PNG per face.
    #[arg(long)]
    out: PathBuf,
    /// Which checkpoint: `latest`, `best` (the best quality probe), an epoch number, or
    /// `images:COUNT` (one kept by `train --keep-at`).
    #[arg(long, default_value = "latest")]
    checkpoint: String,
    #[arg(long, default_value = "auto")]
    device: String,
    /// Normalise with each batch's own statistics (BatchNorm train mode) instead of the running
    /// statistics: a diagnostic for runs whose eval-mode samples look washed out early on.
    #[arg(long)]
    batch_stats: bool,
    /// The truncation trick: each latent scaled toward the prior's mean by PSI in [0, 1]
    /// (fewer odd faces, less variety; 1 is none).
    #[arg(long)]
    truncation: Option<f32>,
    /// Instead of samples, one grid row per PSI (1, 0.9, 0.8, 0.7, 0.5, 0.3) of the same --n
    /// latents, to `--out` (a PNG).
    #[arg(long, conflicts_with_all = ["truncation", "batch_stats"])]
    truncation_sweep: bool,
    /// Draw the faces of this latent file (from --save-latents, `interp` or `project`)
    /// instead of --n latents from --seed.
    #[arg(long, conflicts_with_all = ["truncation_sweep", "seed", "n"])]
    latents: Option<PathBuf>,
    /// Also write the latents that drew the faces (after any truncation) to this file
    /// (safetensors, see docs/export.md).
    #[arg(long)]
    save_latents: Option<PathBuf>,
}

#[derive(Args)]
pub struct InterpArgs {
    #[arg(long, default_value = "runs/default")]
    run: PathBuf,
    /// Which checkpoint: `latest`, `best` (the best quality probe), an epoch number, or
    /// `images:COUNT` (one kept by `train --keep-at`).
    #[arg(long, default_value = "latest")]
    checkpoint: String,
    /// Key latents: one per seed (the first face `facegan sample --seed S` draws), in order.
    #[arg(
        long,
        value_delimiter = ',',
        required_unless_present = "latents",
        conflicts_with = "latents"
    )]
    seeds: Vec<u64>,
    /// Key latents: every latent of each latent file, file after file (e.g. two faces from
    /// `facegan project`).
    #[arg(long, value_delimiter = ',')]
    latents: Vec<PathBuf>,
    /// Faces from one key to the next, both included.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Folder for morph.png, morph.gif and morph.safetensors.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value = "auto")]
    device: String,
}

#[derive(Args)]
pub struct ProjectArgs {
    #[arg(long, default_value = "runs/default")]
    run: PathBuf,
    /// Which checkpoint: `latest`, `best` (the best quality probe), an epoch number, or
    /// `images:COUNT` (one kept by `train --keep-at`).
    #[arg(long, default_value = "latest")]
    checkpoint: String,
    /// Real faces, aligned and framed like the training set (CelebA's aligned crops for a
    /// CelebA run); each goes through the run's shard's decode, crop and resize.
    #[arg(long, value_delimiter = ',', required_unless_present = "shard_faces")]
    image: Vec<PathBuf>,
    /// Instead, H held-out and T training faces of the shard (`--shard-faces 8,8`), with
    /// summary.json: how many reconstructions are closer to their own face than to 95% of the
    /// held-out faces, and the mean error on held-out against training faces (memorisation).
    #[arg(long, value_name = "H,T")]
    shard_faces: Option<String>,
    /// Folder: OUT/<image name>/ gets target.png, reconstruction.png, side_by_side.png,
    /// latent.safetensors, loss.png and projection.json.
    #[arg(long)]
    out: PathBuf,
    /// The shard whose preprocessing the faces go through (default: the run's).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Latents optimised at once from seeded starts; the closest reconstruction wins.
    #[arg(long, default_value_t = 4)]
    restarts: usize,
    #[arg(long, default_value_t = 300)]
    steps: usize,
    /// Adam's learning rate on z.
    #[arg(long, default_value_t = 0.05)]
    lr: f64,
    /// Weight of the feature loss (D's block activations) beside the pixel loss.
    #[arg(long, default_value_t = 1.0)]
    feature_weight: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value = "auto")]
    device: String,
}

/// `H,T`: two counts.
fn parse_pair(s: &str) -> Result<(usize, usize)> {
    let counts: Vec<Option<usize>> = s.split(',').map(|c| c.trim().parse().ok()).collect();
    match counts[..] {
        [Some(h), Some(t)] => Ok((h, t)),
        _ => anyhow::bail!("--shard-faces {s}: give two counts, H,T (held-out, training)"),
    }
}

pub fn project(a: ProjectArgs) -> Result<()> {
    for image in &a.image {
        crate::existing(image, "image")?;
    }
    let opts = facegan_eval::project::ProjectOptions {
        run: a.run,
        checkpoint: facegan_eval::CheckpointChoice::parse(&a.checkpoint)?,
        images: a.image,
        shard_faces: a.shard_faces.as_deref().map(parse_pair).transpose()?,
        out: a.out,
        data: a.data,
        restarts: a.restarts,
        steps: a.steps,
        lr: a.lr,
        feature_weight: a.feature_weight,
        seed: a.seed,
    };
    let dev = pick_device(&a.device)?;
    // The autodiff backend: gradients flow to the latents (the networks run as at inference).
    let lines = with_backend!(dev, train, |B, device| facegan_eval::project::project::<B>(
        &opts, &device
    ))?;
    for line in lines {
        println!("{line}");
    }
    Ok(())
}

pub fn interp(a: InterpArgs) -> Result<()> {
    use facegan_eval::interp::{write_morph, MorphKeys, MorphOptions};
    let opts = MorphOptions {
        run: a.run,
        checkpoint: facegan_eval::CheckpointChoice::parse(&a.checkpoint)?,
        keys: if a.latents.is_empty() {
            MorphKeys::Seeds(a.seeds)
        } else {
            MorphKeys::Files(a.latents)
        },
        steps: a.steps,
        out: a.out,
    };
    let dev = pick_device(&a.device)?;
    let written = with_backend!(dev, inference, |B, device| write_morph::<B>(&opts, &device))?;
    println!("wrote {written}");
    Ok(())
}

pub fn sample(a: SampleArgs) -> Result<()> {
    let choice = facegan_eval::CheckpointChoice::parse(&a.checkpoint)?;
    let as_dir = a.out.to_string_lossy().ends_with('/') || a.out.is_dir();
    if let Some(psi) = a.truncation {
        facegan_eval::sample::check_psi(psi)?;
    }
    let dev = pick_device(&a.device)?;
    use facegan_eval::sample::{write_samples, write_truncation_sweep, SampleOptions};
    let opts = SampleOptions {
        run: a.run.clone(),
        checkpoint: choice,
        n: a.n,
        seed: a.seed,
        truncation: a.truncation,
        out: a.out.clone(),
        as_dir,
        latents: a.latents.clone(),
        save_latents: a.save_latents.clone(),
    };
    let written = if a.truncation_sweep {
        with_backend!(dev, inference, |B, device| {
            write_truncation_sweep::<B>(&a.run, choice, a.n, a.seed, &a.out, &device)
        })
    } else if a.batch_stats {
        // The autodiff backend: BatchNorm normalises with each batch's own statistics.
        with_backend!(dev, train, |B, device| write_samples::<B>(&opts, &device))
    } else {
        with_backend!(dev, inference, |B, device| write_samples::<B>(
            &opts, &device
        ))
    }?;
    println!("wrote {written}");
    Ok(())
}

#[derive(Args)]
pub struct ExportArgs {
    #[arg(long, default_value = "runs/default")]
    run: PathBuf,
    /// File to write; a folder (existing, or a path ending in `/`) gets `generator.safetensors`.
    #[arg(long)]
    out: PathBuf,
    /// Which checkpoint: `latest`, `best` (the best quality probe), an epoch number, or
    /// `images:COUNT` (one kept by `train --keep-at`).
    #[arg(long, default_value = "latest")]
    checkpoint: String,
}

pub fn export(a: ExportArgs) -> Result<()> {
    let choice = facegan_eval::CheckpointChoice::parse(&a.checkpoint)?;
    let names_a_folder = a.out.is_dir() || a.out.as_os_str().to_string_lossy().ends_with('/');
    let out = if names_a_folder {
        std::fs::create_dir_all(&a.out)
            .with_context(|| format!("{}: cannot create the folder", a.out.display()))?;
        a.out.join("generator.safetensors")
    } else {
        a.out
    };
    let info = facegan_eval::export::export_safetensors(&a.run, choice, &out)?;
    println!("{info}");
    Ok(())
}

#[derive(Args)]
pub struct CompareArgs {
    /// Run directories (each with a `quality.csv`).
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Folder for `compare-images.png`, `compare-minutes.png` and `compare.md`.
    #[arg(long, default_value = "compare")]
    out: PathBuf,
}

pub fn compare(a: CompareArgs) -> Result<()> {
    let c = facegan_eval::compare::compare(&a.runs, &a.out)?;
    print!("{}", c.table);
    for f in &c.files {
        println!("wrote {}", f.display());
    }
    Ok(())
}
