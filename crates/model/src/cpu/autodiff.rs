//! The fast kernels as custom autodiff ops on `Autodiff<Flex>`: each forward runs a kernel and,
//! when any input is tracked, records a `Backward` step holding what its gradient kernel needs
//! (flex tensors are reference-counted, so keeping an input costs no copy).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::Flex;
use burn::tensor::ops::FloatTensor;

use super::kernels::{self, Geom};
use super::{contiguous, data, dims, tensor, Ad};

type Prim = FloatTensor<Ad>;

/// A convolution's shape: geometry, direction, batch and channel counts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvSpec {
    pub geom: Geom,
    pub transposed: bool,
    /// LeakyReLU slope applied to the output (transposed convolutions only).
    pub act: Option<f32>,
    pub n: usize,
    pub ci: usize,
    pub co: usize,
}

impl ConvSpec {
    /// The (input, output) plane sizes: a convolution goes big to small, a transposed one back.
    fn planes(&self) -> ([usize; 2], [usize; 2]) {
        let (big, small) = (self.geom.big, self.geom.small);
        if self.transposed {
            (small, big)
        } else {
            (big, small)
        }
    }
    fn in_shape(&self) -> [usize; 4] {
        let s = self.planes().0;
        [self.n, self.ci, s[0], s[1]]
    }
    pub fn out_shape(&self) -> [usize; 4] {
        let s = self.planes().1;
        [self.n, self.co, s[0], s[1]]
    }
    fn forward(&self, x: &[f32], w: &[f32], b: &[f32]) -> Vec<f32> {
        let (g, n, ci, co) = (&self.geom, self.n, self.ci, self.co);
        if self.transposed {
            kernels::conv_t_forward(g, x, w, Some(b), n, ci, co, self.act)
        } else {
            assert!(self.act.is_none(), "conv2d has no fused activation");
            kernels::conv2d_forward(g, x, w, Some(b), n, ci, co)
        }
    }
}

/// Forward of a convolution on plain flex tensors (also the inference path).
pub(crate) fn conv_forward_flex(
    spec: &ConvSpec,
    x: &FlexTensor,
    w: &FlexTensor,
    b: &FlexTensor,
) -> FlexTensor {
    let (x, w, b) = (contiguous(x), contiguous(w), contiguous(b));
    tensor(
        spec.forward(data(&x), data(&w), data(&b)),
        &spec.out_shape(),
    )
}

#[derive(Debug)]
struct ConvOp;

impl Backward<Flex, 3> for ConvOp {
    /// Input, weight, output (kept only with a fused activation), shape.
    type State = (FlexTensor, FlexTensor, Option<FlexTensor>, ConvSpec);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [px, pw, pb] = ops.parents;
        let dy = contiguous(&grads.consume::<Flex>(&ops.node));
        let (x, w, y, spec) = ops.state;
        let (g, n, ci, co) = (&spec.geom, spec.n, spec.ci, spec.co);
        let want = (px.is_some(), pw.is_some(), pb.is_some());
        let (dx, dw, db) = if spec.transposed {
            let act = y.as_ref().zip(spec.act).map(|(y, k)| (data(y), k));
            kernels::conv_t_backward(
                g,
                data(&x),
                data(&w),
                data(&dy),
                n,
                ci,
                co,
                act,
                want.0,
                want.1,
                want.2,
            )
        } else {
            kernels::conv2d_backward(
                g,
                data(&x),
                data(&w),
                data(&dy),
                n,
                ci,
                co,
                want.0,
                want.1,
                want.2,
            )
        };
        if let (Some(node), Some(dx)) = (px, dx) {
            grads.register::<Flex>(node.id, tensor(dx, &spec.in_shape()));
        }
        if let (Some(node), Some(dw)) = (pw, dw) {
            grads.register::<Flex>(node.id, tensor(dw, &dims(&w)));
        }
        if let (Some(node), Some(db)) = (pb, db) {
            grads.register::<Flex>(node.id, tensor(db, &[spec.co]));
        }
    }
}

/// Convolution (or transposed convolution) with bias, tracked.
pub(crate) fn conv(spec: ConvSpec, x: Prim, w: Prim, b: Prim) -> Prim {
    let (xs, ws) = (contiguous(&x.primitive), contiguous(&w.primitive));
    let out = conv_forward_flex(&spec, &xs, &ws, &b.primitive);
    match ConvOp
        .prepare::<NoCheckpointing>([x.node.clone(), w.node.clone(), b.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let y = spec.act.map(|_| out.clone());
            prep.finish((xs, ws, y, spec), out)
        }
        OpsKind::UnTracked(prep) => prep.finish(out),
    }
}

/// What the BatchNorm backward needs besides the input.
#[derive(Clone, Debug)]
struct BnState {
    x: FlexTensor,
    gamma: Vec<f32>,
    beta: Vec<f32>,
    mean: Vec<f32>,
    inv: Vec<f32>,
    n: usize,
    c: usize,
    hw: usize,
    slope: Option<f32>,
}

#[derive(Debug)]
struct BnOp;

impl Backward<Flex, 3> for BnOp {
    type State = BnState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [px, pg, pb] = ops.parents;
        let dy = contiguous(&grads.consume::<Flex>(&ops.node));
        let s = ops.state;
        let (dx, dgamma, dbeta) = kernels::batchnorm_backward(
            data(&s.x),
            &s.gamma,
            &s.beta,
            &s.mean,
            &s.inv,
            data(&dy),
            s.n,
            s.c,
            s.hw,
            s.slope,
        );
        if let Some(node) = px {
            grads.register::<Flex>(node.id, tensor(dx, &[s.n, s.c, s.hw]));
        }
        if let Some(node) = pg {
            grads.register::<Flex>(node.id, tensor(dgamma, &[s.c]));
        }
        if let Some(node) = pb {
            grads.register::<Flex>(node.id, tensor(dbeta, &[s.c]));
        }
    }
}

/// Training BatchNorm (+ optional LeakyReLU) on `x [n, c, hw]`, tracked. Returns the output and
/// the batch mean and biased variance (for the running statistics).
pub(crate) fn batchnorm(
    x: Prim,
    gamma: Prim,
    beta: Prim,
    eps: f32,
    slope: Option<f32>,
) -> (Prim, Vec<f32>, Vec<f32>) {
    let xs = contiguous(&x.primitive);
    let [n, c, hw]: [usize; 3] = dims(&xs).try_into().expect("[n, c, hw]");
    let (g, b) = (contiguous(&gamma.primitive), contiguous(&beta.primitive));
    let (gv, bv) = (data(&g).to_vec(), data(&b).to_vec());
    let (y, mean, var, inv) = kernels::batchnorm_forward(data(&xs), &gv, &bv, n, c, hw, eps, slope);
    let out = tensor(y, &[n, c, hw]);
    let out = match BnOp
        .prepare::<NoCheckpointing>([x.node.clone(), gamma.node.clone(), beta.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(
            BnState {
                x: xs,
                gamma: gv,
                beta: bv,
                mean: mean.clone(),
                inv,
                n,
                c,
                hw,
                slope,
            },
            out,
        ),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    (out, mean, var)
}

#[derive(Debug)]
struct LeakyOp;

impl Backward<Flex, 1> for LeakyOp {
    type State = (FlexTensor, f32);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [px] = ops.parents;
        let dy = contiguous(&grads.consume::<Flex>(&ops.node));
        let (x, slope) = ops.state;
        if let Some(node) = px {
            let dx = kernels::leaky_backward(data(&x), data(&dy), slope);
            grads.register::<Flex>(node.id, tensor(dx, &dims(&x)));
        }
    }
}

/// LeakyReLU, tracked.
pub(crate) fn leaky_relu(x: Prim, slope: f32) -> Prim {
    let xs = contiguous(&x.primitive);
    let out = tensor(kernels::leaky_forward(data(&xs), slope), &dims(&xs));
    match LeakyOp
        .prepare::<NoCheckpointing>([x.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((xs, slope), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    }
}

#[derive(Debug)]
struct DropoutOp;

impl Backward<Flex, 1> for DropoutOp {
    type State = (u64, f64, f32, Vec<usize>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [px] = ops.parents;
        let dy = contiguous(&grads.consume::<Flex>(&ops.node));
        let (key, keep, scale, shape) = ops.state;
        if let Some(node) = px {
            let dx = kernels::dropout_apply(data(&dy), key, keep, scale);
            grads.register::<Flex>(node.id, tensor(dx, &shape));
        }
    }
}

/// Dropout with the counter-based mask of `key`, tracked.
pub(crate) fn dropout(x: Prim, key: u64, keep: f64) -> Prim {
    let xs = contiguous(&x.primitive);
    let scale = (1.0 / keep) as f32;
    let shape = dims(&xs);
    let out = tensor(kernels::dropout_apply(data(&xs), key, keep, scale), &shape);
    match DropoutOp
        .prepare::<NoCheckpointing>([x.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((key, keep, scale, shape), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    }
}
