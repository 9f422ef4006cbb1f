//! How the kernels split a batch over threads (rayon) without making results depend on the
//! thread count: per-image work runs image by image ([`map_images`]); a sum over the batch is
//! summed per fixed chunk of images ([`map_batch_chunks`]), then over chunks in order
//! ([`sum_in_order`]).

use std::ops::Range;

use rayon::prelude::*;

/// Number of fixed batch chunks whose partial weight gradients are summed in order. Independent
/// of the thread count, so the sums are the same on any machine.
const GRAD_CHUNKS: usize = 8;

/// The sizes of a `[n, c, hw]` tensor: `n` images of `c` channel planes of `hw` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Planes {
    pub n: usize,
    pub c: usize,
    pub hw: usize,
}

impl Planes {
    pub(crate) fn new(n: usize, c: usize, hw: usize) -> Self {
        Planes { n, c, hw }
    }

    /// Channel `ch` of image `b` in a tensor of these sizes.
    #[inline]
    pub(crate) fn plane<'a>(&self, x: &'a [f32], b: usize, ch: usize) -> &'a [f32] {
        &x[(b * self.c + ch) * self.hw..][..self.hw]
    }
}

/// Splits `0..n` into at most `GRAD_CHUNKS` contiguous ranges (fixed by `n` only).
fn chunks(n: usize) -> Vec<Range<usize>> {
    let parts = GRAD_CHUNKS.min(n.max(1));
    (0..parts)
        .map(|p| p * n / parts..(p + 1) * n / parts)
        .collect()
}

/// Splits an optional per-batch buffer into one mutable slice per batch chunk of `ranges`
/// (`per_image` values each image); `None` for every chunk when there is no buffer.
fn split_by_chunk<'a>(
    buf: Option<&'a mut [f32]>,
    ranges: &[Range<usize>],
    per_image: usize,
) -> Vec<Option<&'a mut [f32]>> {
    let Some(mut rest) = buf else {
        return ranges.iter().map(|_| None).collect();
    };
    ranges
        .iter()
        .map(|images| {
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(images.len() * per_image);
            rest = tail;
            Some(head)
        })
        .collect()
}

/// Runs `f(images, out)` on the fixed chunks of a batch of `n` images in parallel and returns
/// the results in chunk order. `out` is the chunk's images of `per_image_out` (`per_image`
/// floats each), a per-image output the chunk writes alongside its sum.
pub(crate) fn map_batch_chunks<T: Send>(
    n: usize,
    per_image_out: Option<&mut [f32]>,
    per_image: usize,
    f: impl Fn(Range<usize>, Option<&mut [f32]>) -> T + Sync + Send,
) -> Vec<T> {
    let ranges = chunks(n);
    let outs = split_by_chunk(per_image_out, &ranges, per_image);
    let jobs: Vec<_> = ranges.into_iter().zip(outs).collect();
    jobs.into_par_iter()
        .map(|(images, out)| f(images, out))
        .collect()
}

/// A batch output of sizes `out`, computed image by image in parallel: each image's channels
/// start at `bias` (0 without one), then `f(scratch, out_image, in_image)` writes to them.
/// `input` holds `in_len` floats per image; each rayon task gets its own zeroed scratch buffer
/// of `scratch_len` floats, reused across the images it runs.
pub(crate) fn map_images(
    out: Planes,
    bias: Option<&[f32]>,
    input: &[f32],
    in_len: usize,
    scratch_len: usize,
    f: impl Fn(&mut [f32], &mut [f32], &[f32]) + Sync + Send,
) -> Vec<f32> {
    let mut y = vec![0f32; out.n * out.c * out.hw];
    y.par_chunks_mut(out.c * out.hw)
        .zip(input.par_chunks(in_len))
        .for_each_init(
            || vec![0f32; scratch_len],
            |scratch, (yb, xb)| {
                if let Some(bias) = bias {
                    fill_channels(yb, bias, out.hw);
                }
                f(scratch, yb, xb)
            },
        );
    y
}

/// Sums equally sized partial results in order.
pub(crate) fn sum_in_order(parts: Vec<Vec<f32>>) -> Vec<f32> {
    let mut it = parts.into_iter();
    let mut acc = it.next().unwrap_or_default();
    for p in it {
        for (a, b) in acc.iter_mut().zip(&p) {
            *a += b;
        }
    }
    acc
}

/// Sums each channel of `x` over images and positions (fixed order).
pub(crate) fn channel_sums(x: &[f32], planes: Planes) -> Vec<f32> {
    let parts = map_batch_chunks(planes.n, None, 0, |images, _| {
        let mut acc = vec![0f32; planes.c];
        for b in images {
            for (ch, a) in acc.iter_mut().enumerate() {
                *a += planes.plane(x, b, ch).iter().sum::<f32>();
            }
        }
        acc
    });
    sum_in_order(parts)
}

/// Sets channel `c` of one image (`plane` values each) to `values[c]`.
fn fill_channels(image: &mut [f32], values: &[f32], plane: usize) {
    for (channel, &v) in image.chunks_exact_mut(plane).zip(values) {
        channel.fill(v);
    }
}
