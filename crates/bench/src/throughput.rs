//! Training-step throughput, measured like the PyTorch twin (`tools/torch_dcgan.py`): a fixed
//! uniform [0, 1) "real" batch, warm-up steps, then timed steps that each end with a read-back
//! of the losses (a device sync).

use std::time::Instant;

use anyhow::Result;
use burn::tensor::activation::sigmoid;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Distribution, Tensor};
use facegan_model::layers::{leaky_relu, BatchNorm2d};
use facegan_model::{ops, Discriminator, Generator, Level, ModelConfig};

use facegan_trainer::gan::Gan;
use facegan_trainer::TrainConfig;

/// Runs `warmup + steps` training steps and returns a JSON object with img/s. A growing config
/// (progressive growing) is timed at every phase too: each size as it runs alone, and each
/// fade-in (at alpha 0.5), under `phases`; the top-level numbers are the full size's.
pub fn bench_steps<B: AutodiffBackend>(
    cfg: &TrainConfig,
    warmup: usize,
    steps: usize,
    device: &B::Device,
) -> Result<serde_json::Value> {
    let mut gan = Gan::<B>::new(cfg, device);
    let (g, d) = (gan.g.param_counts(), gan.d.param_counts());
    let m = &cfg.model;
    let mut phases = Vec::new();
    if let Some(grow) = &cfg.grow {
        for (i, &[h, w]) in grow.sizes.iter().enumerate() {
            let steps_at = m.g_channels.len() - (m.height / h).trailing_zeros() as usize;
            let mut levels = vec![Level {
                steps: steps_at,
                alpha: 1.0,
            }];
            if i > 0 && grow.fade > 0 {
                levels.insert(
                    0,
                    Level {
                        steps: steps_at,
                        alpha: 0.5,
                    },
                );
            }
            for level in levels {
                let t = time_level(&mut gan, cfg, level, warmup, steps, device);
                phases.push(serde_json::json!({
                    "size": format!("{h}x{w}"),
                    "fading": level.fading(),
                    "img_per_s": t.img_per_s,
                    "ms_per_step_median": t.median_s * 1e3,
                }));
            }
        }
    }
    let t = time_level(&mut gan, cfg, Level::full(m), warmup, steps, device);
    let mut out = serde_json::json!({
        "impl": format!("facegan-{}", env!("CARGO_PKG_VERSION")),
        "preset": cfg.preset,
        "batch": cfg.batch,
        "steps": steps,
        "warmup": warmup,
        "img_per_s": t.img_per_s,
        "ms_per_step_median": t.median_s * 1e3,
        "ms_per_step_mean": t.mean_s * 1e3,
        "first_step_s": t.first_step_s,
        "loss_d": t.last[0],
        "loss_g": t.last[1],
        "params_g": g.total,
        "params_d": d.total,
    });
    if !phases.is_empty() {
        out["phases"] = serde_json::Value::Array(phases);
    }
    Ok(out)
}

/// Timings of `warmup + steps` steps at one level.
struct LevelTiming {
    img_per_s: f64,
    median_s: f64,
    mean_s: f64,
    first_step_s: f64,
    last: [f32; 4],
}

/// Times `warmup + steps` steps of `gan` at `level` on a fixed uniform [0, 1) batch of the
/// level's size; each step ends with a read-back of the losses.
fn time_level<B: AutodiffBackend>(
    gan: &mut Gan<B>,
    cfg: &TrainConfig,
    level: Level,
    warmup: usize,
    steps: usize,
    device: &B::Device,
) -> LevelTiming {
    gan.level = level;
    let (h, w) = level.size(&cfg.model);
    B::seed(device, 1);
    let real = Tensor::<B, 4>::random([cfg.batch, 3, h, w], Distribution::Default, device);
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
            "{} {step} ({h}x{w}{}): {:.2} ms  loss_d {:.5}  loss_g {:.5}",
            if step < warmup { "warmup" } else { "step" },
            if level.fading() { ", fading" } else { "" },
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
    LevelTiming {
        img_per_s: (cfg.batch * steps) as f64 / total,
        median_s: sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN),
        mean_s: total / steps as f64,
        first_step_s,
        last,
    }
}

/// Data-parallel step throughput (`bench-parallel`): `peers` peers (threads) on `devices`
/// train the same fixed batch split between them, as [`bench_steps`] does on one device.
/// Reports img/s, the step time, the time peer 0 spends in all-reduces (waiting for the other
/// peers included) and the gradient bytes each peer sends per step.
#[cfg(feature = "parallel")]
pub fn bench_parallel<B: AutodiffBackend>(
    cfg: &TrainConfig,
    devices: &[B::Device],
    warmup: usize,
    steps: usize,
) -> Result<serde_json::Value> {
    use facegan_trainer::parallel::{self, Peer};
    let n = devices.len();
    facegan_trainer::parallel::check_batch_divides(cfg.batch, n)?;
    let leader = Gan::<B>::new(cfg, &devices[0]);
    let grad_floats = leader.g.param_counts().trainable + leader.d.param_counts().trainable;
    let m = &cfg.model;
    B::seed(&devices[0], 1);
    let real_all = Tensor::<B::InnerBackend, 4>::random(
        [cfg.batch, 3, m.height, m.width],
        Distribution::Default,
        &devices[0],
    );
    parallel::reset::<B::InnerBackend>();
    type Job<'s> = Box<dyn FnOnce() -> Result<(f64, f64)> + Send + 's>;
    let jobs: Vec<Job> = (0..n)
        .map(|index| {
            let peer = Peer { index, count: n };
            let device = devices[index].clone();
            let mut gan = leader.fork_for(peer, &device);
            let rows = peer.rows(cfg.batch);
            let real =
                Tensor::<B, 4>::from_inner(real_all.clone().slice([rows]).to_device(&device));
            Box::new(move || {
                parallel::join::<B::InnerBackend>(peer, n, None, &device)?;
                let mut timed = 0.0;
                for step in 0..warmup + steps {
                    if step == warmup && peer.is_leader() {
                        parallel::take_leader_reduce_seconds();
                    }
                    let t = Instant::now();
                    let _ = gan.step(real.clone(), step as u64).into_data();
                    if step >= warmup {
                        timed += t.elapsed().as_secs_f64();
                    }
                }
                let reduce = if peer.is_leader() {
                    parallel::take_leader_reduce_seconds()
                } else {
                    0.0
                };
                parallel::leave::<B::InnerBackend>(peer);
                Ok((timed, reduce))
            }) as Job
        })
        .collect();
    let results = parallel::run_peers::<B::InnerBackend, _>(jobs)?;
    let (timed, reduce) = results[0];
    Ok(serde_json::json!({
        "impl": format!("facegan-{}", env!("CARGO_PKG_VERSION")),
        "preset": cfg.preset,
        "peers": n,
        "batch": cfg.batch,
        "steps": steps,
        "img_per_s": (cfg.batch * steps) as f64 / timed,
        "ms_per_step_mean": timed * 1e3 / steps as f64,
        "all_reduce_ms_per_step": reduce * 1e3 / steps as f64,
        "all_reduce_share": reduce / timed,
        "gradient_bytes_per_step": grad_floats * 4,
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

/// The profile as the aligned text table `bench-train --profile` prints.
pub fn profile_table(rows: &[OpTiming]) -> String {
    let mut out = format!(
        "{:<40} {:>12} {:>12}\n",
        "op (batch {})", "forward ms", "backward ms"
    );
    for r in rows {
        out += &format!(
            "{:<40} {:>12.2} {:>12.2}\n",
            r.op, r.forward_ms, r.backward_ms
        );
    }
    let total: f64 = rows.iter().map(|r| r.forward_ms + r.backward_ms).sum();
    out += &format!("{:<40} {:>25.2}", "sum (one pass of each op)", total);
    out
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
    let mut p = OpProfiler {
        model: &cfg.model,
        batch: cfg.batch,
        reps,
        device,
        rows: Vec::new(),
    };
    p.discriminator(&Discriminator::<B>::new(&cfg.model, device));
    p.generator(&Generator::<B>::new(&cfg.model, device));
    p.rows
}

/// Times each op of the networks, in the order the model runs them, into `rows`.
struct OpProfiler<'a, B: AutodiffBackend> {
    model: &'a ModelConfig,
    batch: usize,
    reps: usize,
    device: &'a B::Device,
    rows: Vec<OpTiming>,
}

impl<B: AutodiffBackend> OpProfiler<'_, B> {
    /// Times `op` on a random input of `[batch, c, h, w]`.
    fn time4<const E: usize>(
        &mut self,
        name: String,
        [c, h, w]: [usize; 3],
        op: impl Fn(Tensor<B, 4>) -> Tensor<B, E>,
    ) {
        let shape = [self.batch, c, h, w];
        let x = Tensor::<B, 4>::random(shape, Distribution::Normal(0.0, 1.0), self.device);
        self.rows.push(time_op(name, x, self.reps, op));
    }

    /// Times `op` on a random input of `[batch, features]`.
    fn time2(&mut self, name: String, features: usize, op: impl Fn(Tensor<B, 2>) -> Tensor<B, 2>) {
        let shape = [self.batch, features];
        let x = Tensor::<B, 2>::random(shape, Distribution::Normal(0.0, 1.0), self.device);
        self.rows.push(time_op(name, x, self.reps, op));
    }

    /// The BatchNorm + LeakyReLU (one fused op) or the LeakyReLU that follow a conv, at the
    /// conv's output shape, as the model runs them.
    fn norm_and_activation(
        &mut self,
        net: &str,
        i: usize,
        chw @ [c, h, w]: [usize; 3],
        norm: Option<&BatchNorm2d<B>>,
    ) {
        let slope = self.model.leaky_slope;
        match norm {
            Some(norm) => self.time4(
                format!("{net} batchnorm+leaky_relu{i} {c}@{h}x{w}"),
                chw,
                |x| norm.forward_act(x, Some(slope)),
            ),
            None => self.time4(format!("{net} leaky_relu{i} {c}@{h}x{w}"), chw, |x| {
                leaky_relu(x, slope)
            }),
        }
    }

    fn discriminator(&mut self, d: &Discriminator<B>) {
        let (mut c, mut h, mut w) = (3, self.model.height, self.model.width);
        for (i, block) in d.blocks.iter().enumerate() {
            let cout = block.conv.weight.dims()[0];
            self.time4(format!("D conv{i} {c}->{cout} @{h}x{w}"), [c, h, w], |x| {
                ops::conv2d(&block.conv, x)
            });
            let s = block.conv.stride;
            (c, h, w) = (cout, h / s[0], w / s[1]);
            self.time4(format!("D dropout{i} {c}@{h}x{w}"), [c, h, w], |x| {
                ops::dropout(&d.dropout, x)
            });
            self.norm_and_activation("D", i, [c, h, w], block.norm.as_ref());
        }
        // The dense layer's input (the minibatch-stddev channel included).
        let feat = d.head.weight.dims()[0];
        self.time2(format!("D dense {feat}->1"), feat, |x| d.head.forward(x));
    }

    fn generator(&mut self, g: &Generator<B>) {
        let (latent, slope) = (self.model.latent, self.model.leaky_slope);
        let start: usize = g.start.iter().product();
        self.time2(format!("G dense {latent}->{start}"), latent, |x| {
            g.project.forward(x)
        });
        let [mut c, mut h, mut w] = g.start;
        for (i, block) in g.blocks.iter().enumerate() {
            let cout = block.conv.out_channels();
            let name = format!(
                "G upsample{i} ({:?}) {c}->{cout} @{h}x{w}",
                self.model.g_upsample
            );
            match block.norm.as_ref() {
                Some(norm) => {
                    self.time4(name, [c, h, w], |x| block.conv.forward_act(x, None));
                    (c, h, w) = (cout, h * 2, w * 2);
                    self.norm_and_activation("G", i, [c, h, w], Some(norm));
                }
                None => {
                    // No norm: the LeakyReLU is fused into the convolution.
                    self.time4(format!("{name} +leaky_relu"), [c, h, w], |x| {
                        block.conv.forward_act(x, Some(slope))
                    });
                    (c, h, w) = (cout, h * 2, w * 2);
                }
            }
        }
        self.time4(format!("G to_rgb conv {c}->3 @{h}x{w}"), [c, h, w], |x| {
            ops::conv2d(&g.to_rgb, x)
        });
        self.time4(format!("G sigmoid 3@{h}x{w}"), [3, h, w], sigmoid);
    }
}
