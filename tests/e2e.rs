//! End-to-end tests that drive the real `facegan` binary: synth -> preprocess -> train (killed
//! mid-run, then resumed) -> eval -> sample -> export, and the errors users hit most.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_facegan");

fn facegan(args: &[&str], cwd: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run facegan")
}

fn ok(args: &[&str], cwd: &Path) -> String {
    let out = facegan(args, cwd);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "facegan {args:?} failed:\n{text}");
    text
}

fn fails(args: &[&str], cwd: &Path) -> String {
    let out = facegan(args, cwd);
    assert!(!out.status.success(), "facegan {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `facegan synth` then `facegan preprocess` to a 16x16 `d/faces.shard` (10% holdout);
/// returns preprocess's output.
fn make_faces_shard(d: &Path, count: usize, seed: u64) -> String {
    let (count, seed) = (count.to_string(), seed.to_string());
    ok(
        &[
            "synth", "--out", "faces", "--count", &count, "--seed", &seed,
        ],
        d,
    );
    ok(
        &[
            "preprocess",
            "--input",
            "faces",
            "--output",
            "faces.shard",
            "--size",
            "16x16",
            "--holdout",
            "0.1",
        ],
        d,
    )
}

/// Starts a (practically endless) tiny training run in `d/run` on `d/faces.shard` and returns
/// once it has written its first checkpoint, still running.
fn spawn_long_training(d: &Path, capture_output: bool) -> std::process::Child {
    let out = || {
        if capture_output {
            Stdio::piped()
        } else {
            Stdio::null()
        }
    };
    let mut child = Command::new(BIN)
        .args([
            "train",
            "--data",
            "faces.shard",
            "--run",
            "run",
            "--preset",
            "tiny",
            "--epochs",
            "100000",
            "--device",
            "cpu",
        ])
        .current_dir(d)
        .stdout(out())
        .stderr(out())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while latest_state(&d.join("run")).is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no checkpoint appeared"
        );
        assert!(child.try_wait().unwrap().is_none(), "training exited early");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// The state of the newest rotated checkpoint (`ckpt_<step>`; not `best/`).
fn latest_state(run: &Path) -> Option<serde_json::Value> {
    let mut dirs: Vec<_> = std::fs::read_dir(run.join("checkpoints"))
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("DONE").is_file())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("ckpt_"))
        })
        .collect();
    dirs.sort();
    let text = std::fs::read_to_string(dirs.last()?.join("state.json")).ok()?;
    serde_json::from_str(&text).ok()
}

#[test]
fn pipeline_survives_a_kill_and_produces_every_artifact() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let text = make_faces_shard(d, 240, 4);
    assert!(text.contains("read 240, kept 240"), "{text}");
    let info: serde_json::Value =
        serde_json::from_str(&ok(&["inspect", "--json", "--verify", "faces.shard"], d)).unwrap();
    assert_eq!(info["count"], 240);
    assert_eq!(
        (
            info["height"].as_u64(),
            info["width"].as_u64(),
            info["channels"].as_u64()
        ),
        (Some(16), Some(16), Some(3))
    );
    assert_eq!(
        info["train"].as_u64().unwrap() + info["holdout"].as_u64().unwrap(),
        240
    );
    assert_eq!(info["version"], 2);

    // Train a long run and kill it (SIGKILL) once it has written a checkpoint.
    let mut child = spawn_long_training(d, false);
    std::thread::sleep(Duration::from_millis(150));
    assert!(
        child.try_wait().unwrap().is_none(),
        "still training when killed"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let killed_at = latest_state(&d.join("run")).unwrap();
    let done_epochs = killed_at["epoch"].as_u64().unwrap();
    assert!(done_epochs >= 1);

    // Resume (the default) and run two more epochs.
    let target = (done_epochs + 2).to_string();
    let text = ok(
        &[
            "train",
            "--data",
            "faces.shard",
            "--run",
            "run",
            "--epochs",
            &target,
            "--device",
            "cpu",
        ],
        d,
    );
    assert!(text.contains("resuming from"), "{text}");
    let state = latest_state(&d.join("run")).unwrap();
    assert_eq!(state["epoch"].as_u64().unwrap(), done_epochs + 2);

    // Metrics: one row per epoch, consistent with the checkpoint.
    let metrics = std::fs::read_to_string(d.join("run/metrics.csv")).unwrap();
    let rows: Vec<&str> = metrics.lines().skip(1).collect();
    assert_eq!(rows.len() as u64, done_epochs + 2, "{metrics}");
    let last: Vec<&str> = rows.last().unwrap().split(',').collect();
    assert_eq!(last[0].parse::<u64>().unwrap(), done_epochs + 2);
    assert_eq!(last[2], state["images_seen"].to_string());
    for f in ["config.toml", "loss.png", "progress.gif", "train.log"] {
        assert!(d.join("run").join(f).is_file(), "{f}");
    }
    assert!(d
        .join(format!("run/samples/epoch_{:04}.png", done_epochs + 2))
        .is_file());

    // Eval: every artifact exists and the report agrees with the metrics.
    let text = ok(&["eval", "--run", "run", "--n", "64", "--device", "cpu"], d);
    assert!(text.contains("SWD"), "{text}");
    for f in [
        "grid.png",
        "real.png",
        "interp.png",
        "interp.gif",
        "nn.png",
        "report.json",
        "report.html",
    ] {
        let p = d.join("run/eval").join(f);
        assert!(
            p.is_file() && std::fs::metadata(&p).unwrap().len() > 0,
            "{f}"
        );
    }
    for f in ["grid.png", "real.png", "interp.png", "nn.png"] {
        image_dims(&d.join("run/eval").join(f));
    }
    let report = read_json(&d.join("run/eval/report.json"));
    assert_eq!(
        report["checkpoint"]["epoch"].as_u64().unwrap(),
        done_epochs + 2
    );
    assert_eq!(report["checkpoint"]["images_seen"].to_string(), last[2]);
    assert!(report["swd_fake_vs_holdout"]["average"].as_f64().unwrap() > 0.0);
    assert!(report["swd_train_vs_holdout"]["average"].as_f64().unwrap() > 0.0);
    check_d_accuracy(&report, info["holdout"].as_u64().unwrap().min(64), &text);
    assert_eq!(report["nearest_neighbours"].as_array().unwrap().len(), 8);
    // The trainer's live quality curve scored the final weights as eval does: same holdout
    // sample, latents and SWD, so its last point is the report's number.
    let curve = std::fs::read_to_string(d.join("run/quality.csv")).unwrap();
    let last_probe: Vec<&str> = curve.lines().last().unwrap().split(',').collect();
    assert_eq!(last_probe[1], last[2], "last probe at the last image count");
    let probe_swd: f64 = last_probe[3].parse().unwrap();
    let eval_swd = report["swd_fake_vs_holdout"]["average"].as_f64().unwrap();
    assert!(
        (probe_swd - eval_swd).abs() <= 1e-9 * eval_swd,
        "probe {probe_swd} vs eval {eval_swd}"
    );
    // The best checkpoint by that curve evaluates too, into a folder of its own (`--out`): the
    // latest checkpoint's report stays, and the page still shows the run's charts.
    let latest_report = std::fs::read(d.join("run/eval/report.json")).unwrap();
    let text = ok(
        &[
            "eval",
            "--run",
            "run",
            "--checkpoint",
            "best",
            "--n",
            "64",
            "--device",
            "cpu",
            "--out",
            "best-eval",
        ],
        d,
    );
    assert!(text.contains("SWD"), "{text}");
    assert!(text.contains("best-eval/report.html"), "{text}");
    assert_eq!(
        std::fs::read(d.join("run/eval/report.json")).unwrap(),
        latest_report
    );
    let err = fails(
        &[
            "eval",
            "--run",
            "run",
            "--out",
            "run/checkpoints/mine",
            "--device",
            "cpu",
        ],
        d,
    );
    assert!(err.contains("inside a run's checkpoints folder"), "{err}");
    let best = read_json(&d.join("best-eval/report.json"));
    assert!(best["checkpoint"]["dir"]
        .as_str()
        .unwrap()
        .ends_with("best"));
    let html = std::fs::read_to_string(d.join("best-eval/report.html")).unwrap();
    assert!(html.contains("Quality during training"));
    // The trainer's loss.png is the page's loss chart.
    assert!(html.contains("data:image/png;base64,") && html.contains(r#"alt="loss.png""#));
    assert!(!html.contains("No loss chart"));

    // Sample and export.
    ok(
        &[
            "sample",
            "--run",
            "run",
            "--n",
            "16",
            "--out",
            "faces16.png",
            "--device",
            "cpu",
        ],
        d,
    );
    image_dims(&d.join("faces16.png"));
    ok(
        &[
            "sample", "--run", "run", "--n", "3", "--out", "each/", "--device", "cpu",
        ],
        d,
    );
    assert_eq!(std::fs::read_dir(d.join("each")).unwrap().count(), 3);
    // Truncation: PSI 1 is no truncation (the same faces); a sweep has one row per PSI of the
    // same latents; a PSI outside [0, 1] is refused before anything is loaded; --batch-stats
    // (BatchNorm on each batch's statistics) draws other pixels than the running statistics.
    let sample = |extra: &[&str], out: &str| {
        let mut args = vec![
            "sample", "--run", "run", "--n", "4", "--device", "cpu", "--out", out,
        ];
        args.extend_from_slice(extra);
        ok(&args, d)
    };
    sample(&[], "plain.png");
    sample(&["--truncation", "1"], "psi1.png");
    sample(&["--truncation", "0.5"], "psi05.png");
    sample(&["--batch-stats"], "batchstats.png");
    assert_eq!(
        rgb_pixels(&d.join("plain.png")),
        rgb_pixels(&d.join("psi1.png"))
    );
    assert_ne!(
        rgb_pixels(&d.join("plain.png")),
        rgb_pixels(&d.join("psi05.png"))
    );
    assert_ne!(
        rgb_pixels(&d.join("plain.png")),
        rgb_pixels(&d.join("batchstats.png"))
    );
    let text = sample(&["--truncation-sweep"], "sweep.png");
    assert!(
        text.contains("rows PSI 1, 0.9, 0.8, 0.7, 0.5, 0.3"),
        "{text}"
    );
    let (plain_w, plain_h) = image_dims(&d.join("plain.png"));
    let (sweep_w, sweep_h) = image_dims(&d.join("sweep.png"));
    assert!(
        sweep_w > plain_w && sweep_h > 2 * plain_h,
        "{sweep_w}x{sweep_h}"
    );
    let err = fails(
        &[
            "sample",
            "--run",
            "run",
            "--out",
            "x.png",
            "--truncation",
            "1.5",
        ],
        d,
    );
    assert!(
        err.contains("--truncation 1.5") && err.contains("between 0"),
        "{err}"
    );
    let text = ok(&["export", "--run", "run", "--out", "g.safetensors"], d);
    assert!(text.contains("reloaded outputs identical"), "{text}");

    // warmup runs the kernels a preset needs (on the CPU: a smoke test) and reports timings.
    let json: serde_json::Value = serde_json::from_str(
        ok(&["warmup", "--device", "cpu", "--preset", "tiny"], d)
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert!(json["first_step_s"].as_f64().unwrap() > 0.0);

    check_fake_dir_evals(d, &report);
}

/// `eval --fake-dir`, in the run (the run's D still scores the folder) and without one.
/// `report` is the run's own eval report (latest checkpoint, `--n 64`).
fn check_fake_dir_evals(d: &Path, report: &serde_json::Value) {
    // --fake-dir evaluates a folder with the same metric: its 3 images are the fakes, scored
    // by SWD (3 images per side) and by the run's D.
    let text = ok(
        &[
            "eval",
            "--run",
            "run",
            "--n",
            "32",
            "--fake-dir",
            "each",
            "--device",
            "cpu",
        ],
        d,
    );
    // So few images are scored, with a warning that says what the scores are worth.
    assert!(
        text.contains("only 3 usable image(s); scores on fewer than 64 per side"),
        "{text}"
    );
    // An epoch the run has not reached is named as such, not as a rotated-out checkpoint.
    let err = fails(
        &[
            "eval",
            "--run",
            "run",
            "--checkpoint",
            "999999",
            "--device",
            "cpu",
        ],
        d,
    );
    assert!(
        err.contains("no checkpoint after epoch 999999: the run has trained"),
        "{err}"
    );
    let each = read_json(&d.join("run/eval/report.json"));
    assert_eq!(each["source"], "folder each");
    assert_eq!(each["swd_fake_vs_holdout"]["images_per_side"], 3);
    assert_eq!(each["d_accuracy_holdout"]["n_fake"], 3);
    assert_eq!(each["checkpoint"]["epoch"], report["checkpoint"]["epoch"]);

    // With --data and no run folder there is no checkpoint: the synthetic faces themselves
    // as the fakes get no D accuracy, and score near the train-vs-holdout noise floor (the
    // same floor as the run's eval: same shard, --n and seed).
    let text = ok(
        &[
            "eval",
            "--run",
            "faces-only",
            "--data",
            "faces.shard",
            "--n",
            "64",
            "--fake-dir",
            "faces",
            "--device",
            "cpu",
        ],
        d,
    );
    assert!(!text.contains("D accuracy"), "{text}");
    let folder = read_json(&d.join("faces-only/eval/report.json"));
    assert_eq!(folder["source"], "folder faces");
    for k in [
        "checkpoint",
        "config",
        "d_accuracy_holdout",
        "d_accuracy_train",
    ] {
        assert!(folder[k].is_null(), "{k}: {}", folder[k]);
    }
    let floor = folder["swd_train_vs_holdout"]["average"].as_f64().unwrap();
    let run_floor = report["swd_train_vs_holdout"]["average"].as_f64().unwrap();
    assert!(
        (floor - run_floor).abs() <= 1e-9 * floor,
        "{floor} vs {run_floor}"
    );
    let faces_swd = folder["swd_fake_vs_holdout"]["average"].as_f64().unwrap();
    assert!(
        faces_swd < 1.5 * floor,
        "faces {faces_swd} vs floor {floor}"
    );
    assert!(!d.join("faces-only/eval/interp.png").exists());
}

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// The report's D accuracies: `n` reals (the holdout sample, or as many train images) against
/// the same `n` fakes, fractions of `n` that average to `balanced`, as the summary line says.
fn check_d_accuracy(report: &serde_json::Value, n: u64, summary: &str) {
    let (hold, train) = (&report["d_accuracy_holdout"], &report["d_accuracy_train"]);
    assert_eq!(report["swd_fake_vs_holdout"]["images_per_side"], n);
    for a in [hold, train] {
        assert_eq!(
            (a["n_real"].as_u64(), a["n_fake"].as_u64()),
            (Some(n), Some(n))
        );
        let (real, fake) = (a["real"].as_f64().unwrap(), a["fake"].as_f64().unwrap());
        assert_eq!(a["balanced"].as_f64().unwrap(), (real + fake) / 2.0, "{a}");
        for v in [real, fake] {
            let count = v * n as f64;
            assert!(
                (count - count.round()).abs() < 1e-9,
                "{v} is not a count of {n}"
            );
        }
    }
    assert_eq!(hold["fake"], train["fake"], "the same fakes on both sides");
    assert_eq!(hold["mean_d_fake"], train["mean_d_fake"]);
    let summary_part = format!(
        "D accuracy on holdout {:.3} (real {:.3}, fake {:.3})",
        hold["balanced"].as_f64().unwrap(),
        hold["real"].as_f64().unwrap(),
        hold["fake"].as_f64().unwrap()
    );
    assert!(summary.contains(&summary_part), "{summary}");
}

#[test]
fn ctrl_c_checkpoints_and_exits_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    make_faces_shard(d, 120, 8);
    let child = spawn_long_training(d, true);
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "Ctrl-C exits 0: {text}");
    assert!(text.contains("rerun the same command to resume"), "{text}");
    let state = latest_state(&d.join("run")).unwrap();
    let step = state["step"].as_u64().unwrap();
    assert!(
        text.contains(&format!("step {step}")),
        "the checkpoint is the stopping step: {text}"
    );
}

fn image_dims(p: &Path) -> (u32, u32) {
    let bytes = std::fs::read(p).unwrap();
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is a PNG",
        p.display()
    );
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert!(w > 0 && h > 0);
    (w, h)
}

#[test]
fn bad_inputs_give_clear_errors_and_nonzero_exit() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("bad.shard"), b"GIF89a definitely not a shard").unwrap();
    let err = fails(
        &[
            "train",
            "--data",
            "bad.shard",
            "--run",
            "r",
            "--preset",
            "tiny",
            "--device",
            "cpu",
        ],
        d,
    );
    assert!(
        err.contains("bad.shard") && err.contains("not a facegan shard"),
        "{err}"
    );
    let err = fails(&["inspect", "bad.shard"], d);
    assert!(err.contains("not a facegan shard"), "{err}");

    let err = fails(&["eval", "--run", "no-such-run", "--device", "cpu"], d);
    assert!(
        err.contains("no-such-run") && err.contains("no such run directory"),
        "{err}"
    );

    ok(&["synth", "--out", "f", "--count", "20"], d);
    ok(
        &[
            "preprocess",
            "--input",
            "f",
            "--output",
            "s.shard",
            "--size",
            "16x16",
        ],
        d,
    );
    let err = fails(
        &[
            "train", "--data", "s.shard", "--run", "r2", "--preset", "seed", "--device", "cpu",
        ],
        d,
    );
    assert!(err.contains("16x16") && err.contains("96x80"), "{err}");

    let err = fails(
        &[
            "preprocess",
            "--input",
            "missing-folder",
            "--output",
            "x.shard",
        ],
        d,
    );
    assert!(err.contains("missing-folder"), "{err}");
    assert!(!d.join("x.shard").exists());
    let err = fails(
        &[
            "train", "--data", "s.shard", "--preset", "nope", "--device", "cpu",
        ],
        d,
    );
    assert!(err.contains("unknown preset"), "{err}");

    // A resumed run's batch and seed are not silently replaced.
    let train = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut args = vec![
            "train",
            "--data",
            "s.shard",
            "--run",
            "r3",
            "--preset",
            "tiny",
            "--device",
            "cpu",
            "--max-steps",
            "1",
        ];
        args.extend_from_slice(extra);
        args
    };
    ok(&train(&[]), d);
    let err = fails(&train(&["--batch", "8"]), d);
    assert!(
        err.contains("r3") && err.contains("--batch 16") && err.contains("--new"),
        "{err}"
    );
    let err = fails(&train(&["--seed", "3"]), d);
    assert!(err.contains("--seed 0"), "{err}");

    // `export --out DIR/` writes DIR/generator.safetensors.
    ok(&["export", "--run", "r3", "--out", "exported/"], d);
    assert!(d.join("exported/generator.safetensors").is_file());
}

/// A shard truncated while a run reads it ends the run with a message that
/// says what happened (SIGBUS from the memory map used to kill it silently), and the last
/// checkpoint stays usable.
#[cfg(unix)]
#[test]
fn a_shard_truncated_under_training_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    make_faces_shard(d, 120, 5);
    let mut child = spawn_long_training(d, true);
    std::fs::OpenOptions::new()
        .write(true)
        .open(d.join("faces.shard"))
        .unwrap()
        .set_len(4096)
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "training still running a minute after its shard was truncated"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.contains("truncated or changed while in use"), "{text}");
    assert!(
        latest_state(&d.join("run")).is_some(),
        "a checkpoint survives"
    );
}

/// Copies a folder tree (a fixture run) to `to`.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// Copies the named runs of `tests/fixtures/checkpoints/` (tiny runs with checkpoints) into `d`.
fn fixture_runs(d: &Path, names: &[&str]) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/checkpoints");
    for name in names {
        copy_tree(&fixtures.join(name), &d.join(name));
    }
}

fn rgb_pixels(p: &Path) -> Vec<u8> {
    image::open(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .to_rgb8()
        .into_raw()
}

/// Runs trained by earlier facegan builds keep working after the networks' record layout
/// changes: `tests/fixtures/checkpoints/` holds tiny runs written by those builds (see its
/// README), with the grid that build sampled from them. Today's binary must sample the same
/// pixels, resume training from them, and sample again from the checkpoint it writes.
#[test]
fn checkpoints_of_earlier_layouts_sample_the_same_faces_and_resume() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/checkpoints");
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    make_faces_shard(d, 40, 2);
    for name in ["v1-tiny", "v1-resize", "v2-tiny", "v3-tiny"] {
        let run = d.join(name);
        copy_tree(&fixtures.join(name), &run);
        let run_arg = run.to_str().unwrap();
        let grid = d.join(format!("{name}.png"));
        let grid_arg = grid.to_str().unwrap();
        let sample = [
            "sample", "--run", run_arg, "--n", "8", "--seed", "7", "--out", grid_arg,
        ];
        ok(&sample, d);
        assert!(
            rgb_pixels(&grid) == rgb_pixels(&run.join("expected-sample-n8-seed7.png")),
            "{name}: today's build samples other faces than the build that trained it"
        );
        let out = ok(
            &[
                "train",
                "--data",
                "faces.shard",
                "--run",
                run_arg,
                "--max-steps",
                "3",
            ],
            d,
        );
        assert!(
            out.contains("step 3"),
            "{name}: did not resume to step 3:\n{out}"
        );
        let state = latest_state(&run).expect("a checkpoint after resuming");
        assert_eq!(state["step"], 3, "{name}");
        ok(&sample, d);
    }

    // A checkpoint whose tensors do not fit the config it records is refused by name, not
    // loaded into the wrong shapes. (The checksum list goes, so the edit is not a "damaged" file.)
    let run = d.join("misfit");
    copy_tree(&fixtures.join("v2-tiny"), &run);
    let ckpt = run.join("checkpoints/ckpt_000000002");
    std::fs::remove_file(ckpt.join("checksums.json")).unwrap();
    let mut state = read_json(&ckpt.join("state.json"));
    state["config"]["model"]["g_channels"] = serde_json::json!([16, 4]);
    std::fs::write(ckpt.join("state.json"), state.to_string()).unwrap();
    let err = fails(
        &[
            "sample",
            "--run",
            run.to_str().unwrap(),
            "--out",
            "misfit.png",
        ],
        d,
    );
    assert!(
        err.contains("ckpt_000000002") && err.contains("does not fit the run's config"),
        "unclear error for a misfit checkpoint:\n{err}"
    );
}

/// Latent files: `sample --save-latents` writes the latents that drew the faces and
/// `sample --latents` draws the same pixels from them; `interp` morphs through seeds or latent
/// files (grid, GIF, latent file of every frame); latents found for one generator are refused
/// by another, seeded ones are not; a file that is not a latent file, one key and one step are
/// refused with the reason.
#[test]
fn latent_files_serve_sample_and_interp_and_bad_ones_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    fixture_runs(d, &["v2-tiny", "v1-resize"]);
    ok(
        &[
            "sample",
            "--run",
            "v2-tiny",
            "--n",
            "6",
            "--seed",
            "3",
            "--truncation",
            "0.8",
            "--out",
            "a.png",
            "--save-latents",
            "a.safetensors",
        ],
        d,
    );
    ok(
        &[
            "sample",
            "--run",
            "v2-tiny",
            "--latents",
            "a.safetensors",
            "--out",
            "b.png",
        ],
        d,
    );
    assert!(
        rgb_pixels(&d.join("a.png")) == rgb_pixels(&d.join("b.png")),
        "other faces from the saved latents"
    );
    let saved = facegan_latents::Latents::read(&d.join("a.safetensors")).unwrap();
    assert_eq!(
        (saved.count(), saved.source.as_str()),
        (6, "seed 3, truncation 0.8")
    );

    let out = ok(
        &[
            "interp", "--run", "v2-tiny", "--seeds", "1,2,3", "--steps", "5", "--out", "m",
        ],
        d,
    );
    assert!(out.contains("3 keys"), "{out}");
    for f in ["morph.png", "morph.gif"] {
        assert!(d.join("m").join(f).is_file(), "{f}");
    }
    let frames = facegan_latents::Latents::read(&d.join("m/morph.safetensors")).unwrap();
    assert_eq!(frames.count(), 10, "two pairs of 5 steps");
    // The rows run from key to key: the first frame is seed 1's first latent.
    let seed1 = d.join("seed1.safetensors");
    ok(
        &[
            "sample",
            "--run",
            "v2-tiny",
            "--n",
            "1",
            "--seed",
            "1",
            "--out",
            "s1.png",
            "--save-latents",
            seed1.to_str().unwrap(),
        ],
        d,
    );
    let s1 = facegan_latents::Latents::read(&seed1).unwrap();
    assert!(frames
        .row(0)
        .iter()
        .zip(s1.row(0))
        .all(|(a, b)| (a - b).abs() < 1e-6));
    ok(
        &[
            "interp",
            "--run",
            "v2-tiny",
            "--latents",
            "a.safetensors",
            "--steps",
            "3",
            "--out",
            "m2",
        ],
        d,
    );

    // Seeded latents suit the other tiny model; a morph's latents (found for v2-tiny) do not.
    ok(
        &[
            "sample",
            "--run",
            "v1-resize",
            "--latents",
            "a.safetensors",
            "--out",
            "c.png",
        ],
        d,
    );
    let err = fails(
        &[
            "sample",
            "--run",
            "v1-resize",
            "--latents",
            "m/morph.safetensors",
            "--out",
            "c.png",
        ],
        d,
    );
    assert!(
        err.contains("morph.safetensors")
            && err.contains("made for another generator")
            && err.contains("g_upsample"),
        "{err}"
    );
    let err = fails(
        &[
            "sample",
            "--run",
            "v2-tiny",
            "--latents",
            "a.png",
            "--out",
            "c.png",
        ],
        d,
    );
    assert!(
        err.contains("a.png") && err.contains("not a facegan latent file"),
        "{err}"
    );
    let err = fails(
        &["interp", "--run", "v2-tiny", "--seeds", "1", "--out", "m3"],
        d,
    );
    assert!(err.contains("at least 2 key latents"), "{err}");
    let err = fails(
        &[
            "interp", "--run", "v2-tiny", "--seeds", "1,2", "--steps", "1", "--out", "m3",
        ],
        d,
    );
    assert!(err.contains("--steps 1"), "{err}");
}

/// `facegan project` reconstructs a face through the run's shard preprocessing: it writes the
/// target, the reconstruction, the latent file (refused by another generator, drawn again by
/// `sample --latents`), the loss curve (falling) and its record; an unreadable image, one far
/// smaller than the run's faces, a missing image and a run without a checkpoint are refused by
/// name. `--shard-faces` projects held-out and training faces and ranks each held-out
/// reconstruction among all held-out faces.
#[test]
fn project_reconstructs_a_face_and_refuses_bad_images() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    make_faces_shard(d, 40, 4);
    fixture_runs(d, &["v2-tiny", "v1-resize"]);
    let face = std::fs::read_dir(d.join("faces"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let face = face.to_str().unwrap();
    let out = ok(
        &[
            "project",
            "--run",
            "v2-tiny",
            "--data",
            "faces.shard",
            "--image",
            face,
            "--out",
            "proj",
            "--steps",
            "40",
            "--restarts",
            "2",
        ],
        d,
    );
    assert!(out.contains("pixel MSE"), "{out}");
    let stem = Path::new(face).file_stem().unwrap().to_str().unwrap();
    let dir = d.join("proj").join(stem);
    for f in [
        "target.png",
        "reconstruction.png",
        "side_by_side.png",
        "loss.png",
        "latent.safetensors",
    ] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    assert_eq!(image_dims(&dir.join("target.png")), (16, 16));
    let record = read_json(&dir.join("projection.json"));
    let curve: Vec<f64> = record["loss_curve"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(curve.len(), 40);
    assert!(curve[39] < curve[0], "the loss did not fall: {curve:?}");
    assert!(record["pixel_mse"].as_f64().unwrap().is_finite());
    let latent = dir.join("latent.safetensors");
    let latent = latent.to_str().unwrap();
    ok(
        &[
            "sample",
            "--run",
            "v2-tiny",
            "--latents",
            latent,
            "--out",
            "again.png",
        ],
        d,
    );
    let err = fails(
        &[
            "sample",
            "--run",
            "v1-resize",
            "--latents",
            latent,
            "--out",
            "x.png",
        ],
        d,
    );
    assert!(err.contains("made for another generator"), "{err}");

    // The memorisation probe: held-out and training faces of the shard, and their summary.
    let out = ok(
        &[
            "project",
            "--run",
            "v2-tiny",
            "--data",
            "faces.shard",
            "--shard-faces",
            "2,2",
            "--out",
            "probe",
            "--steps",
            "5",
            "--restarts",
            "1",
        ],
        d,
    );
    assert!(
        out.contains("held-out reconstructions closer to their own face"),
        "{out}"
    );
    let summary = read_json(&d.join("probe/summary.json"));
    assert_eq!(summary["faces"].as_array().unwrap().len(), 4);
    assert_eq!(summary["holdout_projected"], 2);
    for f in summary["faces"].as_array().unwrap() {
        let rank = &f["own_face_rank"];
        let holdout = f["name"].as_str().unwrap().starts_with("holdout-");
        assert_eq!(rank.is_null(), !holdout, "{f}");
        if holdout {
            assert!((0.0..=1.0).contains(&rank.as_f64().unwrap()), "{f}");
        }
    }
    assert!(summary["holdout_over_train"].as_f64().unwrap() > 0.0);
    let err = fails(
        &[
            "project",
            "--run",
            "v2-tiny",
            "--data",
            "faces.shard",
            "--shard-faces",
            "2",
            "--out",
            "probe",
        ],
        d,
    );
    assert!(err.contains("H,T"), "{err}");

    std::fs::write(d.join("broken.jpg"), b"not a jpeg").unwrap();
    let err = fails(
        &[
            "project",
            "--run",
            "v2-tiny",
            "--data",
            "faces.shard",
            "--image",
            "broken.jpg",
            "--out",
            "p2",
        ],
        d,
    );
    assert!(err.contains("broken.jpg"), "{err}");
    image::RgbImage::new(4, 4).save(d.join("tiny.png")).unwrap();
    let err = fails(
        &[
            "project",
            "--run",
            "v2-tiny",
            "--data",
            "faces.shard",
            "--image",
            "tiny.png",
            "--out",
            "p2",
        ],
        d,
    );
    assert!(
        err.contains("tiny.png") && err.contains("far smaller"),
        "{err}"
    );
    let err = fails(
        &[
            "project",
            "--run",
            "v2-tiny",
            "--image",
            "missing.jpg",
            "--out",
            "p2",
        ],
        d,
    );
    assert!(err.contains("missing.jpg"), "{err}");
    std::fs::create_dir_all(d.join("empty-run")).unwrap();
    let err = fails(
        &[
            "project",
            "--run",
            "empty-run",
            "--image",
            face,
            "--out",
            "p2",
        ],
        d,
    );
    assert!(err.contains("no finished checkpoint"), "{err}");
}

/// `eval --truncation-sweep` scores the eval's own latents at each truncation PSI against the
/// same reference (PSI 1 reproduces the untruncated SWD exactly), each with its spread, prints
/// a line per PSI and draws `truncation.png`.
#[test]
fn eval_scores_every_truncation_psi() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    make_faces_shard(d, 120, 5);
    fixture_runs(d, &["v2-tiny"]);
    let out = ok(
        &[
            "eval",
            "--run",
            "v2-tiny",
            "--data",
            "faces.shard",
            "--n",
            "16",
            "--truncation-sweep",
        ],
        d,
    );
    assert!(out.contains("truncation PSI 0.5: SWD"), "{out}");
    let report = read_json(&d.join("v2-tiny/eval/report.json"));
    let sweep = report["truncation"].as_array().unwrap();
    let psis: Vec<f64> = sweep.iter().map(|t| t["psi"].as_f64().unwrap()).collect();
    let want = [1.0, 0.9, 0.8, 0.7, 0.5, 0.3];
    assert!(
        psis.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6),
        "{psis:?}"
    );
    assert_eq!(
        sweep[0]["swd"]["average"],
        report["swd_fake_vs_holdout"]["average"]
    );
    for t in sweep {
        assert!(t["swd"]["spread"]["average"].as_f64().unwrap() > 0.0, "{t}");
    }
    assert!(d.join("v2-tiny/eval/truncation.png").is_file());
}

/// A free TCP port on 127.0.0.1 (bound, then released for the child to take), never one this
/// test process handed out before: tests run in parallel, and the kernel may offer a port again
/// between its release here and the child's bind, so two tests' servers would share one port.
fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// A `facegan` running in the background, its stderr going to `log`.
struct Proc {
    child: std::process::Child,
    log: std::path::PathBuf,
}

/// What a finished background `facegan` left: its exit status and its stderr.
struct Finished {
    status: std::process::ExitStatus,
    stderr: String,
}

/// Starts `facegan` in the background, its stderr into a file (so a chatty child never blocks
/// on a full pipe) and its stdout dropped.
fn spawn(args: &[&str], cwd: &Path) -> Proc {
    spawn_with_env(args, cwd, &[])
}

/// [`spawn`] with environment variables set.
fn spawn_with_env(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Proc {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let log = cwd.join(format!("proc-{n}.stderr"));
    let child = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(cwd)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("a log file"))
        .spawn()
        .expect("start facegan");
    Proc { child, log }
}

/// Waits for a child, killing it (and failing) after `limit`: a hang is a failure, not a wait.
fn finish_within(mut p: Proc, limit: Duration, what: &str) -> Finished {
    let t = Instant::now();
    let stderr = |p: &Proc| std::fs::read_to_string(&p.log).unwrap_or_default();
    while p.child.try_wait().unwrap().is_none() {
        if t.elapsed() > limit {
            let _ = p.child.kill();
            let _ = p.child.wait();
            panic!("{what} did not finish within {limit:?}:\n{}", stderr(&p));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Finished {
        status: p.child.wait().unwrap(),
        stderr: stderr(&p),
    }
}

/// One orchestrator and one node per rank on 127.0.0.1, all training `run` (node 0 writes it).
struct Cluster {
    orchestrator: Proc,
    nodes: Vec<Proc>,
}

impl Cluster {
    fn start(d: &Path, run: &str, extra: &[&[&str]]) -> Cluster {
        Cluster::start_with_env(d, run, extra, &[]).0
    }

    /// [`Cluster::start`] with environment variables set for every process; also returns the
    /// nodes' data ports.
    fn start_with_env(
        d: &Path,
        run: &str,
        extra: &[&[&str]],
        env: &[(&str, &str)],
    ) -> (Cluster, Vec<u16>) {
        let orch = format!("127.0.0.1:{}", free_port());
        let orchestrator = spawn_with_env(&["orchestrator", "--listen", &orch], d, env);
        let ports: Vec<u16> = extra.iter().map(|_| free_port()).collect();
        let nodes = extra
            .iter()
            .enumerate()
            .map(|(rank, extra)| {
                let me = format!("127.0.0.1:{}", ports[rank]);
                let rank = rank.to_string();
                let mut args = vec![
                    "train",
                    "--data",
                    "faces.shard",
                    "--run",
                    run,
                    "--config",
                    "flat.toml",
                    "--nodes",
                    "2",
                    "--node-rank",
                    &rank,
                    "--orchestrator",
                    &orch,
                    "--node-address",
                    &me,
                    "--peer-timeout",
                    "60",
                ];
                args.extend_from_slice(extra);
                spawn_with_env(&args, d, env)
            })
            .collect();
        (
            Cluster {
                orchestrator,
                nodes,
            },
            ports,
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.orchestrator.child.kill();
        let _ = self.orchestrator.child.wait();
    }
}

/// Several machines, played by processes on 127.0.0.1: an orchestrator and 2 nodes train the
/// same 6 steps as one process with 2 devices (no BatchNorm or dropout, so the same
/// computation up to summation order); a node whose config or --max-images differs is refused
/// by both; a node killed mid-run makes the other exit with an error naming it, promptly.
#[test]
fn two_node_processes_train_like_one_process_and_stop_when_one_dies() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    make_faces_shard(d, 160, 4);
    std::fs::write(
        d.join("flat.toml"),
        "preset = \"tiny\"\nbatch = 16\neval_every = 0\n[model]\nd_dropout = 0.0\n\
         d_batchnorm = [false, false]\ng_batchnorm = [false, false]\n",
    )
    .unwrap();
    let limit = Duration::from_secs(120);

    // One process, 2 devices.
    ok(
        &[
            "train",
            "--data",
            "faces.shard",
            "--run",
            "one",
            "--config",
            "flat.toml",
            "--devices",
            "cpu:2",
            "--max-steps",
            "6",
        ],
        d,
    );
    // Two processes, one device each.
    let mut c = Cluster::start(d, "two", &[&["--max-steps", "6"], &["--max-steps", "6"]]);
    for (rank, node) in c.nodes.drain(..).enumerate().rev() {
        let out = finish_within(node, limit, &format!("node {rank}"));
        assert!(out.status.success(), "node {rank} failed:\n{}", out.stderr);
    }
    drop(c);
    let one = latest_state(&d.join("one")).expect("one process checkpointed");
    let two = latest_state(&d.join("two")).expect("node 0 checkpointed");
    assert_eq!(
        (one["step"].as_u64(), two["step"].as_u64()),
        (Some(6), Some(6))
    );
    let sums = |s: &serde_json::Value| {
        let e = &s["epoch_sums"];
        [e["loss_d"].as_f64().unwrap(), e["loss_g"].as_f64().unwrap()]
    };
    let (a, b) = (sums(&one), sums(&two));
    assert!(
        (a[0] - b[0]).abs() < 1e-4 && (a[1] - b[1]).abs() < 1e-4,
        "losses differ: one process {a:?}, two {b:?}"
    );
    for run in ["one", "two"] {
        ok(
            &[
                "sample",
                "--run",
                run,
                "--n",
                "16",
                "--out",
                &format!("{run}.png"),
            ],
            d,
        );
    }
    let (p1, p2) = (
        rgb_pixels(&d.join("one.png")),
        rgb_pixels(&d.join("two.png")),
    );
    let worst = p1
        .iter()
        .zip(&p2)
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap();
    assert!(worst <= 1, "samples differ by up to {worst} levels");

    // A node with another seed, or another image limit (each node stops at its own limit
    // without a vote): both refuse, neither hangs.
    for (name, other) in [
        ("mismatch", ["--seed", "5"]),
        ("mismatch-limit", ["--max-images", "64"]),
    ] {
        let mut c = Cluster::start(
            d,
            name,
            &[
                &["--max-steps", "2"],
                &["--max-steps", "2", other[0], other[1]],
            ],
        );
        for (rank, node) in c.nodes.drain(..).enumerate().rev() {
            let out = finish_within(node, limit, &format!("{name} node {rank}"));
            let err = &out.stderr;
            assert!(!out.status.success(), "{name} node {rank} trained");
            assert!(
                err.contains("do not train the same run"),
                "{name} node {rank}: {err}"
            );
        }
        drop(c);
    }

    // No orchestrator at the address: the node gives up after --peer-timeout, saying where it
    // looked, instead of retrying forever as Burn does.
    let nowhere = format!("127.0.0.1:{}", free_port());
    let lonely = spawn(
        &[
            "train",
            "--data",
            "faces.shard",
            "--run",
            "lonely",
            "--config",
            "flat.toml",
            "--nodes",
            "2",
            "--node-rank",
            "0",
            "--orchestrator",
            &nowhere,
            "--peer-timeout",
            "3",
        ],
        d,
    );
    let out = finish_within(lonely, limit, "a node without an orchestrator");
    let err = &out.stderr;
    assert!(!out.status.success());
    assert!(
        err.contains("could not reach the orchestrator") && err.contains(&nowhere),
        "unclear error: {err}"
    );

    // Node 1 killed after node 0's first checkpoint: node 0 stops with a message naming it.
    let mut c = Cluster::start(d, "killed", &[&["--epochs", "1000"], &["--epochs", "1000"]]);
    let t = Instant::now();
    while latest_state(&d.join("killed")).is_none() {
        assert!(t.elapsed() < limit, "no checkpoint from node 0");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut node1 = c.nodes.pop().unwrap();
    node1.child.kill().unwrap();
    let _ = node1.child.wait();
    let killed_at = Instant::now();
    let out = finish_within(c.nodes.pop().unwrap(), limit, "node 0 after node 1 died");
    let err = &out.stderr;
    assert!(!out.status.success(), "node 0 went on alone");
    assert!(err.contains("node(s) 1"), "unclear error: {err}");
    assert!(
        !err.contains("panicked"),
        "a backtrace for a lost peer: {err}"
    );
    eprintln!(
        "node 0 stopped {:?} after node 1 was killed",
        killed_at.elapsed()
    );
    assert!(
        latest_state(&d.join("killed")).is_some(),
        "node 0's checkpoint is gone"
    );
}

/// `facegan train` without `--preset` or `--config` trains the recommended preset for the
/// shard's image size and says so; a size without one is refused, naming the sizes that have
/// one, before the run directory is created.
#[test]
fn train_without_a_preset_trains_the_recommended_one_for_the_shard_size() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    make_faces_shard(d, 80, 5);
    let err = fails(
        &[
            "train",
            "--data",
            "faces.shard",
            "--run",
            "r16",
            "--max-steps",
            "1",
        ],
        d,
    );
    assert!(
        err.contains("no recommended preset for 16x16 images"),
        "{err}"
    );
    assert!(err.contains("48x40 (faces48), 96x80 (faces96)"), "{err}");
    assert!(!d.join("r16").exists());
    ok(
        &[
            "preprocess",
            "--input",
            "faces",
            "--output",
            "faces48.shard",
            "--size",
            "48x40",
            "--holdout",
            "0.1",
        ],
        d,
    );
    let out = ok(
        &[
            "train",
            "--data",
            "faces48.shard",
            "--run",
            "r48",
            "--max-steps",
            "1",
        ],
        d,
    );
    assert!(
        out.contains("no --preset given: training faces48, the recommended preset for 48x40"),
        "{out}"
    );
    let config = std::fs::read_to_string(d.join("r48/config.toml")).unwrap();
    assert!(config.contains("preset = \"faces48\""), "{config}");
}

/// Starts `facegan orchestrator --listen 127.0.0.1:P` and waits until it accepts; returns it
/// and P.
#[cfg(target_os = "linux")]
fn start_orchestrator(d: &Path) -> (Proc, u16) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut orch = spawn(&["orchestrator", "--listen", &listen], d);
    wait_for_server(&mut orch, port, "the orchestrator");
    (orch, port)
}

/// The orchestrator listens on the address it is given, not on every interface: with
/// `--listen 127.0.0.1:P` it accepts on 127.0.0.1:P and not on 127.0.0.2:P (another loopback
/// address of the same machine); an address it cannot listen on ends it with an error naming it.
#[cfg(target_os = "linux")]
#[test]
fn the_orchestrator_listens_only_on_its_listen_address() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    let (mut orch, port) = start_orchestrator(d);
    let elsewhere = std::net::TcpStream::connect(("127.0.0.2", port));
    let _ = orch.child.kill();
    let _ = orch.child.wait();
    assert!(elsewhere.is_err(), "reachable at 127.0.0.2:{port} too");
    // Taken by another listener: an error, not a silent exit.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = format!("127.0.0.1:{}", held.local_addr().unwrap().port());
    let err = fails(&["orchestrator", "--listen", &taken], d);
    assert!(err.contains(&format!("cannot listen on {taken}")), "{err}");
}

/// The orchestrator's wire messages as its nodes send them (MessagePack of these shapes: the
/// same names and variant order as burn-collective's `CollectiveMessage`).
mod wire {
    #[derive(serde::Serialize)]
    pub struct SessionId {
        pub id: u64,
    }
    #[derive(serde::Serialize)]
    pub struct RequestId(pub u32);
    #[derive(serde::Serialize)]
    pub struct Address {
        pub inner: String,
    }
    #[derive(serde::Serialize)]
    #[allow(dead_code)] // only Finish is sent; Register keeps the variant order
    pub enum RemoteRequest {
        Register {
            node_addr: Address,
            num_nodes: u32,
            peers: Vec<u32>,
        },
        Finish,
    }
    #[derive(serde::Serialize)]
    pub enum CollectiveMessage {
        Init(SessionId),
        Request(RequestId, RemoteRequest),
    }
}

/// A websocket to `path` on 127.0.0.1:`port` whose reads and writes give up after 15 s.
#[cfg(target_os = "linux")]
fn bogus_client(port: u16, path: &str) -> tungstenite::WebSocket<std::net::TcpStream> {
    client_with_token(port, path, None).expect("a websocket handshake")
}

/// A websocket to `path` on 127.0.0.1:`port` that sends `token` as facegan's nodes do
/// (`Authorization: Bearer TOKEN`); its reads and writes give up after 15 s. The handshake's
/// error when the server refuses it.
#[cfg(target_os = "linux")]
fn client_with_token(
    port: u16,
    path: &str,
    token: Option<&str>,
) -> Result<tungstenite::WebSocket<std::net::TcpStream>, String> {
    use tungstenite::client::IntoClientRequest;
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    tcp.set_write_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut request = format!("ws://127.0.0.1:{port}{path}")
        .into_client_request()
        .unwrap();
    if let Some(t) = token {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    match tungstenite::client(request, tcp) {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r))) => {
            Err(format!("HTTP {}", r.status().as_u16()))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
#[cfg(target_os = "linux")]
fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} never listened on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// [`wait_for_port`] for a server `server` started on `port`, which must still be running a
/// moment after the port answers: otherwise another process's server answered (the port was
/// taken before `server` could listen), and the test stops with `server`'s log.
#[cfg(target_os = "linux")]
fn wait_for_server(server: &mut Proc, port: u16, what: &str) {
    wait_for_port(port, what);
    std::thread::sleep(Duration::from_millis(200));
    if let Ok(Some(status)) = server.child.try_wait() {
        let log = std::fs::read_to_string(&server.log).unwrap_or_default();
        panic!("{what} on port {port} ended ({status}): {log}");
    }
}

/// Whether the server ends a connection after we sent it `bytes`: the next read is a close
/// or an error, not a wait past the client's 15 s timeout.
#[cfg(target_os = "linux")]
fn closes_after(ws: &mut tungstenite::WebSocket<std::net::TcpStream>, bytes: &[u8]) -> bool {
    let _ = ws.send(tungstenite::Message::Binary(bytes.to_vec().into()));
    let t = Instant::now();
    loop {
        match ws.read() {
            Ok(tungstenite::Message::Close(_)) => return true,
            Ok(_) => continue,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return t.elapsed() < Duration::from_secs(15),
        }
    }
}

/// Bytes that are no message of any route: a MessagePack code that is never used, then junk.
const GARBAGE: &[u8] = &[0xc1, 0xff, 0x00, 0x13, 0x37];

#[cfg(target_os = "linux")]
fn send(ws: &mut tungstenite::WebSocket<std::net::TcpStream>, msg: &wire::CollectiveMessage) {
    let bytes = rmp_serde::to_vec(msg).unwrap();
    ws.send(tungstenite::Message::Binary(bytes.into())).unwrap();
}

/// A client that sends Init and two Finish requests on `/request` and never opens `/response`
/// does not wedge the orchestrator: another session is still answered; and a second
/// `/response` connection for a session is refused with a log line, not a panic.
#[cfg(target_os = "linux")]
#[test]
fn a_client_that_never_reads_its_responses_does_not_wedge_the_orchestrator() {
    use wire::{CollectiveMessage as M, RemoteRequest, RequestId, SessionId};
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    let (mut orch, port) = start_orchestrator(d);
    let mut bogus = bogus_client(port, "/request");
    send(&mut bogus, &M::Init(SessionId { id: 1 }));
    for r in 1..=2 {
        send(&mut bogus, &M::Request(RequestId(r), RemoteRequest::Finish));
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut requests = bogus_client(port, "/request");
    send(&mut requests, &M::Init(SessionId { id: 2 }));
    let mut responses = bogus_client(port, "/response");
    send(&mut responses, &M::Init(SessionId { id: 2 }));
    send(
        &mut requests,
        &M::Request(RequestId(3), RemoteRequest::Finish),
    );
    let answer = responses.read();
    assert!(
        matches!(answer, Ok(tungstenite::Message::Binary(_))),
        "the second client got no answer while the first does not read its own: {answer:?}"
    );
    let mut again = bogus_client(port, "/response");
    send(&mut again, &M::Init(SessionId { id: 2 }));
    std::thread::sleep(Duration::from_millis(300));
    let _ = orch.child.kill();
    let _ = orch.child.wait();
    let log = std::fs::read_to_string(&orch.log).unwrap();
    assert!(!log.contains("panicked"), "{log}");
}

/// The cluster's shared token, as the tests give it (FACEGAN_CLUSTER_TOKEN).
const TOKEN: &str = "test-token-0123456789abcdef";

/// With a token set, the orchestrator admits only clients that carry it (a missing or wrong
/// one gets HTTP 401); garbage from an admitted client, and a client that never says who it
/// is, end that connection only (the orchestrator still answers a proper session, never
/// panics). Listening beyond loopback, or a node listening there, without a token is
/// refused at the start, and so is a token too short to be a secret.
#[cfg(target_os = "linux")]
#[test]
fn the_orchestrator_admits_only_the_runs_token_and_survives_garbage() {
    use wire::{CollectiveMessage as M, RemoteRequest, RequestId, SessionId};
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut orch = spawn_with_env(
        &["orchestrator", "--listen", &listen, "--peer-timeout", "1"],
        d,
        &[("FACEGAN_CLUSTER_TOKEN", TOKEN)],
    );
    wait_for_server(&mut orch, port, "the orchestrator");
    for route in ["/request", "/response"] {
        assert_eq!(
            client_with_token(port, route, None).err().as_deref(),
            Some("HTTP 401"),
            "{route} without a token"
        );
        assert_eq!(
            client_with_token(port, route, Some("test-token-0123456789abcdeX"))
                .err()
                .as_deref(),
            Some("HTTP 401"),
            "{route} with a wrong token"
        );
        let mut ws = client_with_token(port, route, Some(TOKEN)).expect("the token admits");
        assert!(closes_after(&mut ws, GARBAGE), "{route} kept garbage open");
    }
    // Silent past the idle limit (twice --peer-timeout): closed.
    let mut silent = client_with_token(port, "/request", Some(TOKEN)).unwrap();
    let t = Instant::now();
    let closed = loop {
        match silent.read() {
            Ok(tungstenite::Message::Close(_)) | Err(_) => break t.elapsed(),
            Ok(_) => {}
        }
    };
    assert!(
        closed < Duration::from_secs(10),
        "a silent connection stayed open {closed:?}"
    );
    // A proper session is still answered (Finish before Register: an error response).
    let mut requests = client_with_token(port, "/request", Some(TOKEN)).unwrap();
    send(&mut requests, &M::Init(SessionId { id: 7 }));
    let mut responses = client_with_token(port, "/response", Some(TOKEN)).unwrap();
    send(&mut responses, &M::Init(SessionId { id: 7 }));
    send(
        &mut requests,
        &M::Request(RequestId(1), RemoteRequest::Finish),
    );
    let answer = responses.read();
    assert!(
        matches!(answer, Ok(tungstenite::Message::Binary(_))),
        "no answer after the garbage: {answer:?}"
    );
    let _ = orch.child.kill();
    let _ = orch.child.wait();
    let log = std::fs::read_to_string(&orch.log).unwrap();
    assert!(!log.contains("panicked"), "{log}");

    // Beyond loopback without a token: refused before listening.
    let open = format!("0.0.0.0:{}", free_port());
    let err = fails(&["orchestrator", "--listen", &open], d);
    assert!(
        err.contains("reachable from other machines") && err.contains("--token-file"),
        "{err}"
    );
    make_faces_shard(d, 40, 9);
    let err = fails(
        &[
            "train",
            "--data",
            "faces.shard",
            "--run",
            "open",
            "--preset",
            "tiny",
            "--nodes",
            "2",
            "--node-rank",
            "1",
            "--orchestrator",
            &listen,
            "--node-address",
            &open,
        ],
        d,
    );
    assert!(
        err.contains("--node-address") && err.contains("token"),
        "{err}"
    );
    std::fs::write(d.join("short.token"), "abc\n").unwrap();
    let err = fails(
        &[
            "orchestrator",
            "--listen",
            &listen,
            "--token-file",
            "short.token",
        ],
        d,
    );
    assert!(
        err.contains("short.token") && err.contains("at least 16 characters"),
        "{err}"
    );
}

/// Two nodes training with a token: a stranger without it, or with a wrong one, is refused
/// by each node's data port (it cannot download a gradient); garbage sent to a node's `/data`
/// and `/sync` with the token closes that connection only; the run finishes its steps on
/// both nodes and nothing panics.
#[cfg(target_os = "linux")]
#[test]
fn a_two_node_run_refuses_strangers_and_survives_garbage_on_its_ports() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    make_faces_shard(d, 160, 4);
    std::fs::write(
        d.join("flat.toml"),
        "preset = \"tiny\"\nbatch = 16\nepochs = 100\neval_every = 0\n",
    )
    .unwrap();
    let steps = ["--max-steps", "40"];
    let (mut c, ports) = Cluster::start_with_env(
        d,
        "guarded",
        &[&steps, &steps],
        &[("FACEGAN_CLUSTER_TOKEN", TOKEN)],
    );
    for &port in &ports {
        wait_for_port(port, "a node's data server");
        for route in ["/data", "/sync"] {
            assert_eq!(
                client_with_token(port, route, None).err().as_deref(),
                Some("HTTP 401"),
                "{route} on {port} without a token"
            );
            assert_eq!(
                client_with_token(port, route, Some("test-token-0123456789abcdeX"))
                    .err()
                    .as_deref(),
                Some("HTTP 401"),
                "{route} on {port} with a wrong token"
            );
        }
        let mut data = client_with_token(port, "/data", Some(TOKEN)).unwrap();
        assert!(closes_after(&mut data, GARBAGE), "/data kept garbage open");
        let mut sync = client_with_token(port, "/sync", Some(TOKEN)).unwrap();
        let _ = closes_after(&mut sync, GARBAGE); // one message per connection: closed anyway
    }
    for (rank, node) in c.nodes.drain(..).enumerate().rev() {
        let out = finish_within(node, Duration::from_secs(180), &format!("node {rank}"));
        assert!(out.status.success(), "node {rank} failed:\n{}", out.stderr);
        assert!(
            !out.stderr.contains("panicked"),
            "node {rank}:\n{}",
            out.stderr
        );
    }
    drop(c);
    let state = latest_state(&d.join("guarded")).expect("node 0 checkpointed");
    assert_eq!(state["step"].as_u64(), Some(40));
}
