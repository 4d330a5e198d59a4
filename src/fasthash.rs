//! A small, fast, non-cryptographic hasher for lookup tables built from configuration
//! (catalog property names, mapping source names) and probed once or more per record.
//!
//! The standard SipHash costs a few hundred instructions per short key, and the pipeline
//! looks names up dozens of times per record. The tables hashed with this are fixed at
//! load time and small; untrusted keys only probe them, so colliding input can at worst
//! walk a table of a few dozen entries, never grow one.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// FxHash (as in rustc): rotate, xor, multiply per 8-byte word.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

/// A `HashMap` with [`FxHasher`].
pub(crate) type FxHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_it_holds() {
        let map: FxHashMap<String, usize> =
            ["subject_uscc", "decision_doc_no", "a", "", "处罚决定书文号"]
                .iter()
                .enumerate()
                .map(|(i, k)| ((*k).to_owned(), i))
                .collect();
        assert_eq!(map.get("decision_doc_no"), Some(&1));
        assert_eq!(map.get(""), Some(&3));
        assert_eq!(map.get("处罚决定书文号"), Some(&4));
        assert_eq!(map.get("subject_usc"), None);
    }
}
