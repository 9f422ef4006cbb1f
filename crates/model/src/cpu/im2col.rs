//! The im2col lowering that turns a convolution into matrix products: one image's big map of
//! `channels` channels, seen as the `[channels * taps, small]` column matrix, built (im2col) or
//! added back (col2im, its adjoint) one tile of small rows at a time ([`Lowering`]), so that every
//! convolution kernel is a loop of [`gemm_into`](super::gemm::gemm_into) calls over [`Tile`]s.

use super::batch::{map_images, Planes};
use super::gemm::{MatMut, MatRef};
use super::geom::Geom;

/// One row segment of a tile of the column matrix: the values of small row `r` for channel `c`
/// and tap `(i, j)`, which start at `cols` in the tile. Its entries `lo..hi` are the big map's
/// values from offset `big_row` (`None`: the whole segment lies in the padding), column `off`
/// on, every `stride` columns; the entries outside `lo..hi` lie in the padding.
#[derive(Clone, Copy, Debug)]
struct Segment {
    cols: usize,
    big_row: Option<usize>,
    lo: usize,
    hi: usize,
    off: usize,
    stride: usize,
}

/// Calls `f` on every row segment of the column matrix's tile of small rows `r0..r1`, in the
/// order of the matrix (channel, tap row, tap column, small row).
#[inline(always)]
fn for_each_segment(g: &Geom, channels: usize, r0: usize, r1: usize, mut f: impl FnMut(Segment)) {
    let [kh, kw] = g.kernel;
    let [bh, bw] = g.big;
    let sw = g.small[1];
    let ncols = (r1 - r0) * sw;
    let stride = g.stride[1];
    for c in 0..channels {
        let plane = c * bh * bw;
        for i in 0..kh {
            for j in 0..kw {
                let row = ((c * kh + i) * kw + j) * ncols;
                let (lo, hi) = g.valid(1, j);
                let off = ((lo * stride + j) as isize - g.pad[1] as isize) as usize;
                for r in r0..r1 {
                    let ih = (r * g.stride[0] + i) as isize - g.pad[0] as isize;
                    let inside = ih >= 0 && ih < bh as isize;
                    f(Segment {
                        cols: row + (r - r0) * sw,
                        big_row: inside.then(|| plane + ih as usize * bw),
                        lo,
                        hi,
                        off,
                        stride,
                    });
                }
            }
        }
    }
}

/// `cols[(c, i, j), (r - r0, o)] = big[c, r * s0 + i - p0, o * s1 + j - p1]` (0 outside), for small
/// rows `r0..r1`; `cols` is `[channels * taps, (r1 - r0) * small_w]`.
fn im2col(g: &Geom, channels: usize, big: &[f32], r0: usize, r1: usize, cols: &mut [f32]) {
    let (bw, sw) = (g.big[1], g.small[1]);
    for_each_segment(g, channels, r0, r1, |sg| {
        let seg = &mut cols[sg.cols..][..sw];
        let Some(big_row) = sg.big_row else {
            seg.fill(0.0);
            return;
        };
        let src = &big[big_row..][..bw];
        let (lo, hi, off, stride) = (sg.lo, sg.hi, sg.off, sg.stride);
        seg[..lo].fill(0.0);
        seg[hi..].fill(0.0);
        if stride == 1 {
            seg[lo..hi].copy_from_slice(&src[off..off + (hi - lo)]);
        } else {
            for (k, v) in seg[lo..hi].iter_mut().enumerate() {
                *v = src[off + k * stride];
            }
        }
    });
}

/// The adjoint of [`im2col`]: `big[c, r * s0 + i - p0, o * s1 + j - p1] += cols[(c, i, j), ..]`.
fn col2im(g: &Geom, channels: usize, cols: &[f32], r0: usize, r1: usize, big: &mut [f32]) {
    let (bw, sw) = (g.big[1], g.small[1]);
    for_each_segment(g, channels, r0, r1, |sg| {
        let Some(big_row) = sg.big_row else {
            return;
        };
        let seg = &cols[sg.cols..][..sw];
        let dst = &mut big[big_row..][..bw];
        let (lo, hi, off, stride) = (sg.lo, sg.hi, sg.off, sg.stride);
        if stride == 1 {
            for (d, v) in dst[off..off + (hi - lo)].iter_mut().zip(&seg[lo..hi]) {
                *d += v;
            }
        } else {
            for (k, v) in seg[lo..hi].iter().enumerate() {
                dst[off + k * stride] += v;
            }
        }
    });
}

/// Small rows `r0..r1`: the columns `start..start + len` of every small-side matrix.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tile {
    r0: usize,
    r1: usize,
    start: usize,
    len: usize,
    /// Floats per channel of a small-side image (its row stride as a matrix).
    plane: usize,
}

impl Tile {
    /// This tile's columns of a small-side image `[channels, small]`.
    #[inline]
    pub(crate) fn of<'a>(&self, image: &'a [f32], channels: usize) -> MatRef<'a> {
        MatRef::rows(&image[self.start..], channels, self.len, self.plane)
    }

    /// [`Tile::of`], writable.
    #[inline]
    pub(crate) fn of_mut<'a>(&self, image: &'a mut [f32], channels: usize) -> MatMut<'a> {
        MatMut::rows(&mut image[self.start..], channels, self.len, self.plane)
    }
}

/// The im2col lowering of the big maps of `channels` channels under a geometry; a tile's
/// columns live in a scratch buffer of [`Lowering::scratch_len`] floats (one per thread).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Lowering<'g> {
    geom: &'g Geom,
    channels: usize,
    tile_rows: usize,
}

impl<'g> Lowering<'g> {
    pub(crate) fn new(geom: &'g Geom, channels: usize) -> Self {
        let tile_rows = geom.tile_rows(channels * geom.taps());
        Lowering {
            geom,
            channels,
            tile_rows,
        }
    }

    /// Rows of the column matrix: channels x taps.
    pub(crate) fn depth(&self) -> usize {
        self.channels * self.geom.taps()
    }

    /// A weight `[rows, depth]` (row-major) as the matrix that multiplies the columns.
    pub(crate) fn weights<'w>(&self, w: &'w [f32], rows: usize) -> MatRef<'w> {
        MatRef::rows(w, rows, self.depth(), self.depth())
    }

    /// Floats of scratch one tile's columns need.
    pub(crate) fn scratch_len(&self) -> usize {
        self.depth() * self.tile_rows * self.geom.small[1]
    }

    /// [`map_images`] with a scratch buffer for one tile's columns: `f(cols, out_image,
    /// in_image)`, each input image `in_len` floats.
    pub(crate) fn map_images(
        &self,
        out: Planes,
        bias: Option<&[f32]>,
        (input, in_len): (&[f32], usize),
        f: impl Fn(&mut [f32], &mut [f32], &[f32]) + Sync + Send,
    ) -> Vec<f32> {
        map_images(out, bias, input, in_len, self.scratch_len(), f)
    }

    fn tiles(&self) -> impl Iterator<Item = Tile> + '_ {
        let (sw, plane) = (self.geom.small[1], self.geom.small_len());
        self.geom
            .row_tiles(self.tile_rows)
            .map(move |(r0, r1)| Tile {
                r0,
                r1,
                start: r0 * sw,
                len: (r1 - r0) * sw,
                plane,
            })
    }

    /// For each tile: writes the tile's columns of `big` into `scratch` (im2col), then calls
    /// `f(tile, cols)` with them as a `[depth, tile]` matrix.
    pub(crate) fn for_each_im2col(
        &self,
        big: &[f32],
        scratch: &mut [f32],
        mut f: impl FnMut(Tile, MatRef),
    ) {
        let k = self.depth();
        for t in self.tiles() {
            let cols = &mut scratch[..k * t.len];
            im2col(self.geom, self.channels, big, t.r0, t.r1, cols);
            f(t, MatRef::rows(cols, k, t.len, t.len));
        }
    }

    /// For each tile: `f(tile, cols)` writes the tile's columns (a `[depth, tile]` matrix in
    /// `scratch`), which are then added into `big` (col2im).
    pub(crate) fn for_each_col2im(
        &self,
        scratch: &mut [f32],
        big: &mut [f32],
        mut f: impl FnMut(Tile, MatMut),
    ) {
        let k = self.depth();
        for t in self.tiles() {
            let cols = &mut scratch[..k * t.len];
            f(t, MatMut::rows(cols, k, t.len, t.len));
            col2im(self.geom, self.channels, cols, t.r0, t.r1, big);
        }
    }
}
