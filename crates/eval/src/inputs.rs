//! What an evaluation reads: the checkpoint (`facegan_rundir::choice`), the shard, the real
//! images sampled from it, and the fakes (from the checkpoint's sampling
//! generator, or a `--fake-dir` folder decoded like the shard).

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use burn::tensor::backend::Backend;
use facegan_rundir::checkpoint::{checkpoints_dir, CheckpointInfo};
pub use facegan_rundir::choice::{find_checkpoint, CheckpointChoice};
use facegan_rundir::TrainState;
use facegan_shard::{Shard, Split};

use crate::generate::{generate, latents, Models};
use crate::swd::{sample_ids, Planes};
use crate::EvalOptions;

/// The checkpoint and the shard an evaluation scores against.
pub(crate) struct Sources {
    /// Absent only for `--fake-dir` with `--data` and no run folder.
    pub ckpt: Option<(CheckpointInfo, TrainState)>,
    /// `--data`, else the shard the run was trained on.
    pub data: PathBuf,
    pub shard: Shard,
}

/// Finds the checkpoint and opens the shard: it must match the checkpoint's model and have a
/// holdout split.
pub(crate) fn resolve(opts: &EvalOptions) -> Result<Sources> {
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
    if let Some((_, s)) = &ckpt {
        s.config.check_shard(&shard)?;
    }
    if shard.indices(Split::Holdout).is_empty() {
        bail!(
            "{}: the shard has no holdout images (preprocess with --holdout > 0)",
            data.display()
        );
    }
    Ok(Sources { ckpt, data, shard })
}

/// Creates the report's folder, `out` or else `RUN/eval/` (with its parents), and returns it.
/// An `out` inside a run's checkpoints, or another run's `eval/`, is refused: the report would
/// sit among checkpoint files, or pass for that run's own.
pub(crate) fn create_out_dir(run: &Path, out: Option<&Path>) -> Result<PathBuf> {
    if let Some(out) = out {
        check_out_dir(run, out)?;
    }
    let out_dir = out.map_or_else(|| run.join("eval"), Path::to_path_buf);
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("{}: cannot create", out_dir.display()))?;
    Ok(out_dir)
}

fn check_out_dir(run: &Path, out: &Path) -> Result<()> {
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let (run_abs, out_abs) = (absolute(run), absolute(out));
    let a_runs_checkpoints = |a: &Path| {
        a.parent().is_some_and(|r| {
            a == checkpoints_dir(r) && (r == run_abs || r.join("config.toml").is_file())
        })
    };
    if out_abs.ancestors().any(a_runs_checkpoints) {
        bail!(
            "--out {}: inside a run's checkpoints folder; pick a folder of its own (say {})",
            out.display(),
            run.join("eval-NAME").display()
        );
    }
    if let Some(other) = out_abs.parent() {
        let is_eval = out_abs.file_name().is_some_and(|n| n == "eval");
        if is_eval && other != run_abs && checkpoints_dir(other).is_dir() {
            bail!(
                "--out {}: the eval folder of another run ({}); pick a folder of its own",
                out.display(),
                other.display()
            );
        }
    }
    Ok(())
}

/// Real images sampled from the shard, `[3, h, w]` f32 planes in [0, 1] back to back.
pub(crate) struct Reals {
    pub h: usize,
    pub w: usize,
    /// Images per side: `--n` capped by the holdout and train sizes (at least 1).
    pub n: usize,
    pub holdout: Vec<f32>,
    pub train: Vec<f32>,
}

impl Reals {
    /// Floats per image.
    pub fn per_image(&self) -> usize {
        3 * self.h * self.w
    }
}

/// `n` holdout and `n` train images in a seeded order (the trainer's quality probe draws the
/// same holdout sample).
pub(crate) fn sample_reals(shard: &Shard, n: usize, seed: u64) -> Reals {
    let holdout = shard.indices(Split::Holdout);
    let train = shard.indices(Split::Train);
    let n = n.min(holdout.len()).min(train.len()).max(1);
    let holdout_ids = sample_ids(&holdout, n, seed ^ 1);
    let train_ids = sample_ids(&train, n, seed ^ 2);
    Reals {
        h: shard.height(),
        w: shard.width(),
        n,
        holdout: shard_images(shard, &holdout_ids),
        train: shard_images(shard, &train_ids),
    }
}

/// What the fakes are scored against (`facegan eval --against`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Against {
    /// The shard's holdout (the default, and what the trainer's live probe uses).
    Holdout,
    /// The shard's training split (the faces the generator learned from; StyleGAN's "full"
    /// protocol scores against all of it, here `--n` of them).
    Train,
    /// A folder of real faces, decoded and resized like the shard.
    Dir(PathBuf),
}

impl Against {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "holdout" => Against::Holdout,
            "train" => Against::Train,
            dir => {
                let p = PathBuf::from(dir);
                if !p.is_dir() {
                    bail!("--against {dir:?}: use `holdout`, `train` or a folder of real faces");
                }
                Against::Dir(p)
            }
        })
    }
}

/// The real images the fakes are scored against, and a second real sample of the same size
/// for the noise floor (what two samples of real faces score against each other). The
/// holdout's are the [`Reals`] samples themselves, borrowed (they can be gigabytes at `--n`
/// 10,000 and 96x80).
pub(crate) struct Reference<'a> {
    /// `holdout`, `train` or `folder DIR`.
    pub name: String,
    /// The floor's second sample.
    pub second_name: String,
    pub n: usize,
    pub images: Cow<'a, [f32]>,
    pub second: Cow<'a, [f32]>,
}

/// The reference set of `against`, at most `n` images: the holdout sample (floor: the train
/// sample), two disjoint train samples, or a folder (floor: a train sample as large).
pub(crate) fn reference<'a>(
    against: &Against,
    shard: &Shard,
    reals: &'a Reals,
    n: usize,
    seed: u64,
) -> Result<Reference<'a>> {
    let train = shard.indices(Split::Train);
    Ok(match against {
        Against::Holdout => Reference {
            name: "holdout".into(),
            second_name: "train".into(),
            n: reals.n,
            images: Cow::Borrowed(&reals.holdout),
            second: Cow::Borrowed(&reals.train),
        },
        Against::Train => {
            let m = n.min(train.len() / 2).max(1);
            let ids = sample_ids(&train, (2 * m).min(train.len()), seed ^ 3);
            let (a, b) = ids.split_at(m.min(ids.len()));
            if b.is_empty() {
                bail!("--against train needs at least 2 training images");
            }
            Reference {
                name: "train".into(),
                second_name: "a second, disjoint train sample".into(),
                n: m.min(b.len()),
                images: Cow::Owned(shard_images(shard, &a[..m.min(b.len())])),
                second: Cow::Owned(shard_images(shard, &b[..m.min(b.len())])),
            }
        }
        Against::Dir(dir) => {
            let images = load_fake_dir(dir, shard, n)?;
            let m = (images.len() / reals.per_image()).min(train.len());
            Reference {
                name: format!("folder {}", dir.display()),
                second_name: "train".into(),
                n: m,
                images: Cow::Owned({
                    let mut images = images;
                    images.truncate(m * reals.per_image());
                    images
                }),
                second: Cow::Owned(shard_images(shard, &sample_ids(&train, m, seed ^ 2))),
            }
        }
    })
}

/// The images scored as fakes.
pub(crate) struct Fakes {
    /// `[3, h, w]` f32 planes in [0, 1] back to back.
    pub images: Vec<f32>,
    /// Images per side: the reals' `n`, or fewer when a `--fake-dir` folder has fewer.
    pub n_side: usize,
    /// The generator's weights file, or `folder DIR`.
    pub source: String,
}

/// The `--fake-dir` folder's images when given, else `n` from the sampling generator (the
/// reference set's size).
pub(crate) fn fakes<B: Backend>(
    opts: &EvalOptions,
    shard: &Shard,
    n: usize,
    models: Option<&Models<B>>,
    device: &B::Device,
) -> Result<Fakes> {
    let (images, source) = match (&opts.fake_dir, models) {
        (Some(dir), _) => (
            load_fake_dir(dir, shard, n)?,
            format!("folder {}", dir.display()),
        ),
        (None, Some(m)) => {
            let z = latents::<B>(n, m.latent, opts.seed, device);
            (generate(&m.g, &z, m.latent, device), m.weights.to_string())
        }
        (None, None) => unreachable!("a checkpoint is required without --fake-dir"),
    };
    let per_image = 3 * shard.height() * shard.width();
    let n_side = n.min(images.len() / per_image);
    Ok(Fakes {
        images,
        n_side,
        source,
    })
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

/// Fewer usable `--fake-dir` images than this (and than asked for) get a warning: scores on so
/// few images per side are mostly sampling noise.
pub const MIN_FAKE_IMAGES: usize = 64;

/// One real face decoded, cropped and resized as `shard`'s images were (its recorded crop and
/// filter), as `[3, h, w]` planes in [0, 1]. An unreadable image, or one far smaller than the
/// shard's size on either side (under half: mostly made-up detail), is refused by name.
pub fn decode_like_shard(path: &Path, shard: &Shard) -> Result<Vec<f32>> {
    use facegan_preprocess::decode::{decode_rgb, resize_rgb};
    let s = &shard.meta().settings;
    let crop = facegan_preprocess::Crop::parse(&s.crop).unwrap_or(facegan_preprocess::Crop::None);
    let filter = facegan_preprocess::Filter::parse(&s.filter)
        .unwrap_or(facegan_preprocess::Filter::CatmullRom);
    let (h, w) = (shard.height() as u32, shard.width() as u32);
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let rgb = decode_rgb(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if rgb.width() * 2 < w || rgb.height() * 2 < h {
        bail!(
            "{}: {}x{} pixels, far smaller than the run's {h}x{w} faces (at least {}x{} needed)",
            path.display(),
            rgb.height(),
            rgb.width(),
            h.div_ceil(2),
            w.div_ceil(2)
        );
    }
    let px = resize_rgb(
        &mut fast_image_resize::Resizer::new(),
        rgb,
        h,
        w,
        crop,
        filter,
    );
    Ok(Planes::from_hwc_u8(h as usize, w as usize, &px)
        .data
        .iter()
        .map(|v| v / 255.0)
        .collect())
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
    let usable = out.len() / (3 * (h * w) as usize);
    if usable < MIN_FAKE_IMAGES.min(limit) {
        eprintln!(
            "warning: {}: only {usable} usable image(s); scores on fewer than {MIN_FAKE_IMAGES} per side are mostly sampling noise",
            dir.display()
        );
    }
    Ok(out)
}
