//! FID, KID and precision/recall against closed forms and direct computations on small sets.

use facegan_metrics::fid::{fid, kid, precision_recall, FeatureStats};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random_rows(n: usize, d: usize, seed: u64, shift: f32) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n * d)
        .map(|k| rng.random::<f32>() * (1.0 + (k % d) as f32) + shift)
        .collect()
}

/// The statistics are the mean and the unbiased covariance (numpy's `np.cov`).
#[test]
fn stats_are_the_mean_and_the_unbiased_covariance() {
    let rows = [1.0f32, 2.0, 3.0, 6.0, 5.0, 4.0];
    let s = FeatureStats::of(&rows, 2).unwrap();
    assert_eq!(s.mean, vec![3.0, 4.0]);
    // x = [1, 3, 5], y = [2, 6, 4]: var x = 4, var y = 4, cov = (-2*-2 + 0 + 2*0) / 2 = 2.
    assert_eq!(s.cov, vec![4.0, 2.0, 2.0, 4.0]);
}

/// FID of a set with itself is zero, and between diagonal covariances it is the closed form
/// `sum (m1 - m2)^2 + s1 + s2 - 2 sqrt(s1 s2)`.
#[test]
fn fid_matches_the_closed_form_for_diagonal_covariances() {
    let a = random_rows(300, 5, 1, 0.0);
    let sa = FeatureStats::of(&a, 5).unwrap();
    assert!(fid(&sa, &sa).unwrap().abs() < 1e-9);
    let diag = |mean: Vec<f64>, var: Vec<f64>| FeatureStats {
        n: 10,
        d: mean.len(),
        cov: (0..var.len() * var.len())
            .map(|k| {
                if k / var.len() == k % var.len() {
                    var[k / var.len()]
                } else {
                    0.0
                }
            })
            .collect(),
        mean,
    };
    let s1 = diag(vec![0.0, 1.0, 2.0], vec![1.0, 4.0, 9.0]);
    let s2 = diag(vec![1.0, 1.0, 0.0], vec![4.0, 1.0, 1.0]);
    let want = (1.0 + 0.0 + 4.0) + (1.0 + 4.0 - 4.0) + (4.0 + 1.0 - 4.0) + (9.0 + 1.0 - 6.0);
    assert!((fid(&s1, &s2).unwrap() - want).abs() < 1e-9);
}

/// With covariances that do not commute, the trace of the square root is the 2x2 closed form
/// `tr sqrt(M) = sqrt(tr M + 2 sqrt(det M))` for `M = S1 S2`.
#[test]
fn fid_matches_the_closed_form_for_non_commuting_covariances() {
    let s1: [f64; 4] = [2.0, 0.7, 0.7, 1.0];
    let s2: [f64; 4] = [1.5, -0.4, -0.4, 0.8];
    let stats = |cov: [f64; 4], mean: Vec<f64>| FeatureStats {
        n: 10,
        d: 2,
        mean,
        cov: cov.to_vec(),
    };
    let m = [
        s1[0] * s2[0] + s1[1] * s2[2],
        s1[0] * s2[1] + s1[1] * s2[3],
        s1[2] * s2[0] + s1[3] * s2[2],
        s1[2] * s2[1] + s1[3] * s2[3],
    ];
    let tr_sqrt = ((m[0] + m[3]) + 2.0 * (m[0] * m[3] - m[1] * m[2]).sqrt()).sqrt();
    let want = 0.25 + 1.0 + (s1[0] + s1[3]) + (s2[0] + s2[3]) - 2.0 * tr_sqrt;
    let got = fid(&stats(s1, vec![0.5, 0.0]), &stats(s2, vec![0.0, 1.0])).unwrap();
    assert!((got - want).abs() < 1e-12, "{got} vs {want}");
}

/// KID on one subset of all images is the unbiased MMD^2 with the cubic polynomial kernel,
/// computed here directly with loops; more subsets give a mean and a spread.
#[test]
fn kid_is_the_unbiased_mmd_with_the_cubic_kernel() {
    let d = 4;
    let (x, y) = (random_rows(12, d, 2, 0.0), random_rows(12, d, 3, 0.3));
    let k = |a: &[f32], b: &[f32]| {
        let dot: f64 = a.iter().zip(b).map(|(p, q)| *p as f64 * *q as f64).sum();
        (dot / d as f64 + 1.0).powi(3)
    };
    let row = |v: &[f32], i: usize| v[i * d..(i + 1) * d].to_vec();
    let m = 12;
    let (mut xx, mut yy, mut xy) = (0.0, 0.0, 0.0);
    for i in 0..m {
        for j in 0..m {
            if i != j {
                xx += k(&row(&x, i), &row(&x, j));
                yy += k(&row(&y, i), &row(&y, j));
            }
            xy += k(&row(&x, i), &row(&y, j));
        }
    }
    let want = ((xx + yy) / (m - 1) as f64 - 2.0 * xy / m as f64) / m as f64;
    let got = kid(&x, &y, d, 1, m, 0).unwrap();
    assert!(
        (got.mean - want).abs() < 1e-9 * want.abs().max(1.0),
        "{} vs {want}",
        got.mean
    );
    let many = kid(&x, &y, d, 20, 8, 5).unwrap();
    assert_eq!((many.subsets, many.subset_size), (20, 8));
    assert!(many.std > 0.0);
}

/// Precision counts the fakes inside some real's k-NN ball, recall the reals inside some
/// fake's; identical sets score 1 and 1, a far-off set 0 and 0.
#[test]
fn precision_and_recall_count_points_inside_the_other_sets_balls() {
    let reals: Vec<f32> = (0..10).map(|i| i as f32).collect();
    // 1-D, k = 1: each real's radius is 1 (its nearest neighbour).
    let fakes = [0.5f32, 3.2, 8.9, 20.0];
    let (p, r) = precision_recall(&reals, &fakes, 1, 1).unwrap();
    assert_eq!(p, 0.75); // 20.0 is outside every ball
                         // The fakes' radii: 0.5 -> 2.7, 3.2 -> 2.7, 8.9 -> 5.7, 20.0 -> 11.1: every real in one.
    assert_eq!(r, 1.0);
    assert_eq!(precision_recall(&reals, &reals, 1, 3).unwrap(), (1.0, 1.0));
    let far: Vec<f32> = reals.iter().map(|v| v + 100.0).collect();
    assert_eq!(precision_recall(&reals, &far, 1, 3).unwrap(), (0.0, 0.0));
}
