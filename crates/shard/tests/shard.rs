//! Shard format tests: bit-exact round trip, header and bounds validation, atomic writes.

use facegan_shard::{
    ImageMeta, Shard, ShardError, ShardMeta, ShardSettings, ShardWriter, Split, HEADER_LEN,
};
use std::path::Path;

fn image(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| ((i * 131 + j * 7) % 251) as u8).collect()
}

fn meta(i: usize) -> ImageMeta {
    ImageMeta {
        path: format!("dir/img_{i:03}.jpg"),
        orig_width: 178,
        orig_height: 218,
        content_hash: i as u64 * 0x1234_5678,
        split: if i.is_multiple_of(5) {
            Split::Holdout
        } else {
            Split::Train
        },
    }
}

fn settings() -> ShardSettings {
    ShardSettings {
        crop: "none".into(),
        filter: "catmullrom".into(),
        holdout_fraction: 0.2,
        holdout_source: "hash".into(),
        min_size: 32,
        dedupe: false,
    }
}

fn write_shard(path: &Path, n: usize, h: u32, w: u32) -> Vec<Vec<u8>> {
    let metas: Vec<ImageMeta> = (0..n).map(meta).collect();
    let cap = ShardMeta::size_bound(&settings(), "test", metas.iter().map(|m| m.path.len()));
    let mut wr = ShardWriter::create(path, h, w, cap).unwrap();
    let len = (h * w * 3) as usize;
    let imgs: Vec<Vec<u8>> = (0..n).map(|i| image(i, len)).collect();
    for (img, m) in imgs.iter().zip(metas) {
        wr.push(img, m).unwrap();
    }
    wr.finish("test", settings()).unwrap();
    imgs
}

#[test]
fn round_trips_bit_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.shard");
    let imgs = write_shard(&path, 23, 12, 10);
    let s = Shard::open(&path).unwrap();
    assert_eq!(s.len(), 23);
    assert_eq!((s.height(), s.width(), s.channels()), (12, 10, 3));
    assert_eq!(s.header().payload_offset % 4096, 0);
    for (i, img) in imgs.iter().enumerate() {
        assert_eq!(s.image(i), &img[..], "image {i}");
        assert_eq!(s.meta().images[i], meta(i));
    }
    assert_eq!(s.images(3..7), &imgs[3..7].concat()[..]);
    assert_eq!(s.meta().settings, settings());
    assert_eq!(s.indices(Split::Holdout), vec![0, 5, 10, 15, 20]);
    s.verify().unwrap();
}

#[test]
fn empty_shard_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.shard");
    write_shard(&path, 0, 8, 8);
    let s = Shard::open(&path).unwrap();
    assert!(s.is_empty());
    s.verify().unwrap();
}

#[test]
fn truncated_file_is_reported_as_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.shard");
    write_shard(&path, 5, 8, 8);
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.path().join("cut.shard");
    std::fs::write(&cut, &bytes[..bytes.len() - 10]).unwrap();
    match Shard::open(&cut) {
        Err(ShardError::Truncated { what, .. }) => assert_eq!(what, "the payload"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("truncated shard opened"),
    }
    std::fs::write(&cut, &bytes[..40]).unwrap();
    assert!(matches!(
        Shard::open(&cut),
        Err(ShardError::Truncated { .. })
    ));
    // Every prefix gives an error, never a panic.
    for len in (0..bytes.len()).step_by(97) {
        std::fs::write(&cut, &bytes[..len]).unwrap();
        let err = Shard::open(&cut).err().expect("a prefix must not open");
        assert!(
            err.to_string().contains("cut.shard"),
            "error names the file: {err}"
        );
    }
}

#[test]
fn foreign_file_is_reported_as_foreign() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.shard");
    std::fs::write(
        &path,
        b"\x89PNG\r\n\x1a\n not a shard at all, just some bytes",
    )
    .unwrap();
    let err = Shard::open(&path).err().unwrap();
    assert!(matches!(err, ShardError::Foreign { .. }), "{err}");
    assert!(err.to_string().contains("not a facegan shard"));
}

fn patch_header(path: &Path, at: usize, bytes: &[u8]) {
    let mut b = std::fs::read(path).unwrap();
    b[at..at + bytes.len()].copy_from_slice(bytes);
    reseal_header(&mut b);
    std::fs::write(path, b).unwrap();
}

/// Recomputes the header checksums (version 1's over 0..72, version 2's over 0..88), so only
/// the patched field itself is wrong.
fn reseal_header(b: &mut [u8]) {
    let sum = xxhash_rust_xxh3(&b[..72]);
    b[72..80].copy_from_slice(&sum.to_le_bytes());
    if u32::from_le_bytes(b[8..12].try_into().unwrap()) >= 2 {
        let sum = xxhash_rust_xxh3(&b[..88]);
        b[88..96].copy_from_slice(&sum.to_le_bytes());
    }
}

/// Rewrites a (version 2) shard as version 1 wrote it: version 1, no metadata checksum.
fn make_version_1(path: &Path) {
    let mut b = std::fs::read(path).unwrap();
    b[8..12].copy_from_slice(&1u32.to_le_bytes());
    b[80..96].fill(0);
    reseal_header(&mut b);
    std::fs::write(path, b).unwrap();
}

fn xxhash_rust_xxh3(b: &[u8]) -> u64 {
    // Same function the format uses for the header checksum (re-exported as `checksum`).
    facegan_shard::checksum(b)
}

#[test]
fn newer_version_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.shard");
    write_shard(&path, 3, 8, 8);
    patch_header(&path, 8, &99u32.to_le_bytes());
    match Shard::open(&path) {
        Err(ShardError::NewerVersion { found, .. }) => assert_eq!(found, 99),
        other => panic!("expected NewerVersion, got {:?}", other.err()),
    }
}

#[test]
fn corrupted_header_and_payload_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.shard");
    write_shard(&path, 4, 8, 8);
    let good = std::fs::read(&path).unwrap();

    // A flipped header byte breaks the header checksum.
    let mut b = good.clone();
    b[20] ^= 0xFF;
    std::fs::write(&path, &b).unwrap();
    assert!(matches!(
        Shard::open(&path),
        Err(ShardError::Corrupt { .. })
    ));

    // A count that disagrees with the payload length (checksum fixed up) is caught too.
    std::fs::write(&path, &good).unwrap();
    patch_header(&path, 16, &5u64.to_le_bytes());
    assert!(matches!(
        Shard::open(&path),
        Err(ShardError::Corrupt { .. })
    ));

    // A flipped payload byte opens (zero-copy) but fails --verify.
    let mut b = good.clone();
    let last = b.len() - 1;
    b[last] ^= 1;
    std::fs::write(&path, &b).unwrap();
    let s = Shard::open(&path).unwrap();
    let err = s.verify().unwrap_err();
    assert!(err.to_string().contains("checksum mismatch"), "{err}");

    // Garbage metadata.
    let mut b = good.clone();
    for x in &mut b[HEADER_LEN..HEADER_LEN + 16] {
        *x = 0xFF;
    }
    std::fs::write(&path, &b).unwrap();
    assert!(matches!(
        Shard::open(&path),
        Err(ShardError::Corrupt { .. })
    ));
}

#[test]
fn unfinished_writer_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("u.shard");
    {
        let mut wr = ShardWriter::create(&path, 8, 8, 1024).unwrap();
        wr.push(&image(0, 192), meta(0)).unwrap();
        // dropped without finish(), like an interrupted run
    }
    assert!(!path.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "temp file removed"
    );
}

#[test]
fn existing_shard_survives_an_interrupted_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.shard");
    write_shard(&path, 3, 8, 8);
    let before = std::fs::read(&path).unwrap();
    {
        let mut wr = ShardWriter::create(&path, 8, 8, 1024).unwrap();
        wr.push(&image(9, 192), meta(9)).unwrap();
    }
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

/// A header whose height x width x 3 wraps 64 bits (checksum fixed up) is
/// refused as a bad image size, so nothing downstream computes with the wrapped value.
#[test]
fn huge_image_sides_are_refused_before_any_size_is_computed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.shard");
    write_shard(&path, 3, 8, 8);
    patch_header(&path, 24, &2_154_230_017u32.to_le_bytes());
    patch_header(&path, 28, &2_854_344_542u32.to_le_bytes());
    let err = Shard::open(&path).err().expect("refused");
    assert!(matches!(err, ShardError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("bad image size"), "{err}");
    assert!(err.to_string().contains("big.shard"), "{err}");
}

/// One metadata byte (a string's length prefix set to 0xFD, so the next 8
/// bytes claim exabytes) is a clear error, not an allocation abort: version 2 shards catch it by
/// the metadata checksum; version 1 shards (no such checksum) by the bounded decode.
#[test]
fn a_corrupt_metadata_length_prefix_is_an_error_not_an_abort() {
    for version in [2, 1] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.shard");
        write_shard(&path, 3, 8, 8);
        if version == 1 {
            make_version_1(&path);
        }
        let mut b = std::fs::read(&path).unwrap();
        let needle = b"dir/img_000.jpg";
        let at = b
            .windows(needle.len())
            .position(|w| w == needle)
            .expect("the first path is in the metadata");
        assert_eq!(b[at - 1] as usize, needle.len(), "its length prefix");
        b[at - 1] = 0xFD;
        std::fs::write(&path, &b).unwrap();
        let err = Shard::open(&path).err().expect("refused");
        assert!(matches!(err, ShardError::Corrupt { .. }), "{err}");
        let want = if version == 2 {
            "metadata checksum mismatch"
        } else {
            "metadata does not decode"
        };
        assert!(err.to_string().contains(want), "version {version}: {err}");
    }
}

/// Any other metadata byte (an image's split, a path character, a setting) flipped in
/// a version 2 shard is refused on open; version 1 shards, which cannot tell, still open.
#[test]
fn flipped_metadata_bytes_are_caught_and_version_1_shards_still_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.shard");
    let images = write_shard(&path, 3, 8, 8);
    let clean = std::fs::read(&path).unwrap();
    let needle = b"dir/img_001.jpg";
    let at = clean
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    let mut b = clean.clone();
    b[at + 4] ^= 0x01; // "img_" -> "ilg_"
    std::fs::write(&path, &b).unwrap();
    let err = Shard::open(&path).err().expect("refused");
    assert!(
        err.to_string().contains("metadata checksum mismatch"),
        "{err}"
    );
    assert!(err.to_string().contains("f.shard"), "{err}");

    std::fs::write(&path, &clean).unwrap();
    make_version_1(&path);
    let s = Shard::open(&path).expect("a version 1 shard opens");
    assert_eq!(s.header().version, 1);
    for (i, img) in images.iter().enumerate() {
        assert_eq!(s.image(i), img.as_slice());
    }
    s.verify().unwrap();
}

/// An output path that is a folder is refused up front, naming it, and leaves
/// no temp file; temp files of dead writers are cleaned up by the next writer of that name.
#[test]
fn folder_output_is_refused_and_stale_temps_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.shard");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("keep.txt"), b"x").unwrap();
    let err = ShardWriter::create(&out, 8, 8, 4096)
        .err()
        .expect("a folder is refused");
    assert!(err.to_string().contains("out.shard"), "{err}");
    assert!(err.to_string().contains("is a folder"), "{err}");
    assert!(out.join("keep.txt").is_file(), "the folder is untouched");
    let names = |d: &Path| -> Vec<String> {
        std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert!(names(dir.path()).iter().all(|n| !n.contains(".tmp-")));

    // A temp file of a process that no longer exists (pid above Linux's pid_max), and one of
    // another shard name: the next writer of `s.shard` removes only its own dead one.
    let stale = dir.path().join(".s.shard.tmp-4194305");
    let other = dir.path().join(".t.shard.tmp-4194305");
    std::fs::write(&stale, vec![0u8; 1000]).unwrap();
    std::fs::write(&other, b"x").unwrap();
    write_shard(&dir.path().join("s.shard"), 2, 8, 8);
    assert_eq!(stale.exists(), !cfg!(target_os = "linux"));
    assert!(other.exists());
    assert!(Shard::open(dir.path().join("s.shard")).is_ok());
}

/// A folder or a FIFO given as the shard is a clear error at once (a
/// FIFO used to block forever; a folder said "No such device").
#[test]
fn folders_and_fifos_are_not_shards() {
    let dir = tempfile::tempdir().unwrap();
    let err = Shard::open(dir.path()).err().expect("a folder is refused");
    assert!(err.to_string().contains("is a folder"), "{err}");
    // The OS text is said once, also through an error chain.
    let chained = anyhow_like(&err);
    assert_eq!(chained.matches("is a folder").count(), 1, "{chained}");
    #[cfg(unix)]
    {
        let fifo = dir.path().join("f.shard");
        let ok = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let err = Shard::open(&fifo).err().expect("a FIFO is refused");
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }
}

/// The message and its source chain joined by ": ", as `anyhow`'s `{:#}` prints them.
fn anyhow_like(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}
