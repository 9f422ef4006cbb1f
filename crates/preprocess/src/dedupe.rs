//! Near-duplicate detection on 64-bit perceptual hashes (exact duplicates are found by content
//! hash in the pipeline).

use crate::decode::hash_distance;

/// A streaming index of perceptual hashes. Each hash is split into 8 bands of 8 bits; two hashes
/// within distance < 8 share at least one band exactly (pigeonhole), so only images in the same
/// band buckets are compared.
pub struct NearDuplicateIndex {
    max_distance: u32,
    /// Caller ids, by slot.
    ids: Vec<usize>,
    /// `bands[b][v]`: (hash, slot) of the hashes whose band `b` has the value `v`, the hash kept
    /// inline so a scan reads one array.
    bands: Vec<Vec<Vec<(u64, u32)>>>,
}

/// Bucket entries compared per band at most, so degenerate inputs (all-black frames) stay linear.
const MAX_BUCKET_SCAN: usize = 4096;

impl NearDuplicateIndex {
    pub fn new(max_distance: u32) -> Self {
        assert!(max_distance < 8, "the band index needs max_distance < 8");
        NearDuplicateIndex {
            max_distance,
            ids: Vec::new(),
            bands: (0..8).map(|_| vec![Vec::new(); 256]).collect(),
        }
    }

    fn band(hash: u64, b: usize) -> u8 {
        (hash >> (b * 8)) as u8
    }

    /// Returns the id and distance of the closest earlier near-duplicate, if any.
    pub fn find(&self, hash: u64) -> Option<(usize, u32)> {
        let mut best: Option<(usize, u32)> = None;
        for (b, buckets) in self.bands.iter().enumerate() {
            let bucket = &buckets[Self::band(hash, b) as usize];
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
        for (b, buckets) in self.bands.iter_mut().enumerate() {
            buckets[Self::band(hash, b) as usize].push((hash, slot));
        }
        self.ids.push(id);
    }
}
