//! Resizing decoded RGB images to the shard's size: one at a time ([`resize_rgb_into`]) or a run
//! of same-size images together ([`BatchResizer`], the same bytes, faster). Large reductions are
//! first box-halved (see [`crate::halve`]), then fast_image_resize applies the filter.

use fast_image_resize::{
    images::{Image, ImageRef},
    PixelType, ResizeOptions, Resizer,
};

use crate::decode::{Crop, Filter};
use crate::halve::{box_halve_strided, halve_repeatedly, HalveRows};
use crate::transpose::transpose_rgb;

/// Per-thread scratch space for [`resize_rgb_into`]: the fast_image_resize [`Resizer`] and the
/// buffers of the 2x2 box reduction, reused from one image to the next.
#[derive(Default)]
pub struct ResizeScratch {
    resizer: Resizer,
    halves: [Vec<u8>; 2],
    rows: HalveRows,
}

impl ResizeScratch {
    pub fn new() -> Self {
        Self::default()
    }
}

/// Resizes (after cropping) an RGB image to `height x width`, returning HWC bytes.
/// See [`resize_rgb_into`], which this wraps.
pub fn resize_rgb(
    resizer: &mut Resizer,
    src: image::RgbImage,
    height: u32,
    width: u32,
    crop: Crop,
    filter: Filter,
) -> Vec<u8> {
    let mut scratch = ResizeScratch {
        resizer: std::mem::take(resizer),
        ..Default::default()
    };
    let mut out = vec![0u8; height as usize * width as usize * 3];
    let (w, h) = src.dimensions();
    resize_rgb_into(
        &mut scratch,
        src.as_raw(),
        w,
        h,
        height,
        width,
        crop,
        filter,
        &mut out,
    );
    *resizer = scratch.resizer;
    out
}

/// Resizes (after cropping) the `w x h` RGB image `src` to `height x width` HWC bytes in `out`.
///
/// Large reductions first halve the image with a 2x2 box average while it is still at least twice
/// the target size (as Pillow's `reducing_gap` does), then apply the filter: an antialiased
/// result at a fraction of the cost of a wide filter kernel.
#[allow(clippy::too_many_arguments)]
pub fn resize_rgb_into(
    scratch: &mut ResizeScratch,
    src: &[u8],
    w: u32,
    h: u32,
    height: u32,
    width: u32,
    crop: Crop,
    filter: Filter,
    out: &mut [u8],
) {
    assert_eq!(src.len(), w as usize * h as usize * 3, "RGB buffer size");
    let ResizeScratch {
        resizer,
        halves,
        rows,
    } = scratch;
    let p = Prepared::new(w, h, height, width, crop, filter);
    let (src, w, h) = halve_repeatedly(src, (w as usize, h as usize), p.halvings, halves, rows);
    let src = ImageRef::new(w as u32, h as u32, src, PixelType::U8x3).expect("RGB buffer size");
    let mut dst =
        Image::from_slice_u8(width, height, out, PixelType::U8x3).expect("output buffer size");
    let opts = ResizeOptions::new()
        .resize_alg(filter.alg())
        .crop(p.left, p.top, p.cw, p.ch);
    resizer
        .resize(&src, &mut dst, &opts)
        .expect("same pixel types always resize");
}

/// Where an image stands after the box halvings: its size and the crop box in it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Prepared {
    w: usize,
    h: usize,
    halvings: u32,
    left: f64,
    top: f64,
    cw: f64,
    ch: f64,
}

impl Prepared {
    /// The geometry [`resize_rgb_into`] works out for a `w x h` source.
    fn new(w: u32, h: u32, height: u32, width: u32, crop: Crop, filter: Filter) -> Prepared {
        let (mut w, mut h, mut halvings) = (w as usize, h as usize, 0);
        let (mut left, mut top, mut cw, mut ch) = crop.region(w as u32, h as u32, height, width);
        while filter != Filter::Nearest && cw / width as f64 >= 2.0 && ch / height as f64 >= 2.0 {
            (w, h, halvings) = (w / 2, h / 2, halvings + 1);
            (left, top, cw, ch) = (left / 2.0, top / 2.0, cw / 2.0, ch / 2.0);
        }
        let (cw, ch) = (cw.min(w as f64 - left), ch.min(h as f64 - top));
        Prepared {
            w,
            h,
            halvings,
            left,
            top,
            cw,
            ch,
        }
    }

    /// Whether fast_image_resize runs both of its passes (vertical, then horizontal) for it.
    fn two_passes(&self, height: u32, width: u32, filter: Filter) -> bool {
        filter != Filter::Nearest
            && (width as f64 != self.cw || self.left != self.left.round())
            && (height as f64 != self.ch || self.top != self.top.round())
    }
}

/// Resizes runs of same-size images together, with the same result as [`resize_rgb_into`] for
/// each, but computing fast_image_resize's filter coefficients once per run instead of once per
/// image (for 178x218 faces that was about a third of the resize time), and running both passes
/// as vertical ones.
///
/// fast_image_resize resizes 8-bit images in two passes, vertical then horizontal, each rounding
/// to u8. A run's images, box-halved as usual, are put side by side in one wide image, which one
/// vertical-only resize takes to the target height (a vertical pass never mixes columns). The
/// results are then transposed, each image's columns becoming rows, again side by side, and a
/// second vertical-only resize takes them to the target width; transposing back gives the
/// images. The coefficients and the integer arithmetic are those of the single-image call, and
/// fast_image_resize's vertical and horizontal kernels give the same bytes for them (tests check
/// both), but its vertical kernel is about three times faster per tap for 3-byte pixels (6 µs
/// against 18 µs per 96x80 image here), which is more than the two transposes cost.
pub struct BatchResizer {
    scratch: ResizeScratch,
    height: u32,
    width: u32,
    crop: Crop,
    filter: Filter,
    capacity: usize,
    run: Option<Prepared>,
    count: usize,
    /// The run's box-halved images side by side (laid out for a full run).
    wide: Vec<u8>,
    /// The vertically resized images, side by side.
    tall: Vec<u8>,
    /// `tall` transposed image by image: image `j`'s column `x` is row `x`, from column
    /// `j * height` on.
    transposed: Vec<u8>,
    /// `transposed` resized vertically (to `width` rows).
    out: Vec<u8>,
}

impl BatchResizer {
    pub fn new(height: u32, width: u32, crop: Crop, filter: Filter, capacity: usize) -> Self {
        BatchResizer {
            scratch: ResizeScratch::new(),
            height,
            width,
            crop,
            filter,
            capacity: capacity.max(1),
            run: None,
            count: 0,
            wide: Vec::new(),
            tall: Vec::new(),
            transposed: Vec::new(),
            out: Vec::new(),
        }
    }

    /// Images waiting in the current run.
    pub fn len(&self) -> usize {
        self.count
    }
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether a `w x h` image can join the current run (else [`flush`](Self::flush) first).
    /// Images that fast_image_resize would not resize in two passes always run alone.
    pub fn fits(&self, w: u32, h: u32) -> bool {
        let p = Prepared::new(w, h, self.height, self.width, self.crop, self.filter);
        self.count < self.capacity
            && p.two_passes(self.height, self.width, self.filter)
            && self.run.is_none_or(|r| r == p)
    }
    /// Adds a `w x h` RGB image to the run; call only when [`fits`](Self::fits) says so.
    pub fn push(&mut self, src: &[u8], w: u32, h: u32) {
        assert!(self.fits(w, h), "the image does not fit the run");
        assert_eq!(src.len(), w as usize * h as usize * 3, "RGB buffer size");
        let p = Prepared::new(w, h, self.height, self.width, self.crop, self.filter);
        self.run = Some(p);
        // The wide image, laid out for a full run: row y of image j at y * stride + j * p.w * 3.
        let (pw3, stride) = (p.w * 3, self.capacity * p.w * 3);
        self.wide.resize(stride * p.h, 0);
        let dst = &mut self.wide[self.count * pw3..];
        let ResizeScratch { halves, rows, .. } = &mut self.scratch;
        // All halvings but the last into the scratch buffers; the last writes into `wide`.
        let before_last = p.halvings.saturating_sub(1);
        let (last, lw, lh) =
            halve_repeatedly(src, (w as usize, h as usize), before_last, halves, rows);
        if p.halvings == 0 {
            for (y, row) in last.chunks_exact(pw3).enumerate() {
                dst[y * stride..][..pw3].copy_from_slice(row);
            }
        } else {
            box_halve_strided(last, lw, lh, dst, stride, rows);
        }
        self.count += 1;
    }

    /// Resizes the run and hands each image's `height x width` HWC bytes to `emit`, in the order
    /// they were pushed; the run is then empty.
    pub fn flush(&mut self, mut emit: impl FnMut(Vec<u8>)) {
        let Some(p) = self.run.take() else { return };
        let n = std::mem::take(&mut self.count);
        let (height, width) = (self.height as usize, self.width as usize);
        let pw3 = p.w * 3;
        // A short run: close up the rows (the first stays where it is).
        if n < self.capacity {
            let stride = self.capacity * pw3;
            for y in 1..p.h {
                self.wide
                    .copy_within(y * stride..y * stride + n * pw3, y * n * pw3);
            }
        }
        let resizer = &mut self.scratch.resizer;
        let wide = ImageRef::new(
            (n * p.w) as u32,
            p.h as u32,
            &self.wide[..n * pw3 * p.h],
            PixelType::U8x3,
        )
        .expect("wide buffer size");
        resize_vertically(
            resizer,
            self.filter,
            &wide,
            &mut self.tall,
            height,
            p.top,
            p.ch,
        );
        // Image j's column x becomes row x, columns j * height.. of an (n * height)-wide image.
        let cols = n * height;
        self.transposed.resize(p.w * cols * 3, 0);
        for j in 0..n {
            transpose_rgb(
                &self.tall[j * pw3..],
                n * p.w,
                height,
                p.w,
                &mut self.transposed[j * height * 3..],
                cols,
            );
        }
        let transposed = ImageRef::new(
            cols as u32,
            p.w as u32,
            &self.transposed[..p.w * cols * 3],
            PixelType::U8x3,
        )
        .expect("transposed buffer size");
        resize_vertically(
            resizer,
            self.filter,
            &transposed,
            &mut self.out,
            width,
            p.left,
            p.cw,
        );
        // Back again: each image's `width` rows of `height` pixels become its `height` rows.
        for j in 0..n {
            let mut image = vec![0u8; height * width * 3];
            transpose_rgb(
                &self.out[j * height * 3..],
                cols,
                width,
                height,
                &mut image,
                width,
            );
            emit(image);
        }
    }

    /// The single-image path, for images that do not fit a run.
    pub fn resize_one(&mut self, src: &[u8], w: u32, h: u32, out: &mut [u8]) {
        resize_rgb_into(
            &mut self.scratch,
            src,
            w,
            h,
            self.height,
            self.width,
            self.crop,
            self.filter,
            out,
        );
    }
}

/// A vertical-only resize of `src` to `rows` rows of the same width, into `out` (resized to fit),
/// from the source rows `top..top + span` (fractional, as a crop box): one of the two passes of
/// [`BatchResizer::flush`].
fn resize_vertically(
    resizer: &mut Resizer,
    filter: Filter,
    src: &ImageRef,
    out: &mut Vec<u8>,
    rows: usize,
    top: f64,
    span: f64,
) {
    let cols = src.width();
    out.resize(cols as usize * rows * 3, 0);
    let mut dst =
        Image::from_slice_u8(cols, rows as u32, out, PixelType::U8x3).expect("output buffer size");
    let vertical = ResizeOptions::new()
        .resize_alg(filter.alg())
        .crop(0.0, top, cols as f64, span);
    resizer
        .resize(src, &mut dst, &vertical)
        .expect("same pixel types always resize");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::noise;
    use rand::SeedableRng;

    #[test]
    fn batch_resize_matches_one_at_a_time() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let filters = [
            Filter::CatmullRom,
            Filter::Lanczos3,
            Filter::Box,
            Filter::Bilinear,
            Filter::Mitchell,
            Filter::Hamming,
            Filter::Nearest,
        ];
        for &(w, h) in &[(178u32, 218u32), (401, 517), (90, 100), (80, 96), (33, 47)] {
            let images: Vec<Vec<u8>> = (0..5)
                .map(|i| noise(&mut rng, (w * h * 3) as usize, i % 2 == 0))
                .collect();
            for &(th, tw) in &[(96u32, 80u32), (64, 64), (24, 20)] {
                for crop in [Crop::None, Crop::Center(148), Crop::Center(31)] {
                    for filter in filters {
                        let mut single = ResizeScratch::new();
                        let want: Vec<Vec<u8>> = images
                            .iter()
                            .map(|img| {
                                let mut out = vec![0u8; (th * tw * 3) as usize];
                                resize_rgb_into(
                                    &mut single,
                                    img,
                                    w,
                                    h,
                                    th,
                                    tw,
                                    crop,
                                    filter,
                                    &mut out,
                                );
                                out
                            })
                            .collect();
                        let mut batch = BatchResizer::new(th, tw, crop, filter, 3);
                        let mut got = Vec::new();
                        for img in &images {
                            if !batch.fits(w, h) {
                                batch.flush(|px| got.push(px));
                            }
                            if batch.fits(w, h) {
                                batch.push(img, w, h);
                            } else {
                                let mut out = vec![0u8; (th * tw * 3) as usize];
                                batch.resize_one(img, w, h, &mut out);
                                got.push(out);
                            }
                        }
                        batch.flush(|px| got.push(px));
                        assert!(got == want, "{w}x{h} -> {th}x{tw} {crop:?} {filter:?}");
                    }
                }
            }
        }
    }
}
