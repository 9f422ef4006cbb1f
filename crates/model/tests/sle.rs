//! Skip-layer excitation in G (`g_sle`): it trains on the CPU fast path, its gates are
//! PyTorch's (adaptive 4x4 average pooling, dense, Swish, dense, sigmoid), it adds its layers
//! after all the others, and generator files of the layout before it still load.

mod common;

use burn::backend::{Autodiff, Flex};
use burn::module::{Module, Param};
use burn::record::{BinFileRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::{Distribution, Tensor, TensorData};
use facegan_model::generator::{Excitation, GeneratorRecord};
use facegan_model::legacy::GeneratorRecordV3;
use facegan_model::{Generator, ModelConfig};

type B = Flex;
type AD = Autodiff<Flex>;

/// Three resolution steps (the fewest `g_sle` takes) on 32x32 images.
fn small_sle() -> ModelConfig {
    ModelConfig {
        height: 32,
        width: 32,
        d_channels: vec![8, 8, 8],
        d_batchnorm: vec![false, true, true],
        g_channels: vec![16, 8, 8],
        g_batchnorm: vec![true; 3],
        g_sle: true,
        ..ModelConfig::tiny()
    }
}

/// A generator with excitations draws images in [0, 1], gradients reach both dense layers of
/// its excitation and its own dense layer, and its convolutions run the CPU kernels (none falls
/// back to Burn's ops).
#[test]
fn an_excited_generator_trains_on_the_cpu_fast_path() {
    let cfg = small_sle();
    cfg.validate().unwrap();
    let device = Default::default();
    let _turn = common::rng_turn();
    let g = Generator::<AD>::new(&cfg, &device);
    assert_eq!(g.excitations.len(), 1, "bottom map -> step 3");
    let mark = common::FastPathMark::now();
    let z = Tensor::<AD, 2>::random([4, cfg.latent], Distribution::Normal(0.0, 1.0), &device);
    let images = g.forward(z);
    assert_eq!(images.dims(), [4, 3, 32, 32]);
    let (lo, hi) = (
        images.clone().min().into_scalar(),
        images.clone().max().into_scalar(),
    );
    assert!((0.0..=1.0).contains(&lo) && (0.0..=1.0).contains(&hi) && lo < hi);
    let grads = images.mean().backward();
    let learns = |w: Option<Tensor<B, 2>>, what: &str| {
        let w = w.unwrap_or_else(|| panic!("{what} has no gradient"));
        assert!(
            w.abs().sum().into_scalar() > 0.0,
            "{what}'s gradient is zero"
        );
    };
    learns(g.excitations[0].squeeze.weight.grad(&grads), "squeeze");
    learns(g.excitations[0].excite.weight.grad(&grads), "excite");
    learns(g.project.weight.grad(&grads), "the dense layer");
    mark.assert_fast_since("the excited generator");
}

/// One excitation on fixed numbers gives PyTorch's: a 2-channel 6x5 map (overlapping adaptive
/// pooling bins along the width) gating a 3-channel 2x2 one. The reference, with Burn's `[in,
/// out]` weights transposed into `nn.Linear`:
/// `fine * sigmoid(silu(adaptive_avg_pool2d(coarse, 4).flatten(1) @ sq) @ ex)[:, :, None, None]`
/// for `coarse = sin(0.37 k)`, `fine = cos(0.21 k)`, `sq[i][j] = ((3i + j) % 7 - 3) / 2`,
/// `ex[i][j] = (3i + j) % 5 - 2`.
#[test]
fn excitation_matches_pytorch() {
    let device = Default::default();
    let tensor = |values: Vec<f32>, shape: [usize; 4]| {
        Tensor::<B, 4>::from_data(TensorData::new(values, shape), &device)
    };
    let coarse = tensor(
        (0..60).map(|k| (k as f32 * 0.37).sin()).collect(),
        [1, 2, 6, 5],
    );
    let fine = tensor(
        (0..12).map(|k| (k as f32 * 0.21).cos()).collect(),
        [1, 3, 2, 2],
    );
    let weight = |rows: usize, f: &dyn Fn(usize) -> f32| {
        let values: Vec<f32> = (0..rows * 3).map(f).collect();
        Param::from_tensor(Tensor::<B, 2>::from_data(
            TensorData::new(values, [rows, 3]),
            &device,
        ))
    };
    let mut sle = Excitation::<B>::new(2, 3, &device);
    sle.squeeze.weight = weight(32, &|k| ((k % 7) as f32 - 3.0) * 0.5);
    sle.excite.weight = weight(3, &|k| (k % 5) as f32 - 2.0);
    let got = sle
        .forward(coarse, fine)
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    #[rustfmt::skip]
    let torch = [
        0.273732, 0.267719, 0.249942, 0.221183, 0.198470, 0.147953,
        0.090935, 0.029921, -0.069870, -0.201180, -0.323650, -0.431899,
    ];
    common::assert_matches_pytorch(&got, &torch, 1e-5);
}

/// The excitations are drawn after all the other layers: from the same seed, an excited
/// `faces96` has the plain `faces96`'s weights, plus one excitation from the bottom map to step
/// 3 (256 x 16 -> 64, 64 -> 64) and one from step 1 to step 4 (256 x 16 -> 32, 32 -> 32).
#[test]
fn excitations_are_drawn_after_the_plain_layers() {
    let device = Default::default();
    let _turn = common::rng_turn();
    let sle_cfg = ModelConfig {
        g_sle: true,
        ..ModelConfig::faces96()
    };
    let [plain, sle] =
        common::generators_from_one_seed::<B>(7, [&ModelConfig::faces96(), &sle_cfg], &device);
    let extra = 256 * 16 * 64 + 64 * 64 + 256 * 16 * 32 + 32 * 32;
    assert_eq!(sle.param_counts().total, plain.param_counts().total + extra);
    assert_eq!(
        sle.project.weight.val().into_data(),
        plain.project.weight.val().into_data()
    );
    assert_eq!(
        sle.to_rgb.weight.val().into_data(),
        plain.to_rgb.weight.val().into_data()
    );
    let z = Tensor::<B, 2>::random([2, 64], Distribution::Normal(0.0, 1.0), &device);
    assert_ne!(
        sle.forward(z.clone()).into_data(),
        plain.forward(z).into_data(),
        "the gates change the image"
    );
}

/// A generator file in the layout before excitations (v3: no `excitations` list) does not
/// parse as today's, so the loader falls back to it; it parses as v3 with or without its
/// trailing `skip` byte, and the converted record draws the same images.
#[test]
fn generator_files_of_the_layout_before_excitations_load() {
    let device = Default::default();
    let _turn = common::rng_turn();
    let cfg = ModelConfig::faces48();
    let g = Generator::<B>::new(&cfg, &device);
    let dir = std::env::temp_dir().join(format!("facegan-sle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let recorder = BinFileRecorder::<FullPrecisionSettings>::new();
    let today: GeneratorRecord<B> = g.clone().into_record();
    let v3 = GeneratorRecordV3::<B> {
        project: today.project,
        blocks: today.blocks,
        to_rgb: today.to_rgb,
        start: today.start,
        slope: today.slope,
        residual: today.residual,
        to_rgb_steps: today.to_rgb_steps,
        skip: today.skip,
    };
    recorder.record(v3, dir.join("v3")).unwrap();
    let bytes = std::fs::read(dir.join("v3.bin")).unwrap();
    assert_eq!(
        bytes.last(),
        Some(&0),
        "v3 ends with the skip field's `None` byte"
    );
    std::fs::write(dir.join("v3-no-skip.bin"), &bytes[..bytes.len() - 1]).unwrap();
    let z = Tensor::<B, 2>::random([2, cfg.latent], Distribution::Normal(0.0, 1.0), &device);
    let want = g.forward(z.clone()).into_data();
    for stem in ["v3", "v3-no-skip"] {
        assert!(
            recorder
                .load::<GeneratorRecord<B>>(dir.join(stem), &device)
                .is_err(),
            "{stem} parses as today's layout"
        );
        let old: GeneratorRecordV3<B> = recorder.load(dir.join(stem), &device).unwrap();
        let loaded = Generator::<B>::new(&cfg, &device).load_record(old.into());
        assert_eq!(loaded.forward(z.clone()).into_data(), want, "{stem}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
