//! Images to the network's input, as pytorch-fid prepares them: RGB bytes scaled to [0, 1]
//! (`ToTensor`), resized to 299x299 bilinearly without corner alignment
//! (`F.interpolate(..., mode='bilinear', align_corners=False)`; Burn's own default aligns
//! corners), then scaled to [-1, 1].

use burn::tensor::backend::Backend;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Tensor, TensorData};

/// The side the network takes.
pub const SIDE: usize = 299;

/// A batch of `n` images of `h` x `w` RGB bytes (each `h * w * 3`, row-major HWC) as the
/// network's input `[n, 3, 299, 299]` in [-1, 1].
pub fn batch<B: Backend>(images: &[&[u8]], h: usize, w: usize, device: &B::Device) -> Tensor<B, 4> {
    let n = images.len();
    let mut chw = vec![0f32; n * 3 * h * w];
    for (i, img) in images.iter().enumerate() {
        assert_eq!(img.len(), h * w * 3, "an image of {h}x{w} RGB bytes");
        let out = &mut chw[i * 3 * h * w..(i + 1) * 3 * h * w];
        for (p, px) in img.chunks_exact(3).enumerate() {
            for c in 0..3 {
                out[c * h * w + p] = px[c] as f32 / 255.0;
            }
        }
    }
    let x = Tensor::<B, 4>::from_data(TensorData::new(chw, [n, 3, h, w]), device);
    let options = InterpolateOptions {
        mode: InterpolateMode::Bilinear,
        align_corners: false,
    };
    let x = if (h, w) == (SIDE, SIDE) {
        x
    } else {
        interpolate(x, [SIDE, SIDE], options)
    };
    x.mul_scalar(2.0).sub_scalar(1.0)
}
