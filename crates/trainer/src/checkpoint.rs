//! Checkpoints: one folder per save under `RUN/checkpoints/`, written to a temp folder, closed
//! with a `DONE` marker and renamed into place, so a crash never leaves a half checkpoint that
//! looks valid. Each holds G, D, both Adam states (full f32 precision) and `state.json`
//! (epoch, step, RNG seed, fixed noise, config, tool version).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::Optimizer;
use burn::record::{BinFileRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::Tensor;
use facegan_model::generator::GeneratorRecord;
use facegan_model::legacy::GeneratorRecordV1;
use facegan_model::{Discriminator, Generator};
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::gan::{adam, Gan};

pub const DONE_MARKER: &str = "DONE";
const PREFIX: &str = "ckpt_";

type Rec = BinFileRecorder<FullPrecisionSettings>;

/// Running sums of one epoch's per-step statistics (so a mid-epoch resume reports the same).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochSums {
    pub steps: u64,
    pub loss_d: f64,
    pub loss_g: f64,
    pub d_real: f64,
    pub d_fake: f64,
    pub seconds: f64,
}

/// Where training stands; `state.json` in each checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    pub tool_version: String,
    /// Epoch in progress (0-based); equals `config.epochs` when training is complete.
    pub epoch: usize,
    /// Next batch index within `epoch`.
    pub batch_in_epoch: usize,
    /// Global steps done.
    pub step: u64,
    pub images_seen: u64,
    pub epoch_sums: EpochSums,
    /// The fixed noise behind every sample grid, `[64, latent]` row-major.
    pub fixed_noise: Vec<f32>,
    pub config: TrainConfig,
    /// The shard the run trains on (eval's default `--data`).
    #[serde(default)]
    pub data_path: String,
    /// Training wall time so far, in seconds, across resumes (what `--minutes` counts).
    #[serde(default)]
    pub train_seconds: f64,
    /// The image count at which the next quality probe is due.
    #[serde(default)]
    pub next_probe_at: u64,
    /// The best quality probe so far (lowest SWD), whose weights are in `checkpoints/best/`.
    #[serde(default)]
    pub best: Option<BestScore>,
}

/// The best quality score of a run and when it was reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BestScore {
    pub swd: f64,
    pub step: u64,
    pub images_seen: u64,
}

/// A checkpoint on disk.
#[derive(Debug, Clone)]
pub struct CheckpointInfo {
    pub dir: PathBuf,
    pub step: u64,
}

pub fn checkpoints_dir(run: &Path) -> PathBuf {
    run.join("checkpoints")
}

/// Finished checkpoints of a run, oldest first.
pub fn list(run: &Path) -> Result<Vec<CheckpointInfo>> {
    let dir = checkpoints_dir(run);
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(out);
    };
    for e in entries {
        let e = e.with_context(|| format!("{}: cannot list", dir.display()))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(step) = name
            .strip_prefix(PREFIX)
            .and_then(|s| s.parse::<u64>().ok())
        {
            if e.path().join(DONE_MARKER).is_file() {
                out.push(CheckpointInfo {
                    dir: e.path(),
                    step,
                });
            }
        }
    }
    out.sort_by_key(|c| c.step);
    Ok(out)
}

/// A run's checkpoint by the number of completed epochs it holds (e.g. 3 = after epoch 3); an
/// error when that checkpoint fails its checksums.
pub fn by_epoch(run: &Path, epoch: usize) -> Result<Option<CheckpointInfo>> {
    for c in list(run)?.into_iter().rev() {
        let s = load_state(&c.dir)?;
        if s.epoch == epoch && s.batch_in_epoch == 0 {
            verify(&c.dir)?;
            return Ok(Some(c));
        }
    }
    Ok(None)
}

/// The newest finished checkpoint whose files match their recorded checksums. A newer one that
/// does not (a flipped or truncated file) is skipped with a warning on stderr naming it.
pub fn latest(run: &Path) -> Result<Option<CheckpointInfo>> {
    for c in list(run)?.into_iter().rev() {
        match verify(&c.dir) {
            Ok(()) => return Ok(Some(c)),
            Err(e) => eprintln!("warning: {e:#}; falling back to an older checkpoint"),
        }
    }
    Ok(None)
}

/// Name of the per-file checksum list in a checkpoint folder.
pub const CHECKSUMS_FILE: &str = "checksums.json";

fn file_checksum(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    Ok(format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&bytes)))
}

/// Checks every file of a checkpoint against `checksums.json` (xxh3-64 per file, written before
/// the `DONE` marker). Checkpoints from before checksums existed have none and pass.
pub fn verify(dir: &Path) -> Result<()> {
    let list = dir.join(CHECKSUMS_FILE);
    let Ok(text) = std::fs::read_to_string(&list) else {
        return Ok(());
    };
    let sums: std::collections::BTreeMap<String, String> = serde_json::from_str(&text)
        .with_context(|| format!("{}: bad checksum list", list.display()))?;
    for (name, want) in &sums {
        let got = file_checksum(&dir.join(name))
            .with_context(|| format!("{}: checkpoint is damaged", dir.display()))?;
        if &got != want {
            bail!(
                "{}: checkpoint is damaged: {name} does not match its checksum",
                dir.display()
            );
        }
    }
    Ok(())
}

fn write_json_atomic(path: &Path, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    Ok(facegan_common::write_atomic(path, text.as_bytes())?)
}

/// Saves the full training state; keeps the newest `keep` checkpoints.
pub fn save<B: AutodiffBackend>(
    run: &Path,
    gan: &Gan<B>,
    state: &TrainState,
    keep: usize,
) -> Result<PathBuf> {
    let final_dir = checkpoints_dir(run).join(format!("{PREFIX}{:09}", state.step));
    write_checkpoint(&final_dir, gan, state)?;
    let all = list(run)?;
    if all.len() > keep {
        for old in &all[..all.len() - keep] {
            let _ = std::fs::remove_dir_all(&old.dir);
        }
    }
    Ok(final_dir)
}

/// Name of the best checkpoint's folder under `checkpoints/` (never rotated out).
pub const BEST_DIR: &str = "best";

/// Saves the full training state as the run's best checkpoint (`checkpoints/best/`), replacing
/// the previous best.
pub fn save_best<B: AutodiffBackend>(
    run: &Path,
    gan: &Gan<B>,
    state: &TrainState,
) -> Result<PathBuf> {
    let dir = checkpoints_dir(run).join(BEST_DIR);
    write_checkpoint(&dir, gan, state)?;
    Ok(dir)
}

/// The run's best checkpoint, when it has a complete one.
pub fn best(run: &Path) -> Option<CheckpointInfo> {
    let dir = checkpoints_dir(run).join(BEST_DIR);
    let state = load_state(&dir).ok()?;
    if let Err(e) = verify(&dir) {
        eprintln!("warning: {e:#}; ignoring the best checkpoint");
        return None;
    }
    Some(CheckpointInfo {
        dir,
        step: state.step,
    })
}

/// Writes one checkpoint folder: a temp folder beside it, files synced, the `DONE` marker, then
/// a rename over `final_dir` (an older folder of that name is removed first).
fn write_checkpoint<B: AutodiffBackend>(
    final_dir: &Path,
    gan: &Gan<B>,
    state: &TrainState,
) -> Result<()> {
    let root = final_dir.parent().expect("checkpoint dir has a parent");
    std::fs::create_dir_all(root).with_context(|| format!("{}: cannot create", root.display()))?;
    let name = final_dir
        .file_name()
        .expect("checkpoint dir has a name")
        .to_string_lossy();
    let tmp = root.join(format!(".tmp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).with_context(|| format!("{}: cannot create", tmp.display()))?;
    let rec = Rec::new();
    let ctx = |what: &str| format!("{}: cannot save {what}", tmp.display());
    rec.record(gan.g.clone().into_record(), tmp.join("generator"))
        .with_context(|| ctx("generator"))?;
    if let Some(ema) = &gan.g_ema {
        rec.record(ema.clone().into_record(), tmp.join(EMA_FILE))
            .with_context(|| ctx("EMA generator"))?;
    }
    rec.record(gan.d.clone().into_record(), tmp.join("discriminator"))
        .with_context(|| ctx("discriminator"))?;
    rec.record(gan.opt_g.to_record(), tmp.join("optim_g"))
        .with_context(|| ctx("G optimizer"))?;
    rec.record(gan.opt_d.to_record(), tmp.join("optim_d"))
        .with_context(|| ctx("D optimizer"))?;
    write_json_atomic(&tmp.join("state.json"), state)?;
    // One pass: each file is hashed and synced; the checksum list itself is written atomically
    // (synced) after them.
    let mut sums = std::collections::BTreeMap::new();
    for f in std::fs::read_dir(&tmp)? {
        let path = f?.path();
        let name = path.file_name().expect("a file name").to_string_lossy();
        sums.insert(name.into_owned(), file_checksum(&path)?);
        std::fs::File::open(&path)?.sync_all()?;
    }
    write_json_atomic(&tmp.join(CHECKSUMS_FILE), &sums)?;
    facegan_common::write_atomic(&tmp.join(DONE_MARKER), b"ok\n")?;
    if final_dir.exists() {
        std::fs::remove_dir_all(final_dir)?;
    }
    std::fs::rename(&tmp, final_dir)
        .with_context(|| format!("{}: cannot rename into place", final_dir.display()))?;
    if let Ok(d) = std::fs::File::open(root) {
        let _ = d.sync_all();
    }
    Ok(())
}

pub fn load_state(dir: &Path) -> Result<TrainState> {
    if !dir.join(DONE_MARKER).is_file() {
        bail!(
            "{}: checkpoint is incomplete (no DONE marker)",
            dir.display()
        );
    }
    let p = dir.join("state.json");
    let text =
        std::fs::read_to_string(&p).with_context(|| format!("{}: cannot read", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: bad checkpoint state", p.display()))
}

/// File stem of the EMA generator in a checkpoint (present when `ema_beta > 0`).
pub const EMA_FILE: &str = "generator_ema";

/// Loads the record `stem` of a checkpoint into a freshly built module; `what` names it in the
/// error.
fn load_module<B: Backend, M: Module<B>>(
    dir: &Path,
    stem: &str,
    what: &str,
    fresh: M,
    device: &B::Device,
) -> Result<M> {
    let shapes = param_shapes(&fresh);
    let record = Rec::new()
        .load(dir.join(stem), device)
        .with_context(|| format!("{}: cannot load {what}", dir.display()))?;
    let module = fresh.load_record(record);
    check_shapes(dir, what, &shapes, &param_shapes(&module))?;
    Ok(module)
}

/// Loads a generator record in today's layout, else in an earlier one (see
/// [`facegan_model::legacy`]), so runs trained by an older facegan still resume, sample and
/// evaluate. Either way every tensor's shape is checked against the config's network.
fn load_generator_file<B: Backend>(
    dir: &Path,
    stem: &str,
    cfg: &TrainConfig,
    device: &B::Device,
) -> Result<Generator<B>> {
    let fresh = Generator::new(&cfg.model, device);
    let shapes = param_shapes(&fresh);
    let path = dir.join(stem);
    let record: GeneratorRecord<B> = match Rec::new().load(path.clone(), device) {
        Ok(record) => record,
        Err(current) => match Rec::new().load::<GeneratorRecordV1<B>>(path, device) {
            Ok(v1) => v1.into(),
            Err(_) => {
                return Err(anyhow::Error::new(current)
                    .context(format!("{}: cannot load {stem}", dir.display())))
            }
        },
    };
    let g = fresh.load_record(record);
    check_shapes(dir, stem, &shapes, &param_shapes(&g))?;
    Ok(g)
}

/// The shape of every parameter and buffer of a module, in visiting order.
fn param_shapes<B: Backend, M: Module<B>>(module: &M) -> Vec<Vec<usize>> {
    struct Shapes(Vec<Vec<usize>>);
    impl<B: Backend> ModuleVisitor<B> for Shapes {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            self.0.push(param.val().dims().to_vec());
        }
    }
    let mut v = Shapes(Vec::new());
    module.visit(&mut v);
    v.0
}

/// Burn loads a record into a module without comparing shapes; a checkpoint whose tensors do
/// not fit the config's network would then fail later, far from its cause. This names it.
fn check_shapes(dir: &Path, what: &str, want: &[Vec<usize>], got: &[Vec<usize>]) -> Result<()> {
    if want != got {
        let first = want
            .iter()
            .zip(got)
            .position(|(a, b)| a != b)
            .unwrap_or(want.len().min(got.len()));
        bail!(
            "{}: {what} does not fit the run's config: tensor {first} is {:?} in the checkpoint, \
             {:?} in the network the config describes",
            dir.display(),
            got.get(first),
            want.get(first)
        );
    }
    Ok(())
}

/// Loads the trained generator (not the EMA) of a checkpoint onto any backend.
pub fn load_generator<B: Backend>(
    dir: &Path,
    cfg: &TrainConfig,
    device: &B::Device,
) -> Result<Generator<B>> {
    load_generator_file(dir, "generator", cfg, device)
}

/// The generator that samples, eval and export use: the EMA when the checkpoint has one, else
/// the trained generator. The string says which (`generator_ema` or `generator`).
pub fn load_sampling_generator<B: Backend>(
    dir: &Path,
    cfg: &TrainConfig,
    device: &B::Device,
) -> Result<(Generator<B>, &'static str)> {
    if dir.join(format!("{EMA_FILE}.bin")).is_file() {
        Ok((load_generator_file(dir, EMA_FILE, cfg, device)?, EMA_FILE))
    } else {
        Ok((load_generator(dir, cfg, device)?, "generator"))
    }
}

/// Loads the discriminator of a checkpoint onto any backend.
pub fn load_discriminator<B: Backend>(
    dir: &Path,
    cfg: &TrainConfig,
    device: &B::Device,
) -> Result<Discriminator<B>> {
    let fresh = Discriminator::new(&cfg.model, device);
    load_module(dir, "discriminator", "the discriminator", fresh, device)
}

/// Restores networks and optimizers for resuming.
pub fn load_gan<B: AutodiffBackend>(
    dir: &Path,
    cfg: &TrainConfig,
    device: &B::Device,
) -> Result<Gan<B>> {
    let rec = Rec::new();
    let g = load_generator::<B>(dir, cfg, device)?;
    let d = load_discriminator::<B>(dir, cfg, device)?;
    let opt_g = adam(cfg).load_record(
        rec.load(dir.join("optim_g"), device)
            .with_context(|| format!("{}: cannot load the G optimizer", dir.display()))?,
    );
    let opt_d = adam(cfg).load_record(
        rec.load(dir.join("optim_d"), device)
            .with_context(|| format!("{}: cannot load the D optimizer", dir.display()))?,
    );
    let g_ema = if cfg.ema_beta > 0.0 {
        Some(load_generator_file::<B::InnerBackend>(
            dir, EMA_FILE, cfg, device,
        )?)
    } else {
        None
    };
    Ok(Gan::from_parts(g, d, opt_g, opt_d, g_ema, cfg))
}
