//! An exponential moving average of the generator's weights (Karras et al. 2018; Yazıcı et al.
//! 2019): `ema = beta_t * ema + (1 - beta_t) * g` after every G update, for every float tensor of
//! the module (weights, biases and BatchNorm running statistics alike). `beta_t =
//! min(beta, (1 + t) / (warmup + t))` (warmup 10 unless configured) warms up over the first
//! steps, so a short run is not dominated by the random initial weights; a growing run restarts
//! the warm-up when each new size begins (`TrainConfig::ema_warmup_step`), so a new size's layers
//! are not averaged with their random start for thousands of steps. The EMA generator draws the
//! samples, is what eval scores, and is saved in checkpoints (`generator_ema.bin`).

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// The decay used at step `step` (0-based) for a configured `beta` and warm-up constant
/// `warmup` (`TrainConfig::ema_warmup`, 10 by default).
pub fn ema_decay(beta: f64, warmup: f64, step: u64) -> f64 {
    beta.min((1.0 + step as f64) / (warmup + step as f64))
}

/// Collects every float tensor of a module, flattened, in visiting order.
struct Collect<B: Backend>(Vec<Tensor<B, 1>>);

impl<B: Backend> ModuleVisitor<B> for Collect<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let t = param.val();
        let n = t.shape().num_elements();
        self.0.push(t.reshape([n]));
    }
}

/// Blends each float tensor of the EMA module with the live one at the same visiting position.
struct Blend<B: Backend> {
    live: std::vec::IntoIter<Tensor<B, 1>>,
    decay: f64,
}

impl<B: Backend> ModuleMapper<B> for Blend<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, ema, mapper) = param.consume();
        let dims = ema.dims();
        let live = self
            .live
            .next()
            .expect("EMA and live generator have the same structure")
            .reshape(dims);
        let blended = ema.mul_scalar(self.decay) + live.mul_scalar(1.0 - self.decay);
        Param::from_mapped_value(id, blended, mapper)
    }
}

/// `ema <- decay * ema + (1 - decay) * live`, tensor by tensor. Both modules must have the same
/// structure (the same config).
pub fn ema_update<B: Backend, M: Module<B>>(ema: M, live: &M, decay: f64) -> M {
    let mut collect = Collect(Vec::new());
    live.visit(&mut collect);
    let mut blend = Blend {
        live: collect.0.into_iter(),
        decay,
    };
    let out = ema.map(&mut blend);
    assert!(
        blend.live.next().is_none(),
        "EMA and live generator differ in structure"
    );
    out
}
