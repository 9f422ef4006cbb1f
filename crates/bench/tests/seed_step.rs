//! The `seed` preset's training step pinned to the tutorial's Keras code: the first step's
//! losses and per-tensor checksums of the updated weights must match what Keras computed on the
//! same weights, batch and noise (`tests/fixtures/seed_step_keras.json`, written by
//! `tools/keras_seed_oracle.py --write-fixture`; `make check-seed` reruns the full comparison).
//! No Python is needed here.

use burn::tensor::activation::sigmoid;
use burn::tensor::{Tensor, TensorData};
use facegan_bench::seed_check::{check_config, named_weights, run_steps};
use facegan_trainer::device::CpuBackend;
use facegan_trainer::gan::{g_loss, Gan};
use facegan_trainer::LossKind;
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    source: String,
    losses: [f64; 2],
    d_real: f64,
    d_fake: f64,
    /// Per tensor: sum, sum of squares, sum of |w|, after one step.
    tensors: std::collections::BTreeMap<String, [f64; 3]>,
}

/// Biases right before a BatchNorm: their exact gradient is 0, so both frameworks move them by
/// Adam-normalised float noise; their checksums are not compared.
const PRE_BATCHNORM_BIASES: [&str; 5] = [
    "g.up0.bias",
    "g.up1.bias",
    "g.up2.bias",
    "d.conv0.bias",
    "d.conv1.bias",
];

#[test]
fn seed_step_matches_the_keras_oracle() {
    let fixture: Fixture = serde_json::from_str(include_str!("fixtures/seed_step_keras.json"))
        .expect("the fixture parses");
    assert!(fixture.source.contains("keras_seed_oracle"));
    let cfg = check_config();
    let mut gan = Gan::<CpuBackend>::new(&cfg, &Default::default());
    let stats = run_steps(&mut gan, &cfg, 1)[0];
    let close = |a: f64, b: f64, tol: f64| (a - b).abs() <= tol * b.abs().max(1e-6);
    assert!(
        close(stats[0] as f64, fixture.losses[0], 1e-4),
        "D loss {} vs Keras {}",
        stats[0],
        fixture.losses[0]
    );
    assert!(
        close(stats[1] as f64, fixture.losses[1], 1e-4),
        "G loss {} vs Keras {}",
        stats[1],
        fixture.losses[1]
    );
    assert!(
        close(stats[2] as f64, fixture.d_real, 1e-4),
        "D(x) {} vs Keras {}",
        stats[2],
        fixture.d_real
    );
    assert!(
        close(stats[3] as f64, fixture.d_fake, 1e-4),
        "D(G(z)) {} vs Keras {}",
        stats[3],
        fixture.d_fake
    );
    let ours = named_weights(&gan.g, &gan.d);
    assert_eq!(
        ours.len(),
        fixture.tensors.len(),
        "the same tensors on both sides"
    );
    for (name, _, v) in ours {
        let want = fixture
            .tensors
            .get(&name)
            .unwrap_or_else(|| panic!("{name} in the fixture"));
        if PRE_BATCHNORM_BIASES.contains(&name.as_str()) {
            continue;
        }
        let sum: f64 = v.iter().map(|&x| x as f64).sum();
        let sq: f64 = v.iter().map(|&x| (x as f64).powi(2)).sum();
        let abs: f64 = v.iter().map(|&x| (x as f64).abs()).sum();
        // Sums of signed values can cancel, so they are held to the scale of sum |w|.
        let tol = 1e-4 * want[2] + 1e-9;
        assert!(
            (sum - want[0]).abs() <= tol,
            "{name}: sum {sum} vs Keras {}",
            want[0]
        );
        assert!(
            close(sq, want[1], 2e-4),
            "{name}: sum of squares {sq} vs Keras {}",
            want[1]
        );
        assert!(
            close(abs, want[2], 1e-4),
            "{name}: sum |w| {abs} vs Keras {}",
            want[2]
        );
    }
}

/// Keras computes the seed's BCE from the sigmoid's logits (the oracle confirms it), so a fake
/// that D scores below 1e-7 still sends G the gradient p - 1 (per image, averaged), not 0.
#[test]
fn seed_loss_gives_a_saturated_fake_a_gradient() {
    type B = CpuBackend;
    let logits = Tensor::<B, 2>::from_data(
        TensorData::new(vec![-30f32, -20.0], [2, 1]),
        &Default::default(),
    )
    .require_grad();
    let p = sigmoid(logits.clone()).into_data().to_vec::<f32>().unwrap();
    assert!(p.iter().all(|&v| v < 1e-7), "saturated: {p:?}");
    let grads = g_loss(LossKind::Seed, logits.clone()).backward();
    let g = logits
        .grad(&grads)
        .unwrap()
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    for (gi, pi) in g.iter().zip(&p) {
        assert!(
            (gi - (pi - 1.0) / 2.0).abs() < 1e-6,
            "gradient {gi}, want (p - 1) / 2"
        );
    }
}
