//! `preprocess`, `inspect` and `synth`: making and looking at shards.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use facegan_common::images::grid_from_hwc;
use facegan_preprocess::{parse_size, Crop, Filter, PreprocessConfig};
use facegan_shard::{Shard, Split};

use super::stderr_is_tty;

#[derive(Args)]
pub struct PreprocessArgs {
    /// Folder of face photos (searched recursively for jpg, jpeg, png).
    #[arg(long)]
    input: PathBuf,
    /// Shard file to write.
    #[arg(long)]
    output: PathBuf,
    /// Output size HxW.
    #[arg(long, default_value = "96x80")]
    size: String,
    /// `none` (squeeze the whole frame, the seed's behaviour) or `center:N` (N pixels wide).
    #[arg(long, default_value = "none")]
    crop: String,
    /// Resize filter: nearest, box, bilinear, hamming, catmullrom, mitchell, lanczos3.
    #[arg(long, default_value = "catmullrom")]
    filter: String,
    /// Fraction of images held out from training (ignored for files named in CelebA's
    /// list_eval_partition.txt, when it sits beside or above the input).
    #[arg(long, default_value_t = 0.05)]
    holdout: f64,
    /// Skip images whose width or height is below this.
    #[arg(long, default_value_t = 32)]
    min_size: u32,
    /// Drop near-duplicates (they are always reported).
    #[arg(long)]
    dedupe: bool,
}

pub fn preprocess(a: PreprocessArgs, stop: &AtomicBool) -> Result<()> {
    let (height, width) = parse_size(&a.size)?;
    let mut cfg = PreprocessConfig::new(&a.input, &a.output);
    cfg.height = height;
    cfg.width = width;
    cfg.crop = Crop::parse(&a.crop)
        .with_context(|| format!("--crop {:?}: use none or center:N", a.crop))?;
    cfg.filter = Filter::parse(&a.filter)
        .with_context(|| format!("--filter {:?}: use one of {}", a.filter, Filter::NAMES))?;
    cfg.holdout = a.holdout;
    cfg.min_size = a.min_size;
    cfg.dedupe = a.dedupe;
    cfg.progress = stderr_is_tty();
    let report = facegan_preprocess::run(&cfg, stop)?;
    println!("{}", report.summary());
    println!(
        "wrote {} ({}x{}) and {}",
        a.output.display(),
        height,
        width,
        facegan_preprocess::report_path(&a.output).display()
    );
    Ok(())
}

#[derive(Args)]
pub struct InspectArgs {
    /// Shard file.
    file: PathBuf,
    /// Print a JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Recompute the payload checksum.
    #[arg(long)]
    verify: bool,
    /// Also write a PNG grid of images (the first 64, or those named by --paths).
    #[arg(long)]
    grid: Option<PathBuf>,
    /// Comma-separated source paths (as stored in the shard) for --grid.
    #[arg(long, value_delimiter = ',')]
    paths: Vec<String>,
    /// Also write the train split, in id order, as a NumPy `.npy` of u8
    /// `[N, H, W, 3]` (for other frameworks to train on the same pixels, e.g. the PyTorch twin).
    #[arg(long)]
    export_train: Option<PathBuf>,
}

pub fn inspect(a: InspectArgs) -> Result<()> {
    let shard = Shard::open(&a.file)?;
    if a.verify {
        shard.verify()?;
    }
    if let Some(out) = &a.export_train {
        facegan_common::write_atomic(out, &shard.train_split_npy())
            .with_context(|| format!("{}: cannot write the train split", out.display()))?;
        let n = shard.indices(Split::Train).len();
        eprintln!("wrote {n} train images to {}", out.display());
    }
    if let Some(out) = &a.grid {
        let ids: Vec<usize> = if a.paths.is_empty() {
            (0..shard.len().min(64)).collect()
        } else {
            a.paths
                .iter()
                .map(|p| {
                    shard.position_of_path(p).with_context(|| {
                        format!("{}: no image {p:?} in the shard", a.file.display())
                    })
                })
                .collect::<Result<_>>()?
        };
        let cols = if a.paths.is_empty() {
            8
        } else {
            a.paths.len().min(8)
        };
        let images = ids.iter().map(|&i| shard.image(i));
        let grid = grid_from_hwc(images, shard.height(), shard.width(), cols);
        facegan_common::images::save_png(out, &grid)?;
        eprintln!("wrote {} images to {}", ids.len(), out.display());
    }
    let summary = shard.summary(a.verify);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!("{summary}");
    }
    Ok(())
}

#[derive(Args)]
pub struct SynthArgs {
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 2000)]
    count: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub fn synth(a: SynthArgs) -> Result<()> {
    let t = Instant::now();
    let paths = facegan_preprocess::synth::write_synth_set(&a.out, a.count, a.seed)?;
    println!(
        "wrote {} synthetic faces (178x218 JPEG) to {} in {:.1} s",
        paths.len(),
        a.out.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
