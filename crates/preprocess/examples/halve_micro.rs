use std::time::Instant;
fn main() {
    let dir = std::env::args().nth(1).unwrap();
    let mut imgs = vec![];
    for e in std::fs::read_dir(&dir).unwrap().take(64) {
        let b = std::fs::read(e.unwrap().path()).unwrap();
        if let Ok(i) = facegan_preprocess::decode::decode_rgb(&b) {
            imgs.push(i);
        }
    }
    let mut batch = facegan_preprocess::decode::BatchResizer::new(
        96,
        80,
        facegan_preprocess::Crop::None,
        facegan_preprocess::Filter::CatmullRom,
        8,
    );
    let reps = 200;
    let t = Instant::now();
    let mut sink = 0usize;
    for _ in 0..reps {
        for im in &imgs {
            if !batch.fits(178, 218) {
                batch.flush(|v| sink += v[0] as usize);
            }
            batch.push(im.as_raw(), 178, 218);
        }
    }
    batch.flush(|v| sink += v[0] as usize);
    println!(
        "push+flush hot: {:.2} us/img {sink}",
        t.elapsed().as_secs_f64() / (reps * imgs.len()) as f64 * 1e6
    );
    // decode alone
    let files: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap()
        .take(64)
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    let t = Instant::now();
    for _ in 0..20 {
        for f in &files {
            let _ = facegan_preprocess::decode::decode_rgb(f);
        }
    }
    println!(
        "decode: {:.2} us/img",
        t.elapsed().as_secs_f64() / (20 * files.len()) as f64 * 1e6
    );
    let t = Instant::now();
    for _ in 0..20 {
        for f in &files {
            let im = facegan_preprocess::decode::decode_rgb(f).unwrap();
            if !batch.fits(178, 218) {
                batch.flush(|v| sink += v[0] as usize);
            }
            batch.push(im.as_raw(), 178, 218);
        }
    }
    batch.flush(|v| sink += v[0] as usize);
    println!(
        "decode+push+flush: {:.2} us/img {sink}",
        t.elapsed().as_secs_f64() / (20 * files.len()) as f64 * 1e6
    );
}
