//! The Inception-v3 features that FID, KID and precision/recall are computed on, exactly as
//! pytorch-fid computes them: its network ([`network`]), its weight file ([`weights`]), its
//! input preparation or clean-fid's resize ([`input`]), and [`features`] for a set of images.

// CI fails on a dependency the crate no longer uses (unit-test builds also see dev-dependencies).
#![cfg_attr(not(test), deny(unused_crate_dependencies))]

pub mod input;
pub mod network;
pub mod weights;

use burn::tensor::backend::Backend;

pub use input::Resize;
pub use network::{FidInception, FEATURES};
pub use weights::WeightsId;

/// Images per forward pass: the CPU's convolutions parallelise within a batch.
pub const BATCH: usize = 16;

/// The 2048-d features of `count` images of `h` x `w` RGB bytes, `image(i)` giving image `i`,
/// brought to 299x299 by `resize`; `[count * 2048]` row-major, in f32 as the network computes
/// them.
pub fn features<'a, B: Backend>(
    net: &FidInception<B>,
    count: usize,
    h: usize,
    w: usize,
    resize: Resize,
    image: impl Fn(usize) -> &'a [u8],
    device: &B::Device,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(count * FEATURES);
    let mut start = 0;
    while start < count {
        let end = (start + BATCH).min(count);
        let imgs: Vec<&[u8]> = (start..end).map(&image).collect();
        let x = input::batch::<B>(&imgs, h, w, resize, device);
        let f = net.forward(x);
        out.extend(
            f.into_data()
                .into_vec::<f32>()
                .expect("the network's output is f32"),
        );
        start = end;
    }
    out
}
