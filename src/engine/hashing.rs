//! GrowthBook-compatible bucketing (hash version 2), so any GrowthBook SDK given the same
//! seed, weights and coverage puts a visitor in the same bucket Samplit does.

const FNV_OFFSET: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 16_777_619;

/// FNV-1a 32-bit over UTF-16 code units, as GrowthBook's JS SDK hashes `str.charCodeAt(i)`.
fn fnv1a32_units(units: impl Iterator<Item = u16>) -> u32 {
    units.fold(FNV_OFFSET, |h, u| (h ^ u32::from(u)).wrapping_mul(FNV_PRIME))
}

pub fn fnv1a32(s: &str) -> u32 {
    fnv1a32_units(s.encode_utf16())
}

/// `n = fnv1a32(str(fnv1a32(seed + user_id))) % 10000 / 10000`, in [0, 1).
pub fn bucket(seed: &str, user_id: &str) -> f64 {
    let inner = fnv1a32_units(seed.encode_utf16().chain(user_id.encode_utf16()));
    // The decimal digits of `inner` without allocating: a u32 has at most 10.
    let mut digits = [0u16; 10];
    let mut len = 0;
    let mut v = inner;
    loop {
        digits[len] = u16::from(b'0') + (v % 10) as u16;
        len += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let outer = fnv1a32_units(digits[..len].iter().rev().copied());
    f64::from(outer % 10_000) / 10_000.0
}

/// GrowthBook's `getBucketRanges` folded into `chooseVariation`: arm i owns
/// `[cum_i, cum_i + coverage * w_i)`. Weights that do not sum to 1 (±0.01) fall back to
/// equal weights, as there. None means the visitor is outside the experiment's coverage.
pub fn choose(n: f64, weights: &[f64], coverage: f64) -> Option<usize> {
    let coverage = coverage.clamp(0.0, 1.0);
    let total: f64 = weights.iter().sum();
    let k = weights.len();
    let equal = 1.0 / k as f64;
    let fallback = !(0.99..=1.01).contains(&total);
    let mut cumulative = 0.0;
    for (i, &given) in weights.iter().enumerate() {
        let w = if fallback { equal } else { given };
        let start = cumulative;
        cumulative += w;
        if n >= start && n < start + coverage * w {
            return Some(i);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors computed from GrowthBook's published algorithm (JS SDK util.ts: fnv1a32 over
    // charCodeAt, hash v2, getBucketRanges, chooseVariation) transcribed to Python:
    //   def fnv1a32(s):  # over UTF-16 code units
    //       h = 0x811c9dc5
    //       b = s.encode('utf-16-le')
    //       for i in range(0, len(b), 2):
    //           h ^= b[i] | (b[i+1] << 8); h = (h * 16777619) & 0xffffffff
    //       return h
    //   hv2 = lambda seed, v: (fnv1a32(str(fnv1a32(seed + v))) % 10000) / 10000
    const HASHES: &[(&str, &str, f64)] = &[
        ("", "a", 0.0216),
        ("seed", "user-1", 0.4232),
        ("exp-42", "alice", 0.0826),
        ("abc", "123", 0.3291),
        ("x", "héllo", 0.2503),
        ("s", "日本語", 0.1943),
        ("s", "😀emoji", 0.2955),
        ("8f0c", "visitor_000017", 0.3595),
    ];

    #[test]
    fn hash_v2_matches_growthbook() {
        for &(seed, user, want) in HASHES {
            assert_eq!(bucket(seed, user), want, "{seed:?} {user:?}");
        }
    }

    #[test]
    fn choose_matches_growthbook_ranges() {
        // (user, arm with weights [0.2,0.3,0.5] and coverage 0.6, arm with coverage 1)
        let want: &[(usize, Option<usize>, Option<usize>)] = &[
            (0, Some(0), Some(0)),
            (1, None, Some(1)),
            (2, Some(0), Some(0)),
            (3, Some(1), Some(1)),
            (4, Some(1), Some(1)),
            (5, None, Some(0)),
            (6, Some(1), Some(1)),
            (7, Some(1), Some(1)),
        ];
        let w = [0.2, 0.3, 0.5];
        for &(i, partial, full) in want {
            let (seed, user, _) = HASHES[i];
            let n = bucket(seed, user);
            assert_eq!(choose(n, &w, 0.6), partial, "{user}");
            assert_eq!(choose(n, &w, 1.0), full, "{user}");
        }
    }

    #[test]
    fn bad_weights_fall_back_to_equal() {
        assert_eq!(choose(0.6, &[0.1, 0.1], 1.0), Some(1));
        assert_eq!(choose(0.99, &[0.5, 0.5], 1.0), Some(1));
        assert_eq!(choose(0.5, &[0.5, 0.5], 0.0), None);
    }

    #[test]
    fn buckets_are_roughly_uniform() {
        let mut hist = [0u32; 10];
        for i in 0..100_000 {
            hist[(bucket("seed", &format!("u{i}")) * 10.0) as usize] += 1;
        }
        assert!(hist.iter().all(|&c| (9_000..11_000).contains(&c)), "{hist:?}");
    }
}
