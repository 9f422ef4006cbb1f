//! Helpers shared by the trainer's test binaries (each `tests/*.rs` file includes this module).

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

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
