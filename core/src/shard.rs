//! Detector shards: merchants are spread over S shards by a stable hash of their name, so that
//! every shard folds whole merchants (all three patterns are per merchant) and the same merchant
//! lands on the same shard in every process, build and platform.
//!
//! The hash is 64-bit FNV-1a over the name's UTF-8 bytes; the shard is the hash modulo S.
//! Documented in docs/architecture.md: changing it would move merchants between shards.

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// 64-bit FNV-1a of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(FNV_PRIME))
}

/// The shard (0-based, below `shards`) that folds `merchant`. One shard when `shards` is 0.
pub fn shard_of(merchant: &str, shards: u32) -> u32 {
    let shards = u64::from(shards.max(1));
    // The remainder is below `shards`, a u32.
    u32::try_from(fnv1a64(merchant.as_bytes()) % shards).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_known_values() {
        // Published test vectors of FNV-1a 64.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn shards_are_stable_and_spread() {
        assert_eq!(shard_of("'M1823072687'", 1), 0);
        let names: Vec<String> = (0..1000).map(|i| format!("'M{i}'")).collect();
        let mut per_shard = [0u32; 4];
        for name in &names {
            per_shard[shard_of(name, 4) as usize] += 1;
            assert_eq!(shard_of(name, 4), shard_of(name, 4));
        }
        assert!(per_shard.iter().all(|n| *n > 150), "{per_shard:?}");
    }
}
