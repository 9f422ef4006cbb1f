//! Near-duplicate detection on 64-bit perceptual hashes (exact duplicates are found by content
//! hash in the pipeline).

use std::collections::HashMap;

use crate::phash::hash_distance;

/// A streaming index of perceptual hashes for a maximum distance `d`. Each hash is split into
/// `d + 1` bands of (nearly) equal width; two hashes within distance `d` differ in at most `d`
/// bands, so they share at least one band exactly (pigeonhole), and only images in the same band
/// buckets are compared.
///
/// Wide bands keep the buckets small: with the default `d = 2`, three bands of 21–22 bits. (With
/// eight 8-bit bands, as before, face hashes crowd a few hundred buckets, and a query at 10,000
/// images already compared thousands of hashes; the search cost grew with the dataset.)
pub struct NearDuplicateIndex {
    max_distance: u32,
    /// `(shift, width)` of each band, low bits first.
    bands: Vec<(u32, u32)>,
    /// Caller ids, by slot.
    ids: Vec<usize>,
    /// `buckets[b][v]`: (hash, slot) of the hashes whose band `b` has the value `v`, the hash
    /// kept inline so a scan reads one array.
    buckets: Vec<HashMap<u64, Vec<(u64, u32)>>>,
}

/// Bucket entries compared per band at most, so degenerate inputs (thousands of all-black
/// frames) stay linear; only the newest entries of such a bucket are compared.
const MAX_BUCKET_SCAN: usize = 4096;

impl NearDuplicateIndex {
    pub fn new(max_distance: u32) -> Self {
        assert!(max_distance < 8, "the band index needs max_distance < 8");
        let count = max_distance + 1;
        let bands = (0..count)
            .map(|b| {
                let (lo, hi) = (b * 64 / count, (b + 1) * 64 / count);
                (lo, hi - lo)
            })
            .collect();
        NearDuplicateIndex {
            max_distance,
            bands,
            ids: Vec::new(),
            buckets: (0..count).map(|_| HashMap::new()).collect(),
        }
    }

    fn band(hash: u64, (shift, width): (u32, u32)) -> u64 {
        (hash >> shift) & ((1u64 << width) - 1)
    }

    /// Returns the id and distance of the closest earlier near-duplicate, if any (the smallest
    /// id among equally close ones).
    pub fn find(&self, hash: u64) -> Option<(usize, u32)> {
        let mut best: Option<(usize, u32)> = None;
        for (&band, buckets) in self.bands.iter().zip(&self.buckets) {
            let Some(bucket) = buckets.get(&Self::band(hash, band)) else {
                continue;
            };
            for &(other, slot) in bucket.iter().rev().take(MAX_BUCKET_SCAN) {
                let d = hash_distance(hash, other);
                if d <= self.max_distance {
                    let id = self.ids[slot as usize];
                    if best.is_none_or(|(bid, bd)| (d, id) < (bd, bid)) {
                        best = Some((id, d));
                    }
                }
            }
        }
        best
    }

    /// Adds a hash under a caller-chosen id.
    pub fn insert(&mut self, hash: u64, id: usize) {
        let slot = self.ids.len() as u32;
        for (&band, buckets) in self.bands.iter().zip(&mut self.buckets) {
            buckets
                .entry(Self::band(hash, band))
                .or_default()
                .push((hash, slot));
        }
        self.ids.push(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The closest earlier hash within `d` by brute force: (id, distance), smallest id on ties.
    fn brute_force(earlier: &[(u64, usize)], hash: u64, d: u32) -> Option<(usize, u32)> {
        earlier
            .iter()
            .map(|&(h, id)| (hash_distance(h, hash), id))
            .filter(|&(dist, _)| dist <= d)
            .min()
            .map(|(dist, id)| (id, dist))
    }

    #[test]
    fn finds_what_a_brute_force_search_finds() {
        // Hashes in clusters (a few random centres with 0-4 bits flipped), so that near and
        // not-quite-near pairs both occur, at every supported distance.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let centres: Vec<u64> = (0..12).map(|_| next()).collect();
        let hashes: Vec<u64> = (0..3000)
            .map(|_| {
                let mut h = centres[(next() % 12) as usize];
                for _ in 0..next() % 5 {
                    h ^= 1 << (next() % 64);
                }
                h
            })
            .collect();
        for d in 0..8 {
            let mut index = NearDuplicateIndex::new(d);
            let mut earlier = Vec::new();
            let mut found = 0;
            for (i, &h) in hashes.iter().enumerate() {
                let id = i * 3 + 1;
                let want = brute_force(&earlier, h, d);
                assert_eq!(index.find(h), want, "distance {d}, hash {i}");
                found += want.is_some() as usize;
                index.insert(h, id);
                earlier.push((h, id));
            }
            assert!(
                found > 100,
                "distance {d}: the clusters should give near pairs"
            );
        }
    }
}
