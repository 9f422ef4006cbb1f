//! Helpers shared by the trainer's test binaries (each `tests/*.rs` file includes this module).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use facegan_trainer::{TrainConfig, TrainOptions};

/// Burn's CPU backend keeps one global RNG, which every step reseeds from (seed, step). Tests
/// run in parallel threads of one process, so the ones that draw from it take turns.
static BACKEND_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Holds the backend RNG for the caller until the guard is dropped.
pub fn rng_turn() -> std::sync::MutexGuard<'static, ()> {
    BACKEND_RNG.lock().unwrap_or_else(|e| e.into_inner())
}

/// All float tensors of a module (parameters and BatchNorm running statistics), flattened.
struct Collect(Vec<Vec<f32>>);
impl<B: Backend> ModuleVisitor<B> for Collect {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
        self.0.push(p.val().into_data().to_vec::<f32>().unwrap());
    }
}

/// Every float tensor of `m`, flattened, in visit order.
pub fn values<B: Backend, M: Module<B>>(m: &M) -> Vec<Vec<f32>> {
    let mut c = Collect(Vec::new());
    m.visit(&mut c);
    c.0
}

/// A 16x16 shard of `n` synthetic faces (10% holdout) in `dir`.
#[allow(dead_code)] // not every test binary that includes this module trains
pub fn tiny_shard(dir: &Path, n: usize) -> PathBuf {
    let faces = dir.join("faces");
    facegan_preprocess::synth::write_synth_set(&faces, n, 9).unwrap();
    let out = dir.join("tiny.shard");
    let mut cfg = facegan_preprocess::PreprocessConfig::new(&faces, &out);
    cfg.height = 16;
    cfg.width = 16;
    cfg.holdout = 0.1;
    facegan_preprocess::run(&cfg, &AtomicBool::new(false)).unwrap();
    out
}

/// Options that train `cfg` on `data` into `run` as a test would: an explicit config, no
/// progress bar, no stop other than the config's epochs.
#[allow(dead_code)]
pub fn train_options(data: &Path, run: &Path, cfg: TrainConfig) -> TrainOptions {
    TrainOptions {
        data: data.to_path_buf(),
        run: run.to_path_buf(),
        config: Some(cfg),
        config_from_file: false,
        asked_batch: None,
        asked_seed: None,
        epochs_override: None,
        minutes_override: None,
        new: false,
        progress: false,
        max_steps: None,
        max_images: None,
        keep_at_images: Vec::new(),
        init_from: None,
        faults: Default::default(),
    }
}
