//! Preprocess tests on synthetic faces plus hand-broken files: every bad file is skipped with its
//! reason, odd colour modes are converted, output is identical for 1 and 2 threads, Ctrl-C leaves
//! nothing, near-duplicates are found.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use facegan_preprocess::synth::{draw_face, encode_jpeg, write_synth_set};
use facegan_preprocess::{run, Crop, PreprocessConfig, PreprocessReport};
use facegan_shard::{Shard, Split};

fn make_input(dir: &Path, n: usize) {
    write_synth_set(&dir.join("faces"), n, 3).unwrap();
    let good = std::fs::read(dir.join("faces/synth_000000.jpg")).unwrap();
    std::fs::write(dir.join("truncated.jpg"), &good[..good.len() / 2]).unwrap();
    std::fs::write(dir.join("zero.jpg"), b"").unwrap();
    std::fs::write(dir.join("notes.jpg"), b"this is a text file, not a JPEG\n").unwrap();
    std::fs::write(dir.join("copy_of_first.JPG"), &good).unwrap();
    let face = draw_face(3, 999);
    image::DynamicImage::ImageRgb8(face.clone())
        .to_luma8()
        .save(dir.join("gray.png"))
        .unwrap();
    image::DynamicImage::ImageRgb8(face.clone())
        .to_rgba16()
        .save(dir.join("rgba16.png"))
        .unwrap();
    image::RgbImage::from_pixel(20, 20, image::Rgb([9, 9, 9]))
        .save(dir.join("tiny.png"))
        .unwrap();
    std::fs::write(dir.join("ignored.txt"), b"not scanned").unwrap();
}

fn cfg(input: &Path, output: &Path) -> PreprocessConfig {
    let mut c = PreprocessConfig::new(input, output);
    c.height = 24;
    c.width = 20;
    c.holdout = 0.2;
    c
}

fn reasons(r: &PreprocessReport) -> Vec<(String, &'static str)> {
    let mut v: Vec<_> = r
        .skipped_files
        .iter()
        .map(|s| (s.path.clone(), s.reason))
        .collect();
    v.sort();
    v
}

#[test]
fn bad_files_are_skipped_with_reasons_and_modes_converted() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    make_input(&input, 30);
    let out = dir.path().join("out/faces.shard");
    let report = run(&cfg(&input, &out), &AtomicBool::new(false)).unwrap();
    assert_eq!(report.read, 37);
    assert_eq!(
        reasons(&report),
        vec![
            ("faces/synth_000000.jpg".to_string(), "exact_duplicate"),
            ("notes.jpg".to_string(), "not_an_image"),
            ("tiny.png".to_string(), "too_small"),
            ("truncated.jpg".to_string(), "truncated"),
            ("zero.jpg".to_string(), "empty"),
        ]
    );
    // copy_of_first.JPG sorts before faces/ so it is the one kept; gray and RGBA16 PNGs are kept.
    assert_eq!(report.kept, 32);
    let shard = Shard::open(&out).unwrap();
    shard.verify().unwrap();
    assert_eq!(shard.len(), 32);
    assert_eq!(shard.meta().images[0].path, "copy_of_first.JPG");
    let gray = shard
        .meta()
        .images
        .iter()
        .position(|m| m.path == "gray.png")
        .unwrap();
    let px = shard.image(gray);
    assert!(
        px.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]),
        "grey stays grey in RGB"
    );
    assert_eq!(report.train + report.holdout, 32);
    assert_eq!(shard.indices(Split::Holdout).len(), report.holdout);
    // The JSON report sits next to the shard and lists each skip.
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out/faces.shard.report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json["skipped_files"].as_array().unwrap().len(), 5);
    assert_eq!(json["skipped"]["truncated"], 1);
}

#[test]
fn output_is_identical_for_one_and_two_threads() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    make_input(&input, 40);
    let mut outs = Vec::new();
    for threads in [1, 2] {
        let out = dir.path().join(format!("t{threads}.shard"));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| run(&cfg(&input, &out), &AtomicBool::new(false)).unwrap());
        outs.push(std::fs::read(&out).unwrap());
    }
    assert_eq!(outs[0], outs[1]);
}

#[test]
fn interrupt_leaves_no_shard() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    make_input(&input, 5);
    let out = dir.path().join("x.shard");
    let err = run(&cfg(&input, &out), &AtomicBool::new(true)).unwrap_err();
    assert!(err.to_string().contains("interrupted"));
    assert!(!out.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "only the input folder remains"
    );
}

#[test]
fn near_duplicates_are_reported_and_dropped_with_dedupe() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    write_synth_set(&input, 12, 5).unwrap();
    // The same face re-encoded at another quality: different bytes, same picture.
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 70)
        .encode_image(&draw_face(5, 4))
        .unwrap();
    std::fs::write(input.join("synth_000004_again.jpg"), &bytes).unwrap();
    let out = dir.path().join("n.shard");
    let mut c = cfg(&input, &out);
    let r = run(&c, &AtomicBool::new(false)).unwrap();
    assert_eq!(r.kept, 13);
    assert_eq!(r.near_duplicates.len(), 1, "{:?}", r.near_duplicates);
    assert_eq!(r.near_duplicates[0].of, "synth_000004.jpg");
    c.dedupe = true;
    let r = run(&c, &AtomicBool::new(false)).unwrap();
    assert_eq!(r.kept, 12);
    assert_eq!(r.skipped.get("near_duplicate"), Some(&1));
}

#[test]
fn holdout_is_stable_when_files_are_added_and_follows_partition_file() {
    use facegan_preprocess::split::{hash_split, Splitter};
    let names: Vec<String> = (0..2000).map(|i| format!("{i:06}.jpg")).collect();
    let held = names
        .iter()
        .filter(|n| hash_split(n, 0.05) == Split::Holdout)
        .count();
    assert!((60..140).contains(&held), "about 5% held out, got {held}");
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("list_eval_partition.txt");
    std::fs::write(&part, "000001.jpg 0\n000002.jpg 1\n000003.jpg 2\n").unwrap();
    let s = Splitter::discover(&dir.path().join("img_align_celeba"), 0.05).unwrap();
    assert_eq!(s.split("000001.jpg"), Split::Train);
    assert_eq!(s.split("000002.jpg"), Split::Holdout);
    assert_eq!(s.split("sub/000003.jpg"), Split::Holdout);
    std::fs::write(&part, "000001.jpg 7\n").unwrap();
    assert!(Splitter::discover(dir.path(), 0.05).is_err());
}

#[test]
fn center_crop_keeps_the_target_aspect() {
    assert_eq!(Crop::parse("center:148"), Some(Crop::Center(148)));
    assert_eq!(Crop::parse("center:0"), None);
    let (l, t, w, h) = Crop::Center(148).region(178, 218, 64, 64);
    assert_eq!((l, t, w, h), (15.0, 35.0, 148.0, 148.0));
    let (_, _, w, h) = Crop::Center(148).region(178, 218, 96, 80);
    assert!((w / h - 80.0 / 96.0).abs() < 1e-9);
}

#[test]
fn synth_is_deterministic_and_face_sized() {
    let a = encode_jpeg(&draw_face(1, 2));
    let b = encode_jpeg(&draw_face(1, 2));
    assert_eq!(a, b);
    assert_ne!(draw_face(1, 2), draw_face(1, 3));
    assert_eq!(draw_face(0, 0).dimensions(), (178, 218));
}

/// Symlinks that loop back to their folder end the scan instead of
/// growing it without bound, and a FIFO with an image's name is skipped rather than opened
/// (opening it would block forever); the report lists each (and a dangling link) with its reason.
#[cfg(unix)]
#[test]
fn symlink_loops_end_and_fifos_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    make_input(&input, 3);
    let plain: Vec<String> = facegan_preprocess::scan(&input)
        .unwrap()
        .into_iter()
        .map(|f| f.rel)
        .collect();
    std::os::unix::fs::symlink(".", input.join("again")).unwrap();
    std::os::unix::fs::symlink("..", input.join("up")).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(input.join("f.jpg"))
        .status()
        .unwrap();
    assert!(status.success());
    let names: Vec<String> = facegan_preprocess::scan(&input)
        .unwrap()
        .into_iter()
        .map(|f| f.rel)
        .collect();
    assert_eq!(names, plain, "each image once, the FIFO not at all");
    // The whole run finishes too, and its report lists what the scan passed over.
    std::os::unix::fs::symlink("nowhere.jpg", input.join("dangling.jpg")).unwrap();
    let out = dir.path().join("o.shard");
    let report = run(&cfg(&input, &out), &AtomicBool::new(false)).unwrap();
    assert!(Shard::open(&out).is_ok());
    let listed: Vec<(&str, &str)> = report
        .skipped_files
        .iter()
        .map(|s| (s.path.as_str(), s.reason))
        .collect();
    for entry in [
        ("again", "folder_seen"),
        ("dangling.jpg", "dangling_link"),
        ("f.jpg", "not_a_regular_file"),
    ] {
        assert!(listed.contains(&entry), "{entry:?} in {listed:?}");
    }
}

/// The scan follows links, to folders above the input too (whose other images it lists), and
/// lists a folder reached twice once; hidden files and folders are scanned like the others.
/// (The walkdir crate's link following differs on the first two, so the scan is hand-written.)
#[cfg(unix)]
#[test]
fn scan_follows_links_once_and_keeps_hidden_files() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    for rel in ["a.jpg", ".hidden/b.jpg", "sub/c.png"] {
        let path = input.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"x").unwrap();
    }
    std::fs::write(dir.path().join("beside.JPG"), b"x").unwrap();
    std::os::unix::fs::symlink("..", input.join("up")).unwrap();
    std::os::unix::fs::symlink("sub", input.join("sub_again")).unwrap();
    let names: Vec<String> = facegan_preprocess::scan(&input)
        .unwrap()
        .into_iter()
        .map(|f| f.rel)
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
    assert_eq!(names[..2], [".hidden/b.jpg", "a.jpg"]);
    assert!(
        names[2] == "sub/c.png" || names[2] == "sub_again/c.png",
        "{names:?}"
    );
    assert_eq!(names[3], "up/beside.JPG");
}

/// When only the JSON report cannot be written (here a folder stands where
/// it goes), the finished shard is kept and preprocess succeeds with a warning.
#[test]
fn a_report_that_cannot_be_written_does_not_fail_a_finished_shard() {
    let dir = tempfile::tempdir().unwrap();
    write_synth_set(&dir.path().join("in"), 12, 5).unwrap();
    let out = dir.path().join("faces.shard");
    std::fs::create_dir_all(dir.path().join("faces.shard.report.json/blocker")).unwrap();
    let report = run(&cfg(&dir.path().join("in"), &out), &AtomicBool::new(false)).unwrap();
    assert_eq!(report.kept, 12);
    assert_eq!(Shard::open(&out).unwrap().len(), 12);
}

/// Two files whose names differ only in non-UTF-8 bytes keep distinct paths
/// in the shard (they were both stored as the same replacement character).
#[cfg(unix)]
#[test]
fn non_utf8_names_stay_distinct() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    write_synth_set(&input, 4, 8).unwrap();
    for (name, seed) in [(&b"caf\xe9.jpg"[..], 101), (&b"caf\xe8.jpg"[..], 102)] {
        let face = encode_jpeg(&draw_face(seed, 7));
        std::fs::write(input.join(std::ffi::OsStr::from_bytes(name)), face).unwrap();
    }
    let out = dir.path().join("faces.shard");
    run(&cfg(&input, &out), &AtomicBool::new(false)).unwrap();
    let shard = Shard::open(&out).unwrap();
    let paths: Vec<&str> = shard
        .meta()
        .images
        .iter()
        .map(|m| m.path.as_str())
        .collect();
    assert!(
        paths.contains(&"caf\\xE9.jpg") && paths.contains(&"caf\\xE8.jpg"),
        "{paths:?}"
    );
}
