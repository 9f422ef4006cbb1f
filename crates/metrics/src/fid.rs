//! FID, KID and precision/recall on Inception features (one row of `d` f32 values per image),
//! computed as the field computes them:
//! - [`fid`]: Fréchet distance between Gaussians fitted to two feature sets, as pytorch-fid's
//!   `calculate_frechet_distance`: means and unbiased covariances in f64, `|mu1 - mu2|^2 +
//!   tr(S1) + tr(S2) - 2 tr(sqrt(S1 S2))`. The trace of the square root comes from two
//!   symmetric eigendecompositions (faer): `tr sqrt(S1 S2) = sum sqrt(eig(sqrt(S1) S2
//!   sqrt(S1)))`, the same number as scipy's `sqrtm` for positive semi-definite covariances.
//! - [`kid`]: clean-fid's `kernel_distance`: the unbiased MMD^2 with the cubic polynomial
//!   kernel `(x.y / d + 1)^3` on random subsets; clean-fid's value is the mean over subsets,
//!   facegan adds their standard deviation.
//! - [`precision_recall`]: Kynkäänniemi et al. 2019: a fake is precise when it lies inside
//!   some real's ball (radius: distance to that real's k-th nearest real), a real is recalled
//!   when it lies inside some fake's ball.

use anyhow::{bail, Result};
use faer::{Mat, Side};
use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Mean and covariance of a feature set: what FID needs of each side (cached for the reals).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FeatureStats {
    /// Images.
    pub n: usize,
    /// Feature width.
    pub d: usize,
    pub mean: Vec<f64>,
    /// Unbiased (divided by n - 1), row-major `d x d`.
    pub cov: Vec<f64>,
}

/// `rows` (n x d, row-major f32) as an f64 matrix.
fn matrix(rows: &[f32], d: usize) -> Mat<f64> {
    let n = rows.len() / d;
    Mat::from_fn(n, d, |i, j| rows[i * d + j] as f64)
}

impl FeatureStats {
    /// The statistics of `rows` (n x d, row-major); n >= 2.
    pub fn of(rows: &[f32], d: usize) -> Result<Self> {
        if d == 0 || !rows.len().is_multiple_of(d) {
            bail!("{} values are not rows of {d} features", rows.len());
        }
        let n = rows.len() / d;
        if n < 2 {
            bail!("a covariance needs at least 2 images, not {n}");
        }
        let x = matrix(rows, d);
        let mean: Vec<f64> = (0..d)
            .map(|j| (0..n).map(|i| x[(i, j)]).sum::<f64>() / n as f64)
            .collect();
        let centred = Mat::from_fn(n, d, |i, j| x[(i, j)] - mean[j]);
        let cov = centred.transpose() * &centred;
        let scale = 1.0 / (n - 1) as f64;
        Ok(Self {
            n,
            d,
            mean,
            cov: (0..d * d).map(|k| cov[(k / d, k % d)] * scale).collect(),
        })
    }

    fn cov_matrix(&self) -> Mat<f64> {
        Mat::from_fn(self.d, self.d, |i, j| self.cov[i * self.d + j])
    }
}

/// The Fréchet Inception Distance between two sets' statistics.
pub fn fid(a: &FeatureStats, b: &FeatureStats) -> Result<f64> {
    if a.d != b.d {
        bail!("features of {} and {} values cannot be compared", a.d, b.d);
    }
    let d = a.d;
    let diff: f64 = a
        .mean
        .iter()
        .zip(&b.mean)
        .map(|(x, y)| (x - y) * (x - y))
        .sum();
    let trace = |s: &FeatureStats| (0..d).map(|i| s.cov[i * d + i]).sum::<f64>();
    let s1 = a.cov_matrix();
    let s2 = b.cov_matrix();
    let e1 = match s1.self_adjoint_eigen(Side::Lower) {
        Ok(e) => e,
        Err(e) => bail!("the eigendecomposition of a covariance failed: {e:?}"),
    };
    let (u, lambda) = (e1.U(), e1.S().column_vector());
    let root = Mat::from_fn(d, d, |i, j| u[(i, j)] * lambda[j].max(0.0).sqrt());
    let sqrt_s1 = &root * u.transpose();
    let m = &sqrt_s1 * &s2 * &sqrt_s1;
    let m = Mat::from_fn(d, d, |i, j| 0.5 * (m[(i, j)] + m[(j, i)]));
    let eig = match m.self_adjoint_eigenvalues(Side::Lower) {
        Ok(e) => e,
        Err(e) => bail!("the eigendecomposition for the matrix square root failed: {e:?}"),
    };
    let tr_covmean: f64 = eig.iter().map(|l| l.max(0.0).sqrt()).sum();
    Ok(diff + trace(a) + trace(b) - 2.0 * tr_covmean)
}

/// KID: the mean and standard deviation over subsets of the unbiased MMD^2.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Kid {
    pub mean: f64,
    pub std: f64,
    pub subsets: usize,
    pub subset_size: usize,
}

/// Clean-fid's defaults: 100 subsets of at most 1,000 images.
pub const KID_SUBSETS: usize = 100;
pub const KID_MAX_SUBSET: usize = 1000;

/// KID between `real` and `fake` (rows of `d` features), as clean-fid's `kernel_distance`:
/// `subsets` draws of `m = min(n_real, n_fake, max_subset)` images from each side without
/// replacement (seeded), each giving `((sum(K_xx) - tr) + (sum(K_yy) - tr)) / (m - 1) -
/// 2 sum(K_xy) / m`, divided by `m`.
pub fn kid(
    real: &[f32],
    fake: &[f32],
    d: usize,
    subsets: usize,
    max_subset: usize,
    seed: u64,
) -> Result<Kid> {
    let (nr, nf) = (real.len() / d, fake.len() / d);
    let m = nr.min(nf).min(max_subset);
    if m < 2 || subsets == 0 {
        bail!("KID needs at least 2 images on each side ({nr} real, {nf} fake)");
    }
    let real = matrix(real, d);
    let fake = matrix(fake, d);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let kernel_sum = |k: &Mat<f64>, skip_diagonal: bool| -> f64 {
        let mut s = 0.0;
        for j in 0..k.ncols() {
            for i in 0..k.nrows() {
                if !(skip_diagonal && i == j) {
                    let v = k[(i, j)] / d as f64 + 1.0;
                    s += v * v * v;
                }
            }
        }
        s
    };
    let mut values = Vec::with_capacity(subsets);
    for _ in 0..subsets {
        // clean-fid draws the fakes' subset first, then the reals'.
        let xi = sample(&mut rng, nf, m);
        let yi = sample(&mut rng, nr, m);
        let x = Mat::from_fn(m, d, |i, j| fake[(xi.index(i), j)]);
        let y = Mat::from_fn(m, d, |i, j| real[(yi.index(i), j)]);
        let a = kernel_sum(&(&x * x.transpose()), true) + kernel_sum(&(&y * y.transpose()), true);
        let b = kernel_sum(&(&x * y.transpose()), false);
        values.push((a / (m - 1) as f64 - 2.0 * b / m as f64) / m as f64);
    }
    let mean = values.iter().sum::<f64>() / subsets as f64;
    let std = if subsets > 1 {
        (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (subsets - 1) as f64).sqrt()
    } else {
        0.0
    };
    Ok(Kid {
        mean,
        std,
        subsets,
        subset_size: m,
    })
}

/// Squared Euclidean distances between the rows of `a` (n x d) and of `b` (m x d).
fn squared_distances(a: &Mat<f64>, b: &Mat<f64>) -> Mat<f64> {
    let dot = a * b.transpose();
    let norm = |x: &Mat<f64>, i: usize| (0..x.ncols()).map(|j| x[(i, j)] * x[(i, j)]).sum::<f64>();
    let na: Vec<f64> = (0..a.nrows()).map(|i| norm(a, i)).collect();
    let nb: Vec<f64> = (0..b.nrows()).map(|i| norm(b, i)).collect();
    Mat::from_fn(a.nrows(), b.nrows(), |i, j| {
        (na[i] + nb[j] - 2.0 * dot[(i, j)]).max(0.0)
    })
}

/// Each row's squared distance to its `k`-th nearest other row of the same set.
fn kth_neighbour_radii(x: &Mat<f64>, k: usize) -> Vec<f64> {
    let dist = squared_distances(x, x);
    (0..x.nrows())
        .map(|i| {
            let mut row: Vec<f64> = (0..x.nrows())
                .filter(|&j| j != i)
                .map(|j| dist[(i, j)])
                .collect();
            let k = k.min(row.len()).max(1) - 1;
            *row.select_nth_unstable_by(k, |p, q| p.total_cmp(q)).1
        })
        .collect()
}

/// Precision and recall (Kynkäänniemi et al. 2019) with `k` nearest neighbours.
pub fn precision_recall(real: &[f32], fake: &[f32], d: usize, k: usize) -> Result<(f64, f64)> {
    let (real, fake) = (matrix(real, d), matrix(fake, d));
    if real.nrows() <= k || fake.nrows() <= k {
        bail!(
            "precision and recall need more than k = {k} images on each side ({} real, {} fake)",
            real.nrows(),
            fake.nrows()
        );
    }
    let within = |points: &Mat<f64>, centres: &Mat<f64>| -> f64 {
        let radii = kth_neighbour_radii(centres, k);
        let dist = squared_distances(points, centres);
        let inside = (0..points.nrows())
            .filter(|&i| (0..centres.nrows()).any(|j| dist[(i, j)] <= radii[j]))
            .count();
        inside as f64 / points.nrows() as f64
    };
    Ok((within(&fake, &real), within(&real, &fake)))
}
