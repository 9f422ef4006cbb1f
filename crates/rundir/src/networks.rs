//! The networks of a checkpoint, loaded onto any backend: Burn bin records in today's layout or
//! an earlier one ([`facegan_model::legacy`], G and D), every tensor's shape checked against the run's
//! config. (Writing them, and the optimizers, is the trainer's.)

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use burn::module::{Module, ModuleVisitor, Param};
use burn::record::{BinFileRecorder, FullPrecisionSettings, Record, Recorder};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use facegan_model::discriminator::DiscriminatorRecord;
use facegan_model::generator::GeneratorRecord;
use facegan_model::legacy::{
    DiscriminatorRecordV2, GeneratorRecordV1, GeneratorRecordV2, GeneratorRecordV3,
};
use facegan_model::{Discriminator, Generator};

use crate::config::TrainConfig;

/// The recorder of every network and optimizer file (`.bin`, full precision).
pub type Rec = BinFileRecorder<FullPrecisionSettings>;

/// File stem of the EMA generator in a checkpoint (present when `ema_beta > 0`).
pub const EMA_FILE: &str = "generator_ema";

/// Loads a generator record in today's layout, else in an earlier one (see
/// [`facegan_model::legacy`]), so runs trained by an older facegan still resume, sample and
/// evaluate. Either way every tensor's shape is checked against the config's network.
pub fn load_generator_file<B: Backend>(
    dir: &Path,
    stem: &str,
    cfg: &TrainConfig,
    device: &B::Device,
) -> Result<Generator<B>> {
    let older: [OlderLayout<B, GeneratorRecord<B>>; 3] = [
        load_older::<B, GeneratorRecordV3<B>, _>,
        load_older::<B, GeneratorRecordV2<B>, _>,
        load_older::<B, GeneratorRecordV1<B>, _>,
    ];
    let fresh = Generator::new(&cfg.model, device);
    load_in_any_layout(dir, stem, stem, fresh, &older, device)
}

/// Reads a record file written in one earlier layout and converts it to today's; `None` when
/// the file is not in that layout.
type OlderLayout<B, R> = fn(PathBuf, &burn::tensor::Device<B>) -> Option<R>;

fn load_older<B: Backend, Old: Record<B> + Into<New>, New>(
    path: PathBuf,
    device: &B::Device,
) -> Option<New> {
    Rec::new().load::<Old>(path, device).ok().map(Into::into)
}

/// Loads `dir/stem` into `fresh`: a record in today's layout, else the first of `older` that
/// reads it; then checks every tensor's shape against `fresh`'s. An error names `what` and
/// today's layout's reason when no layout reads the file.
fn load_in_any_layout<B: Backend, M: Module<B>>(
    dir: &Path,
    stem: &str,
    what: &str,
    fresh: M,
    older: &[OlderLayout<B, M::Record>],
    device: &B::Device,
) -> Result<M> {
    let shapes = param_shapes(&fresh);
    let path = dir.join(stem);
    let record = match Rec::new().load::<M::Record>(path.clone(), device) {
        Ok(record) => record,
        Err(current) => match older.iter().find_map(|load| load(path.clone(), device)) {
            Some(record) => record,
            None => {
                return Err(anyhow::Error::new(current)
                    .context(format!("{}: cannot load {what}", dir.display())))
            }
        },
    };
    let module = fresh.load_record(record);
    check_shapes(dir, what, &shapes, &param_shapes(&module))?;
    Ok(module)
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

/// Loads the discriminator of a checkpoint (today's layout or v2) onto any backend.
pub fn load_discriminator<B: Backend>(
    dir: &Path,
    cfg: &TrainConfig,
    device: &B::Device,
) -> Result<Discriminator<B>> {
    let older: [OlderLayout<B, DiscriminatorRecord<B>>; 1] =
        [load_older::<B, DiscriminatorRecordV2<B>, _>];
    let fresh = Discriminator::new(&cfg.model, device);
    load_in_any_layout(
        dir,
        "discriminator",
        "the discriminator",
        fresh,
        &older,
        device,
    )
}
