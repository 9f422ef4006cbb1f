//! The one matrix product behind every convolution kernel: [`gemm_into`]`(dst, a, b, accumulate)`
//! on strided matrix views ([`MatRef`], [`MatMut`]), a bounds-checked wrapper of the `gemm`
//! crate. Single-threaded: the kernels parallelise over images and batch chunks instead.

/// A read-only `rows x cols` matrix inside a slice: element `(r, c)` is
/// `data[r * row_stride + c * col_stride]`. A transpose ([`MatRef::t`]) only swaps the strides.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// `rows x cols` with contiguous rows that start `row_stride` floats apart (a whole
    /// row-major matrix when `row_stride == cols`, a band of columns of a wider one otherwise).
    #[inline]
    pub(crate) fn rows(data: &'a [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        MatRef {
            data,
            rows,
            cols,
            row_stride,
            col_stride: 1,
        }
    }

    /// The transpose, without a copy.
    #[inline]
    pub(crate) fn t(self) -> Self {
        MatRef {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }
}

/// A writable `rows x cols` matrix inside a slice, with contiguous rows `row_stride` floats apart.
#[derive(Debug)]
pub(crate) struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
}

impl<'a> MatMut<'a> {
    /// See [`MatRef::rows`].
    #[inline]
    pub(crate) fn rows(data: &'a mut [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        MatMut {
            data,
            rows,
            cols,
            row_stride,
        }
    }
}

/// `dst = a @ b`, or `dst += a @ b` when `accumulate`. Panics when the shapes disagree or a view
/// reaches past its slice.
pub(crate) fn gemm_into(dst: MatMut, a: MatRef, b: MatRef, accumulate: bool) {
    let (m, n, k) = (dst.rows, dst.cols, a.cols);
    assert_eq!(
        (a.rows, b.rows, b.cols),
        (m, k, n),
        "gemm_into: shapes [{m}, {n}] = [{}, {k}] @ [{}, {}]",
        a.rows,
        b.rows,
        b.cols
    );
    if m == 0 || n == 0 {
        return;
    }
    let dst_rs = dst.row_stride;
    assert!(dst.data.len() > (m - 1) * dst_rs + n - 1);
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                dst.data[r * dst_rs..r * dst_rs + n].fill(0.0);
            }
        }
        return;
    }
    assert!(a.data.len() > (m - 1) * a.row_stride + (k - 1) * a.col_stride);
    assert!(b.data.len() > (k - 1) * b.row_stride + (n - 1) * b.col_stride);
    // SAFETY: the asserts above keep every index gemm touches inside the slices; `dst` does not
    // alias `a` or `b` (a mutable borrow and two shared ones).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.data.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}
