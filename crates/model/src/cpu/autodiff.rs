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

use super::activation::{dropout_apply, leaky_backward, leaky_forward};
use super::batch::Planes;
use super::batchnorm::{batchnorm_backward, batchnorm_forward, BnAffine};
use super::conv::{conv2d_backward, conv2d_forward};
use super::conv_transpose::{conv_t_backward, conv_t_forward};
use super::geom::{ConvShape, WantGrads};
use super::{contiguous, data, dims, tensor, Ad};

type Prim = FloatTensor<Ad>;

/// A convolution op: its sizes, its direction, and the LeakyReLU fused into its output.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvSpec {
    pub shape: ConvShape,
    pub transposed: bool,
    /// LeakyReLU slope applied to the output (transposed convolutions only).
    pub act: Option<f32>,
}

impl ConvSpec {
    /// The (input, output) plane sizes: a convolution goes big to small, a transposed one back.
    fn planes(&self) -> ([usize; 2], [usize; 2]) {
        let (big, small) = (self.shape.geom.big, self.shape.geom.small);
        if self.transposed {
            (small, big)
        } else {
            (big, small)
        }
    }
    fn in_shape(&self) -> [usize; 4] {
        let s = self.planes().0;
        [self.shape.n, self.shape.ci, s[0], s[1]]
    }
    fn out_shape(&self) -> [usize; 4] {
        let s = self.planes().1;
        [self.shape.n, self.shape.co, s[0], s[1]]
    }
    fn forward(&self, x: &[f32], w: &[f32], b: &[f32]) -> Vec<f32> {
        if self.transposed {
            conv_t_forward(&self.shape, x, w, Some(b), self.act)
        } else {
            assert!(self.act.is_none(), "conv2d has no fused activation");
            conv2d_forward(&self.shape, x, w, Some(b))
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
        let want = WantGrads {
            dx: px.is_some(),
            dw: pw.is_some(),
            db: pb.is_some(),
        };
        let grads_of = if spec.transposed {
            let act = y.as_ref().zip(spec.act).map(|(y, k)| (data(y), k));
            conv_t_backward(&spec.shape, data(&x), data(&w), data(&dy), act, want)
        } else {
            conv2d_backward(&spec.shape, data(&x), data(&w), data(&dy), want)
        };
        if let (Some(node), Some(dx)) = (px, grads_of.dx) {
            grads.register::<Flex>(node.id, tensor(dx, &spec.in_shape()));
        }
        if let (Some(node), Some(dw)) = (pw, grads_of.dw) {
            grads.register::<Flex>(node.id, tensor(dw, &dims(&w)));
        }
        if let (Some(node), Some(db)) = (pb, grads_of.db) {
            grads.register::<Flex>(node.id, tensor(db, &[spec.shape.co]));
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
    planes: Planes,
    gamma: Vec<f32>,
    beta: Vec<f32>,
    slope: Option<f32>,
    mean: Vec<f32>,
    inv_std: Vec<f32>,
}

impl BnState {
    fn affine(&self) -> BnAffine<'_> {
        BnAffine {
            gamma: &self.gamma,
            beta: &self.beta,
            slope: self.slope,
        }
    }
}

#[derive(Debug)]
struct BnOp;

impl Backward<Flex, 3> for BnOp {
    type State = BnState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [px, pg, pb] = ops.parents;
        let dy = contiguous(&grads.consume::<Flex>(&ops.node));
        let s = ops.state;
        let (dx, dgamma, dbeta) = batchnorm_backward(
            data(&s.x),
            s.planes,
            s.affine(),
            &s.mean,
            &s.inv_std,
            data(&dy),
        );
        let Planes { n, c, hw } = s.planes;
        if let Some(node) = px {
            grads.register::<Flex>(node.id, tensor(dx, &[n, c, hw]));
        }
        if let Some(node) = pg {
            grads.register::<Flex>(node.id, tensor(dgamma, &[c]));
        }
        if let Some(node) = pb {
            grads.register::<Flex>(node.id, tensor(dbeta, &[c]));
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
    let planes = Planes { n, c, hw };
    let (g, b) = (contiguous(&gamma.primitive), contiguous(&beta.primitive));
    let (gv, bv) = (data(&g).to_vec(), data(&b).to_vec());
    let affine = BnAffine {
        gamma: &gv,
        beta: &bv,
        slope,
    };
    let (y, mean, var, inv_std) = batchnorm_forward(data(&xs), planes, affine, eps);
    let out = tensor(y, &[n, c, hw]);
    let out = match BnOp
        .prepare::<NoCheckpointing>([x.node.clone(), gamma.node.clone(), beta.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(
            BnState {
                x: xs,
                planes,
                gamma: gv,
                beta: bv,
                slope,
                mean: mean.clone(),
                inv_std,
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
            let dx = leaky_backward(data(&x), data(&dy), slope);
            grads.register::<Flex>(node.id, tensor(dx, &dims(&x)));
        }
    }
}

/// LeakyReLU, tracked.
pub(crate) fn leaky_relu(x: Prim, slope: f32) -> Prim {
    let xs = contiguous(&x.primitive);
    let out = tensor(leaky_forward(data(&xs), slope), &dims(&xs));
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
            let dx = dropout_apply(data(&dy), key, keep, scale);
            grads.register::<Flex>(node.id, tensor(dx, &shape));
        }
    }
}

/// Dropout with the counter-based mask of `key`, tracked.
pub(crate) fn dropout(x: Prim, key: u64, keep: f64) -> Prim {
    let xs = contiguous(&x.primitive);
    let scale = (1.0 / keep) as f32;
    let shape = dims(&xs);
    let out = tensor(dropout_apply(data(&xs), key, keep, scale), &shape);
    match DropoutOp
        .prepare::<NoCheckpointing>([x.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((key, keep, scale, shape), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    }
}
