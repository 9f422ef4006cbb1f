//! The R1 gradient penalty (Mescheder et al. 2018): `gamma / 2 * mean_n |grad_x D(x_n)|^2` on
//! real images, which needs the gradient of a gradient.
//!
//! Burn 0.21's autodiff has no `create_graph` flag, but its backends nest: on
//! `Autodiff<Autodiff<I>>`, the outer backward pass runs on the inner *autodiff* backend, so the
//! input gradient it returns is itself a tracked tensor and can be differentiated again
//! (`tests/techniques.rs`, `r1_gradients_match_finite_differences`, checks the result against
//! finite differences). This module copies D's weights
//! (zero-copy, the same device buffers) into a D on that nested backend, takes
//! `grad_x D(x)` with the outer pass and the penalty's weight gradients with the inner one, and
//! returns them in D's visiting order, for the trainer to add to the adversarial gradients.
//! It is applied lazily (every [`R1_EVERY`] D steps, scaled up by the same factor), as in
//! StyleGAN2, because the nested pass costs several ordinary steps.

use burn::backend::Autodiff;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::Tensor;
use facegan_model::{Discriminator, ModelConfig};

/// The penalty runs on one D step in this many (and is weighted by it).
pub const R1_EVERY: u64 = 16;

type Once<I> = Autodiff<I>;
type Twice<I> = Autodiff<Autodiff<I>>;

/// One float tensor of D, flattened, with its id and shape; `trainable` is false for running
/// statistics (BatchNorm, spectral norm's `u`).
struct Entry<I: Backend> {
    id: ParamId,
    dims: Vec<usize>,
    trainable: bool,
    value: Tensor<I, 1>,
}

struct Collect<B: AutodiffBackend>(Vec<Entry<B::InnerBackend>>);

impl<B: AutodiffBackend> ModuleVisitor<B> for Collect<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let t = param.val();
        let dims = t.dims().to_vec();
        let n = t.shape().num_elements();
        self.0.push(Entry {
            id: param.id,
            dims,
            trainable: t.is_require_grad(),
            value: t.inner().reshape([n]),
        });
    }
}

/// Replaces the float tensors of a fresh nested-backend D by D's own, marking the trainable ones
/// as leaves on both levels; keeps the inner-level leaves to read their gradients.
struct Lift<I: Backend> {
    entries: std::vec::IntoIter<Entry<I>>,
    leaves: Vec<Option<Tensor<Once<I>, 1>>>,
}

impl<I: Backend> ModuleMapper<Twice<I>> for Lift<I> {
    fn map_float<const D: usize>(
        &mut self,
        param: Param<Tensor<Twice<I>, D>>,
    ) -> Param<Tensor<Twice<I>, D>> {
        let (id, _fresh, mapper) = param.consume();
        let e = self.entries.next().expect("same D structure");
        let dims: [usize; D] = e.dims.clone().try_into().expect("same rank");
        let lifted = if e.trainable {
            let leaf = Tensor::<Once<I>, 1>::from_inner(e.value).require_grad();
            self.leaves.push(Some(leaf.clone()));
            Tensor::<Twice<I>, D>::from_inner(leaf.reshape(dims)).require_grad()
        } else {
            self.leaves.push(None);
            Tensor::from_inner(Tensor::from_inner(e.value.reshape(dims)))
        };
        Param::from_mapped_value(id, lifted, mapper)
    }
}

/// The penalty's value and its gradient for each of D's trainable tensors (by id), scaled by
/// `weight` (the trainer passes `gamma * R1_EVERY`).
pub struct R1Grads<I: Backend> {
    pub penalty: Tensor<I, 1>,
    pub grads: Vec<(ParamId, Tensor<I, 1>)>,
}

/// `weight / 2 * mean_n |grad_x D(x_n)|^2` for the real batch `real` and its gradients.
pub fn r1_gradients<B: AutodiffBackend>(
    d: &Discriminator<B>,
    model: &ModelConfig,
    real: Tensor<B::InnerBackend, 4>,
    weight: f64,
) -> R1Grads<B::InnerBackend> {
    let device = real.device();
    let n = real.dims()[0];
    let mut collect = Collect::<B>(Vec::new());
    d.visit(&mut collect);
    let ids: Vec<(ParamId, bool)> = collect.0.iter().map(|e| (e.id, e.trainable)).collect();
    let mut lift = Lift {
        entries: collect.0.into_iter(),
        leaves: Vec::new(),
    };
    let nested = Discriminator::<Twice<B::InnerBackend>>::new(model, &device).map(&mut lift);
    let x =
        Tensor::<Twice<B::InnerBackend>, 4>::from_inner(Tensor::from_inner(real)).require_grad();
    let out = nested.forward(x.clone());
    let gx = x
        .grad(&out.sum().backward())
        .expect("the input of D gets a gradient");
    let penalty = gx.square().sum().mul_scalar(weight / 2.0 / n as f64);
    let grads = penalty.backward();
    let mut result = Vec::new();
    for ((id, trainable), leaf) in ids.into_iter().zip(lift.leaves) {
        if let (true, Some(leaf)) = (trainable, leaf) {
            let g = leaf
                .grad(&grads)
                .unwrap_or_else(|| leaf.inner().zeros_like());
            result.push((id, g));
        }
    }
    R1Grads {
        penalty: penalty.inner(),
        grads: result,
    }
}

/// Adds R1 gradients into D's adversarial gradients, tensor by tensor.
pub fn add_into<B: AutodiffBackend>(
    grads: &mut burn::optim::GradientsParams,
    d: &Discriminator<B>,
    r1: Vec<(ParamId, Tensor<B::InnerBackend, 1>)>,
) {
    struct Add<'a, B: AutodiffBackend> {
        grads: &'a mut burn::optim::GradientsParams,
        r1: std::collections::HashMap<ParamId, Tensor<B::InnerBackend, 1>>,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Add<'_, B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if let Some(extra) = self.r1.remove(&param.id) {
                let dims = param.val().dims();
                let extra = extra.reshape(dims);
                let sum = match self.grads.remove::<B::InnerBackend, D>(param.id) {
                    Some(g) => g + extra,
                    None => extra,
                };
                self.grads.register(param.id, sum);
            }
        }
    }
    let mut add = Add::<B> {
        grads,
        r1: r1.into_iter().collect(),
    };
    d.visit(&mut add);
}
