//! What a convolution kernel is told: the geometry between its "big" and "small" maps
//! ([`Geom`]), its batch and channel counts ([`ConvShape`]), which gradients to compute
//! ([`WantGrads`]) and what it returns ([`ConvGrads`]).

/// Target size (floats) of one kernel scratch tile: about 1 MiB, which stays in a 2 MiB L2.
pub(crate) const TILE_FLOATS: usize = 256 * 1024;

/// Geometry of a convolution between a "big" map and a "small" one: `conv2d` maps big (its input)
/// to small (its output); a transposed convolution maps small (its input) to big (its output).
/// Small position `o` and kernel tap `k` touch big position `o * stride + k - pad`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geom {
    pub big: [usize; 2],
    pub small: [usize; 2],
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub pad: [usize; 2],
}

impl Geom {
    pub(crate) fn taps(&self) -> usize {
        self.kernel[0] * self.kernel[1]
    }
    pub(crate) fn big_len(&self) -> usize {
        self.big[0] * self.big[1]
    }
    pub(crate) fn small_len(&self) -> usize {
        self.small[0] * self.small[1]
    }
    /// Small rows per im2col tile for `rows_k` (= channels x taps) column-matrix rows.
    pub(crate) fn tile_rows(&self, rows_k: usize) -> usize {
        (TILE_FLOATS / (rows_k * self.small[1]).max(1)).clamp(1, self.small[0])
    }
    /// The tiles of small rows, `r0..r1`, of `rows` rows each (the last may be shorter).
    pub(crate) fn row_tiles(&self, rows: usize) -> impl Iterator<Item = (usize, usize)> {
        let h = self.small[0];
        (0..h).step_by(rows).map(move |r0| (r0, (r0 + rows).min(h)))
    }
    /// Range of small positions `o` along `axis` whose big position `o * s + tap - p` lies in
    /// `[0, big)`.
    pub(crate) fn valid(&self, axis: usize, tap: usize) -> (usize, usize) {
        let (s, p, big, small) = (
            self.stride[axis],
            self.pad[axis],
            self.big[axis],
            self.small[axis],
        );
        let lo = if tap >= p { 0 } else { (p - tap).div_ceil(s) };
        // o * s + tap - p <= big - 1  <=>  o <= (big - 1 + p - tap) / s
        let hi = if big + p > tap {
            ((big - 1 + p - tap) / s + 1).min(small)
        } else {
            0
        };
        (lo.min(hi), hi)
    }
}

/// A convolution's sizes: its geometry, the batch size and the input and output channel counts
/// (of the convolution itself: a transposed convolution's input is its small map).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConvShape {
    pub geom: Geom,
    pub n: usize,
    pub ci: usize,
    pub co: usize,
}

/// Which gradients a convolution's backward pass computes (those whose input is tracked).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WantGrads {
    pub dx: bool,
    pub dw: bool,
    pub db: bool,
}

/// A convolution's gradients, each present when it was asked for: input `dx`, weight `dw` (in
/// the weight's own layout) and bias `db`.
#[derive(Debug)]
pub(crate) struct ConvGrads {
    pub dx: Option<Vec<f32>>,
    pub dw: Option<Vec<f32>>,
    pub db: Option<Vec<f32>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ranges_match_brute_force() {
        for (big, small, s, p) in [(96, 48, 2, 1), (80, 80, 1, 1), (10, 5, 2, 1), (7, 4, 2, 1)] {
            let g = Geom {
                big: [big, big],
                small: [small, small],
                kernel: [3, 3],
                stride: [s, s],
                pad: [p, p],
            };
            for tap in 0..3 {
                let ok: Vec<usize> = (0..small)
                    .filter(|&o| {
                        let b = (o * s + tap) as isize - p as isize;
                        b >= 0 && b < big as isize
                    })
                    .collect();
                let (lo, hi) = g.valid(1, tap);
                assert_eq!(
                    ok,
                    (lo..hi).collect::<Vec<_>>(),
                    "{big} {small} {s} {p} {tap}"
                );
            }
        }
    }
}
