//! Adam for both networks, with the epsilon where either framework puts it. Burn's (and
//! PyTorch's) update is `lr * m_hat / (sqrt(v_hat) + eps)`; Keras' is
//! `lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)`, i.e. `eps` added before the
//! second moment's bias correction, which makes it `sqrt(1 - b2^t)` times smaller in effect (a
//! 30x smaller epsilon at step 1). The `seed` presets use Keras' placement (`keras_adam`), as
//! the tutorial's `tf.keras.optimizers.Adam(1e-4)` does; the others keep Burn's.
//!
//! The state is Burn's own [`AdamState`], so checkpoints written with Burn's `Adam` load as
//! they are.

use burn::optim::{AdamState, AdaptiveMomentumState, LearningRate, SimpleOptimizer};
use burn::tensor::{backend::Backend, Device, Tensor};

/// Adam with a choice of epsilon placement (see the module doc).
#[derive(Clone, Debug)]
pub struct GanAdam {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    /// Keras' placement: `eps` added to `sqrt(v)` before bias correction.
    pub keras_epsilon: bool,
}

impl<B: Backend> SimpleOptimizer<B> for GanAdam {
    type State<const D: usize> = AdamState<B, D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<B, D>,
        grad: Tensor<B, D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<B, D>, Option<Self::State<D>>) {
        let (b1, b2) = (self.beta_1, self.beta_2);
        let momentum = match state {
            Some(AdamState { momentum: mut s }) => {
                s.moment_1 = s
                    .moment_1
                    .mul_scalar(b1)
                    .add(grad.clone().mul_scalar(1.0 - b1));
                s.moment_2 = s
                    .moment_2
                    .mul_scalar(b2)
                    .add(grad.square().mul_scalar(1.0 - b2));
                s.time += 1;
                s
            }
            None => AdaptiveMomentumState::new(
                1,
                grad.clone().mul_scalar(1.0 - b1),
                grad.square().mul_scalar(1.0 - b2),
            ),
        };
        let time = momentum.time as i32;
        let bias_correction2_sqrt = (1.0 - b2.powi(time)).sqrt();
        let combined_factor = bias_correction2_sqrt / (1.0 - b1.powi(time));
        // Burn's form: sqrt(v) + eps * sqrt(1 - b2^t), i.e. eps on sqrt(v_hat); Keras': eps on
        // sqrt(v) itself.
        let eps = if self.keras_epsilon {
            self.epsilon
        } else {
            self.epsilon * bias_correction2_sqrt
        };
        let step = momentum
            .moment_1
            .clone()
            .mul_scalar(combined_factor)
            .div(momentum.moment_2.clone().sqrt().add_scalar(eps));
        let delta = step.mul_scalar(lr);
        (tensor - delta, Some(AdamState::new(momentum)))
    }

    fn to_device<const D: usize>(mut state: Self::State<D>, device: &Device<B>) -> Self::State<D> {
        state.momentum = state.momentum.to_device(device);
        state
    }
}
