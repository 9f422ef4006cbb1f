//! Byte-level mutations of a corpus input: bit flips, interesting bytes and integers (the sizes,
//! offsets and counts of the shard header are little-endian u32/u64), block deletes, inserts,
//! duplications, truncation and splices from another input.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

const INTERESTING_U8: [u8; 8] = [0, 1, 0x7F, 0x80, 0xFD, 0xFE, 0xFF, b'9'];
const INTERESTING_U64: [u64; 10] = [
    0,
    1,
    3,
    4096,
    0x7FFF_FFFF,
    0x8000_0000,
    0xFFFF_FFFF,
    0x1_0000_0000,
    i64::MAX as u64,
    u64::MAX,
];

/// One to four stacked mutations of `input` (with `other`, another corpus entry, for splices).
pub fn mutate(input: &[u8], other: &[u8], rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        mutate_once(&mut v, other, rng);
    }
    v
}

fn mutate_once(v: &mut Vec<u8>, other: &[u8], rng: &mut ChaCha8Rng) {
    if v.is_empty() {
        v.push(rng.random());
        return;
    }
    let at = rng.random_range(0..v.len());
    match rng.random_range(0..9) {
        0 => v[at] ^= 1 << rng.random_range(0..8),
        1 => v[at] = INTERESTING_U8[rng.random_range(0..INTERESTING_U8.len())],
        2 => v[at] = rng.random(),
        3 => {
            // An interesting little-endian integer of 4 or 8 bytes.
            let x = INTERESTING_U64[rng.random_range(0..INTERESTING_U64.len())];
            let n = if rng.random() { 4 } else { 8 };
            for (i, b) in x.to_le_bytes()[..n].iter().enumerate() {
                if let Some(slot) = v.get_mut(at + i) {
                    *slot = *b;
                }
            }
        }
        4 => {
            let len = rng.random_range(1..=v.len().clamp(1, 64));
            let end = (at + len).min(v.len());
            v.drain(at..end);
        }
        5 => {
            let len = rng.random_range(1..=16);
            for _ in 0..len {
                v.insert(at, rng.random());
            }
        }
        6 => {
            let len = rng.random_range(1..=v.len().clamp(1, 256));
            let end = (at + len).min(v.len());
            let block = v[at..end].to_vec();
            let to = rng.random_range(0..=v.len());
            v.splice(to..to, block);
        }
        7 => v.truncate(at),
        _ => {
            if !other.is_empty() {
                let from = rng.random_range(0..other.len());
                let len = rng.random_range(1..=(other.len() - from).min(512));
                let end = (at + len).min(v.len());
                v.splice(at..end, other[from..from + len].iter().copied());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn mutations_are_deterministic_and_change_the_input() {
        let input: Vec<u8> = (0..200u8).collect();
        let run = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..50)
                .map(|_| mutate(&input, b"other bytes", &mut rng))
                .collect::<Vec<_>>()
        };
        let (a, b) = (run(1), run(1));
        assert_eq!(a, b);
        assert!(
            a.iter()
                .filter(|m| m.as_slice() != input.as_slice())
                .count()
                > 40
        );
    }
}
