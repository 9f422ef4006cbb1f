//! Images to the network's input `[n, 3, 299, 299]` in [-1, 1], with one of two resizes
//! ([`Resize`]):
//! - pytorch-fid's (the default): RGB bytes scaled to [0, 1] (`ToTensor`), resized to 299x299
//!   bilinearly without corner alignment (`F.interpolate(..., mode='bilinear',
//!   align_corners=False)`; Burn's own default aligns corners), then scaled to [-1, 1];
//! - clean-fid's (its "clean" mode): each channel as 32-bit floats in [0, 255] resized by
//!   PIL's bicubic filter (`Image.fromarray(x, mode='F').resize(..., BICUBIC)`, a = -0.5, as
//!   fast_image_resize's Catmull-Rom computes it: f64 weights, horizontal pass first), clipped
//!   to [0, 255], then scaled to [-1, 1] as pytorch-fid scales its input. The network stays
//!   pytorch-fid's; clean-fid's own "clean" scores also swap in a TorchScript port of the
//!   same TensorFlow graph, so FID with this resize is close to clean-fid's, not equal.

use anyhow::{bail, Result};
use burn::tensor::backend::Backend;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Tensor, TensorData};
use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

/// The side the network takes.
pub const SIDE: usize = 299;

/// How images are brought to 299x299 (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resize {
    /// pytorch-fid's bilinear resize without corner alignment.
    #[default]
    PytorchFid,
    /// clean-fid's PIL bicubic resize of float channels.
    CleanFid,
}

impl Resize {
    /// `pytorch-fid` or `clean-fid`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "pytorch-fid" => Ok(Resize::PytorchFid),
            "clean-fid" => Ok(Resize::CleanFid),
            _ => bail!("resize {s:?}: use `pytorch-fid` (bilinear, the default) or `clean-fid` (PIL bicubic)"),
        }
    }

    /// The name [`Self::parse`] reads.
    pub fn name(self) -> &'static str {
        match self {
            Resize::PytorchFid => "pytorch-fid",
            Resize::CleanFid => "clean-fid",
        }
    }

    /// What it does, as reports name it.
    pub fn description(self) -> &'static str {
        match self {
            Resize::PytorchFid => "pytorch-fid: bilinear to 299x299, no corner alignment",
            Resize::CleanFid => {
                "clean-fid: PIL bicubic to 299x299 on float channels, clipped (pytorch-fid's network)"
            }
        }
    }
}

/// A batch of `n` images of `h` x `w` RGB bytes (each `h * w * 3`, row-major HWC) as the
/// network's input `[n, 3, 299, 299]` in [-1, 1].
pub fn batch<B: Backend>(
    images: &[&[u8]],
    h: usize,
    w: usize,
    resize: Resize,
    device: &B::Device,
) -> Tensor<B, 4> {
    match resize {
        Resize::PytorchFid => bilinear_batch(images, h, w, device),
        Resize::CleanFid => {
            let n = images.len();
            let mut chw = vec![0f32; n * 3 * SIDE * SIDE];
            let mut resizer = Resizer::new();
            for (img, out) in images.iter().zip(chw.chunks_exact_mut(3 * SIDE * SIDE)) {
                let hwc = clean_fid_resize(&mut resizer, img, h, w);
                for (p, px) in hwc.chunks_exact(3).enumerate() {
                    for c in 0..3 {
                        out[c * SIDE * SIDE + p] = px[c] / 255.0 * 2.0 - 1.0;
                    }
                }
            }
            Tensor::from_data(TensorData::new(chw, [n, 3, SIDE, SIDE]), device)
        }
    }
}

fn bilinear_batch<B: Backend>(
    images: &[&[u8]],
    h: usize,
    w: usize,
    device: &B::Device,
) -> Tensor<B, 4> {
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

/// clean-fid's resize of one `h` x `w` RGB image: 299x299 HWC floats in [0, 255].
pub fn clean_fid_resize(resizer: &mut Resizer, img: &[u8], h: usize, w: usize) -> Vec<f32> {
    assert_eq!(img.len(), h * w * 3, "an image of {h}x{w} RGB bytes");
    let src: Vec<u8> = img.iter().flat_map(|&v| (v as f32).to_ne_bytes()).collect();
    let src = ImageRef::new(w as u32, h as u32, &src, PixelType::F32x3)
        .expect("a buffer of h * w F32x3 pixels");
    let mut dst = Image::new(SIDE as u32, SIDE as u32, PixelType::F32x3);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::CatmullRom));
    resizer
        .resize(&src, &mut dst, &options)
        .expect("F32x3 to F32x3 resizes");
    dst.buffer()
        .chunks_exact(4)
        .map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]]).clamp(0.0, 255.0))
        .collect()
}
