//! Training-step throughput, measured like the PyTorch twin (`tools/torch_dcgan.py`): a fixed
//! uniform [0, 1) "real" batch, warm-up steps, then timed steps that each end with a read-back
//! of the losses (a device sync).

use std::time::Instant;

use anyhow::Result;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Distribution, Tensor};

use crate::config::TrainConfig;
use crate::gan::Gan;

/// Runs `warmup + steps` training steps and returns a JSON object with img/s.
pub fn bench_steps<B: AutodiffBackend>(
    cfg: &TrainConfig,
    warmup: usize,
    steps: usize,
    device: &B::Device,
) -> Result<serde_json::Value> {
    let mut gan = Gan::<B>::new(cfg, device);
    let (g, d) = (gan.g.param_counts(), gan.d.param_counts());
    let m = &cfg.model;
    B::seed(device, 1);
    let real = Tensor::<B, 4>::random(
        [cfg.batch, 3, m.height, m.width],
        Distribution::Default,
        device,
    );
    let mut times = Vec::new();
    let mut last = [0f32; 4];
    let first = Instant::now();
    let mut first_step_s = 0.0;
    for step in 0..warmup + steps {
        let t = Instant::now();
        let stats = gan.step(real.clone(), step as u64);
        let v = stats.into_data().to_vec::<f32>().expect("f32 stats");
        last.copy_from_slice(&v[..4]);
        let dt = t.elapsed().as_secs_f64();
        if step == 0 {
            first_step_s = first.elapsed().as_secs_f64();
        }
        eprintln!(
            "{} {step}: {:.2} ms  loss_d {:.5}  loss_g {:.5}",
            if step < warmup { "warmup" } else { "step" },
            dt * 1e3,
            v[0],
            v[1]
        );
        if step >= warmup {
            times.push(dt);
        }
    }
    let total: f64 = times.iter().sum();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN);
    Ok(serde_json::json!({
        "impl": format!("facegan-{}", env!("CARGO_PKG_VERSION")),
        "preset": cfg.preset,
        "batch": cfg.batch,
        "steps": steps,
        "warmup": warmup,
        "img_per_s": (cfg.batch * steps) as f64 / total,
        "ms_per_step_median": median * 1e3,
        "ms_per_step_mean": total * 1e3 / steps as f64,
        "first_step_s": first_step_s,
        "loss_d": last[0],
        "loss_g": last[1],
        "params_g": g.total,
        "params_d": d.total,
    }))
}

/// Compiles (and autotunes) every GPU kernel a preset needs before a long run: two training
/// steps at the run's batch size, then an eval-mode sample grid and D pass, as the trainer and
/// evaluator do. Returns the seconds each phase took. On the CPU it is just a smoke test.
pub fn warm_up<B: AutodiffBackend>(
    cfg: &TrainConfig,
    device: &B::Device,
) -> Result<serde_json::Value> {
    use burn::module::AutodiffModule;
    let t = Instant::now();
    let mut gan = Gan::<B>::new(cfg, device);
    let m = &cfg.model;
    let real = Tensor::<B, 4>::random(
        [cfg.batch, 3, m.height, m.width],
        Distribution::Default,
        device,
    );
    let mut step_s = Vec::new();
    for step in 0..2 {
        let s = Instant::now();
        let stats = gan.step(real.clone(), step);
        let _ = stats.into_data();
        step_s.push(s.elapsed().as_secs_f64());
    }
    let s = Instant::now();
    let (g, d) = (gan.g.valid(), gan.d.valid());
    let z = Tensor::<B::InnerBackend, 2>::random(
        [64, m.latent],
        Distribution::Normal(0.0, 1.0),
        device,
    );
    let images = g.forward(z);
    let _ = d.forward(images).into_data();
    let eval_s = s.elapsed().as_secs_f64();
    Ok(serde_json::json!({
        "preset": cfg.preset,
        "batch": cfg.batch,
        "first_step_s": step_s[0],
        "second_step_s": step_s[1],
        "eval_pass_s": eval_s,
        "total_s": t.elapsed().as_secs_f64(),
    }))
}

/// One row of the per-op profile.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OpTiming {
    pub op: String,
    pub forward_ms: f64,
    pub backward_ms: f64,
}

/// Times one op forward and backward (on `x` requiring grad), median of `reps`.
fn time_op<B: AutodiffBackend, const D: usize, const E: usize>(
    name: String,
    x: Tensor<B, D>,
    reps: usize,
    op: impl Fn(Tensor<B, D>) -> Tensor<B, E>,
) -> OpTiming {
    let (mut f, mut b) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let x = x.clone().detach().require_grad();
        let t = Instant::now();
        let y = op(x.clone());
        let _ = y.clone().inner().sum().into_data();
        f.push(t.elapsed().as_secs_f64() * 1e3);
        let loss = (y.clone() * y.ones_like()).sum();
        let t = Instant::now();
        let grads = loss.backward();
        let _ = x.grad(&grads).map(|g| g.sum().into_data());
        b.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let med = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    OpTiming {
        op: name,
        forward_ms: med(f),
        backward_ms: med(b),
    }
}

/// Per-op forward/backward times of both networks at the config's batch size (each op timed
/// alone on inputs of its real shape), for finding the slow paths of a backend.
pub fn profile_ops<B: AutodiffBackend>(
    cfg: &TrainConfig,
    reps: usize,
    device: &B::Device,
) -> Vec<OpTiming> {
    use burn::tensor::activation::sigmoid;
    use facegan_model::cpu::ops as cpu;
    use facegan_model::layers::{leaky_relu, BatchNorm2d};
    use facegan_model::{Discriminator, Generator};
    let m = &cfg.model;
    let n = cfg.batch;
    let d = Discriminator::<B>::new(m, device);
    let g = Generator::<B>::new(m, device);
    let rand4 =
        |shape: [usize; 4]| Tensor::<B, 4>::random(shape, Distribution::Normal(0.0, 1.0), device);
    let mut out = Vec::new();
    // The BatchNorm + LeakyReLU (one fused op) or the LeakyReLU that follow each conv, at the
    // conv's output shape, as the model runs them.
    let norm_and_activation = |out: &mut Vec<OpTiming>,
                               net: &str,
                               i: usize,
                               shape: [usize; 4],
                               norm: Option<&BatchNorm2d<B>>| {
        let [_, c, h, w] = shape;
        match norm {
            Some(norm) => out.push(time_op(
                format!("{net} batchnorm+leaky_relu{i} {c}@{h}x{w}"),
                rand4(shape),
                reps,
                |x| norm.forward_act(x, Some(m.leaky_slope)),
            )),
            None => out.push(time_op(
                format!("{net} leaky_relu{i} {c}@{h}x{w}"),
                rand4(shape),
                reps,
                |x| leaky_relu(x, m.leaky_slope),
            )),
        }
    };
    let (mut c, mut h, mut w) = (3, m.height, m.width);
    for (i, block) in d.blocks.iter().enumerate() {
        let cout = block.conv.weight.dims()[0];
        out.push(time_op(
            format!("D conv{i} {c}->{cout} @{h}x{w}"),
            rand4([n, c, h, w]),
            reps,
            |x| cpu::conv2d(&block.conv, x),
        ));
        let s = block.conv.stride;
        (c, h, w) = (cout, h / s[0], w / s[1]);
        out.push(time_op(
            format!("D dropout{i} {c}@{h}x{w}"),
            rand4([n, c, h, w]),
            reps,
            |x| cpu::dropout(&d.dropout, x),
        ));
        norm_and_activation(&mut out, "D", i, [n, c, h, w], block.norm.as_ref());
    }
    // The dense layer's input (the minibatch-stddev channel included).
    let feat = d.head.weight.dims()[0];
    let flat = Tensor::<B, 2>::random([n, feat], Distribution::Normal(0.0, 1.0), device);
    out.push(time_op(format!("D dense {feat}->1"), flat, reps, |x| {
        d.head.forward(x)
    }));
    let z = Tensor::<B, 2>::random([n, m.latent], Distribution::Normal(0.0, 1.0), device);
    out.push(time_op(
        format!(
            "G dense {}->{}",
            m.latent,
            g.start.iter().product::<usize>()
        ),
        z,
        reps,
        |x| g.project.forward(x),
    ));
    let [mut c, mut h, mut w] = g.start;
    for (i, block) in g.blocks.iter().enumerate() {
        let cout = block.conv.out_channels();
        let name = format!("G upsample{i} ({:?}) {c}->{cout} @{h}x{w}", m.g_upsample);
        match block.norm.as_ref() {
            Some(norm) => {
                out.push(time_op(name, rand4([n, c, h, w]), reps, |x| {
                    block.conv.forward_act(x, None)
                }));
                (c, h, w) = (cout, h * 2, w * 2);
                norm_and_activation(&mut out, "G", i, [n, c, h, w], Some(norm));
            }
            None => {
                // No norm: the LeakyReLU is fused into the convolution.
                out.push(time_op(
                    format!("{name} +leaky_relu"),
                    rand4([n, c, h, w]),
                    reps,
                    |x| block.conv.forward_act(x, Some(m.leaky_slope)),
                ));
                (c, h, w) = (cout, h * 2, w * 2);
            }
        }
    }
    out.push(time_op(
        format!("G to_rgb conv {c}->3 @{h}x{w}"),
        rand4([n, c, h, w]),
        reps,
        |x| cpu::conv2d(&g.to_rgb, x),
    ));
    out.push(time_op(
        format!("G sigmoid 3@{h}x{w}"),
        rand4([n, 3, h, w]),
        reps,
        sigmoid,
    ));
    out
}
