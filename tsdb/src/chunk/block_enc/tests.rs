use super::*;
use proptest::collection::vec;
use proptest::prelude::*;

/// Prometheus's staleness marker: a NaN whose payload must survive.
const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;
const ALL: [Encoding; 3] = [Encoding::Xor, Encoding::Decimal, Encoding::Constant];

fn as_bits(samples: &[(i64, f64)]) -> Vec<(i64, u64)> {
    samples.iter().map(|&(t, v)| (t, v.to_bits())).collect()
}

fn decode(data: &[u8]) -> Result<Vec<(i64, u64)>, ChunkError> {
    // Dirty buffers: decode_into must clear them.
    let mut ts = vec![1, 2, 3];
    let mut vals = vec![4.0];
    let res = decode_into(data, &mut ts, &mut vals);
    assert_eq!(ts.len(), vals.len());
    if res.is_err() {
        assert!(ts.is_empty());
    }
    res.map(|()| {
        ts.iter()
            .zip(&vals)
            .map(|(&t, v)| (t, v.to_bits()))
            .collect()
    })
}

/// Encodes with `encode_best` after a prefix already in the buffer, checks the prefix is kept,
/// the round trip is exact and the choice is no larger than any encoding that applies.
fn assert_best(samples: &[(i64, f64)]) -> (Encoding, usize) {
    let mut buf = vec![0xee, 0xff];
    let enc = encode_best(samples, &mut buf);
    assert_eq!(&buf[..2], &[0xee, 0xff]);
    let chunk = &buf[2..];
    assert_eq!(chunk[0], enc.as_u8());
    assert_eq!(decode(chunk), Ok(as_bits(samples)), "{enc:?}");
    for other in ALL {
        let mut b = Vec::new();
        if encode_as(other, samples, &mut b).is_some() {
            assert!(
                chunk.len() <= b.len(),
                "{enc:?} {} > {other:?} {}",
                chunk.len(),
                b.len()
            );
            assert_eq!(decode(&b), Ok(as_bits(samples)), "{other:?}");
        } else {
            assert!(b.is_empty(), "a declined encode leaves dst alone");
        }
    }
    (enc, chunk.len())
}

fn regular(values: &[f64]) -> Vec<(i64, f64)> {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| (1_700_000_000_000 + 15_000 * i as i64, v))
        .collect()
}

#[test]
fn empty_and_single_samples() {
    assert_best(&[]);
    for v in [
        0.0,
        -0.0,
        1.0,
        f64::from_bits(STALE_NAN),
        f64::INFINITY,
        1e300,
        5e-324,
    ] {
        for t in [i64::MIN, -1, 0, 1_700_000_000_000, i64::MAX] {
            assert_best(&[(t, v)]);
        }
    }
}

#[test]
fn picks_the_expected_encoding() {
    let cpu: Vec<f64> = (0..120)
        .map(|i| (123_456 + 1_473 * i) as f64 / 100.0)
        .collect();
    assert_eq!(assert_best(&regular(&cpu)).0, Encoding::Decimal);
    assert_eq!(assert_best(&regular(&[42.5; 120])).0, Encoding::Constant);
    let mut stale = cpu.clone();
    stale[119] = f64::from_bits(STALE_NAN);
    stale[0] = -0.0;
    assert_eq!(assert_best(&regular(&stale)).0, Encoding::Decimal);
    let random: Vec<f64> = (0..120u64)
        .map(|i| f64::from_bits(i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 2))
        .collect();
    assert_eq!(assert_best(&regular(&random)).0, Encoding::Xor);
    let mut b = Vec::new();
    assert_eq!(
        encode_as(Encoding::Decimal, &regular(&random), &mut b),
        None
    );
    assert_eq!(encode_as(Encoding::Constant, &regular(&cpu), &mut b), None);
}

#[test]
fn decimal_values_are_exact_at_their_scale() {
    for (v, e, m) in [
        (12345.67, -2, 1_234_567),
        (0.1, -1, 1),
        (0.29, -2, 29),
        (-7.0, 0, -7),
        (1e-22, -22, 1),
    ] {
        assert_eq!(decimal::fit(v, e), Some(m), "{v}");
        assert_eq!(decimal::to_float(m, e).to_bits(), v.to_bits());
    }
    assert_eq!(decimal::fit(0.1 + 0.2, -1), None);
    assert_eq!(decimal::fit(-0.0, 0), None);
    assert_eq!(decimal::fit(f64::NAN, 0), None);
    assert_eq!(decimal::fit(2f64.powi(53), 0), None);
    assert_eq!(decimal::min_scale(12345.6, 0), Some(1));
    assert_eq!(decimal::min_scale(f64::INFINITY, 0), None);
}

#[test]
fn rejects_bad_input_without_panicking() {
    let s = regular(&[1.5, 2.5, 3.5, 4.5]);
    let mut b = Vec::new();
    encode_as(Encoding::Decimal, &s, &mut b).unwrap();
    assert_eq!(decode(&[]), Err(ChunkError::MissingHeader { len: 0 }));
    assert!(matches!(
        decode(&[0]),
        Err(ChunkError::Corrupt { offset: 0, .. })
    ));
    assert!(matches!(decode(&[9, 0]), Err(ChunkError::Corrupt { .. })));
    let mut trailing = b.clone();
    trailing.push(0);
    assert!(matches!(
        decode(&trailing),
        Err(ChunkError::Corrupt {
            detail: "trailing bytes after the chunk",
            ..
        })
    ));
    assert!(matches!(
        decode(&b[..b.len() - 1]),
        Err(ChunkError::Truncated { declared: 4, .. })
    ));
    // A count over 65535.
    assert!(matches!(
        decode(&[2, 0x80, 0x80, 4]),
        Err(ChunkError::Corrupt { .. })
    ));
    // encode_as refuses what encode_best would call a bug.
    assert_eq!(
        encode_as(Encoding::Xor, &[(2, 0.0), (2, 0.0)], &mut b),
        None
    );
}

#[test]
#[should_panic(expected = "BUG:")]
fn encode_best_panics_on_unordered_samples() {
    encode_best(&[(2, 0.0), (1, 0.0)], &mut Vec::new());
}

// ---------------------------------------------------------------------------------------------
// Size on node-exporter-like data: the generators of `benches/chunk.rs`.

#[path = "../../../benches/common/datagen.rs"]
mod datagen;
use datagen::{rng_for, series, Kind, KINDS};

/// Bytes per sample of XOR and of `encode_best` over 100 chunks of 120 samples.
fn sizes(kind: Kind, jitter: bool) -> (f64, f64) {
    let mut rng = rng_for(kind);
    let (mut xor, mut best, mut n) = (0usize, 0usize, 0usize);
    let mut enc = BlockEncoder::new();
    let mut buf = Vec::new();
    for _ in 0..100 {
        let s = series(kind, &mut rng, jitter, 120);
        buf.clear();
        enc.encode_as(Encoding::Xor, &s, &mut buf).unwrap();
        xor += buf.len();
        buf.clear();
        enc.encode_best(&s, &mut buf);
        assert_eq!(decode(&buf), Ok(as_bits(&s)));
        best += buf.len();
        n += s.len();
    }
    (xor as f64 / n as f64, best as f64 / n as f64)
}

#[test]
fn size_on_node_exporter_like_data() {
    let mut results = Vec::new();
    for jitter in [true, false] {
        for kind in KINDS {
            let (xor, best) = sizes(kind, jitter);
            let timing = if jitter { "15 s ± 3 ms" } else { "exact 15 s" };
            eprintln!("{kind:?} at {timing}: xor {xor:.3} bytes/sample, best {best:.3}");
            results.push((kind, jitter, timing, xor, best));
        }
    }
    for (kind, jitter, timing, xor, best) in results {
        {
            assert!(best <= xor);
            let limit = match (kind, jitter) {
                (Kind::CounterFloat, true) => 2.1,
                (Kind::CounterFloat, false) => 1.7,
                (Kind::CounterInt, true) => 3.4,
                (Kind::CounterInt, false) => 3.0,
                (Kind::Gauge, true) => 2.3,
                (Kind::Gauge, false) => 1.9,
                (Kind::Constant, true) => 0.6,
                (Kind::Constant, false) => 0.15,
            };
            assert!(best < limit, "{kind:?} {timing}: {best:.3} >= {limit}");
        }
    }
    // The common `up` / `*_info` series: value 1 at an exact interval.
    let (_, len) = assert_best(&regular(&[1.0; 120]));
    eprintln!("constant 1.0 at exact 15 s: {len} bytes for 120 samples");
    assert!(len <= 13);
}

// ---------------------------------------------------------------------------------------------
// Property tests.

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        3 => any::<u64>().prop_map(f64::from_bits),
        1 => Just(f64::from_bits(STALE_NAN)),
        2 => proptest::sample::select(vec![
            0.0, -0.0, 1.0, -1.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, f64::MIN,
            f64::MAX, f64::MIN_POSITIVE, f64::EPSILON, 1e22, 1e-22, 9007199254740991.0,
            9007199254740992.0, 0.1 + 0.2,
        ]),
        2 => (any::<bool>(), 1u64..1 << 52).prop_map(|(neg, payload)| {
            f64::from_bits(u64::from(neg) << 63 | 0x7ff0_0000_0000_0000 | payload)
        }),
        1 => (any::<bool>(), 1u64..1 << 52)
            .prop_map(|(neg, m)| f64::from_bits(u64::from(neg) << 63 | m)),
        1 => (prop_oneof![1u64..8, 2040u64..2047], any::<u64>(), any::<bool>()).prop_map(
            |(e, m, neg)| f64::from_bits(u64::from(neg) << 63 | e << 52 | m >> 12)
        ),
        3 => (0u32..10_000_000, 0usize..6).prop_map(|(n, k)| f64::from(n) / [1.0, 10.0, 100.0, 1e3, 1e6, 1e12][k]),
        2 => (-1_000_000i32..1_000_000).prop_map(f64::from),
    ]
}

/// Values shaped like metrics (counters, gauges, runs) with adversarial ones mixed in, so every
/// encoding and mantissa mode gets chosen.
fn values(n: usize) -> impl Strategy<Value = Vec<f64>> {
    let shape = 0u8..5;
    (shape, vec((0u8..8, value(), -2000i64..2000), n)).prop_map(|(shape, raw)| {
        let mut acc = 1_000_000i64;
        let mut prev = 0.0f64;
        raw.into_iter()
            .map(|(how, v, step)| {
                let v = match (shape, how) {
                    (0, _) => v,
                    (1, 0) | (2, 0) => v,
                    (1, _) => {
                        acc += step.abs();
                        acc as f64 / 100.0
                    }
                    (2, _) => {
                        acc += step * 4096;
                        acc as f64
                    }
                    (3, 0) => v,
                    (3, _) => prev,
                    _ => {
                        if how < 2 {
                            v
                        } else {
                            prev
                        }
                    }
                };
                prev = v;
                v
            })
            .collect()
    })
}

fn timestamps() -> impl Strategy<Value = Vec<i64>> {
    let start = prop_oneof![
        2 => any::<i64>(),
        3 => -10i64.pow(13)..10i64.pow(13),
        1 => Just(i64::MIN),
        1 => i64::MIN..i64::MIN + 1_000_000,
        1 => i64::MAX - 10_000_000..=i64::MAX,
    ];
    let delta = prop_oneof![
        8 => (-3i64..=3).prop_map(|j| (15_000 + j) as u64),
        2 => 1u64..=3,
        2 => 1u64..1 << 20,
        1 => 1u64..1 << 40,
        1 => 1u64..=u64::MAX,
        1 => Just(u64::MAX),
    ];
    let regular = any::<bool>();
    (start, vec(delta, 0..250), regular).prop_map(|(start, deltas, regular)| {
        let mut t = start;
        let mut out = vec![t];
        for (i, mut d) in deltas.iter().copied().enumerate() {
            if regular {
                d = deltas[0];
            }
            if i % 50 == 49 && !regular {
                d = d.saturating_mul(7);
            }
            if let Some(next) = t.checked_add_unsigned(d) {
                t = next;
                out.push(t);
            }
        }
        out
    })
}

fn samples() -> impl Strategy<Value = Vec<(i64, f64)>> {
    timestamps().prop_flat_map(|ts| {
        let n = ts.len();
        values(n).prop_map(move |vs| ts.iter().copied().zip(vs).collect())
    })
}

/// Any bytes: decoding returns, and what it returns is a valid chunk's content.
fn check_decode(bytes: &[u8]) {
    if let Ok(got) = decode(bytes) {
        assert!(got.len() <= MAX_SAMPLES);
        assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
    }
}

proptest! {
    #[test]
    fn prop_encode_best_roundtrips_bit_exact(samples in samples()) {
        assert_best(&samples);
    }

    #[test]
    fn prop_encode_as_is_exact_or_declines(samples in samples()) {
        for enc in ALL {
            let mut b = vec![7];
            match encode_as(enc, &samples, &mut b) {
                Some(()) => {
                    prop_assert_eq!(b[1], enc.as_u8());
                    prop_assert_eq!(decode(&b[1..]), Ok(as_bits(&samples)));
                }
                None => prop_assert_eq!(b, vec![7]),
            }
        }
    }

    #[test]
    fn prop_constant_and_decimal_always_apply_where_they_should(
        ts in timestamps(),
        v in value(),
        cents in vec(0i64..1_000_000_000, 250),
    ) {
        let s: Vec<(i64, f64)> = ts.iter().map(|&t| (t, v)).collect();
        let mut b = Vec::new();
        prop_assert!(encode_as(Encoding::Constant, &s, &mut b).is_some());
        prop_assert_eq!(decode(&b), Ok(as_bits(&s)));
        let s: Vec<(i64, f64)> = ts.iter().zip(&cents).map(|(&t, &c)| (t, c as f64 / 100.0)).collect();
        b.clear();
        prop_assert!(encode_as(Encoding::Decimal, &s, &mut b).is_some());
        prop_assert_eq!(decode(&b), Ok(as_bits(&s)));
    }

    #[test]
    fn prop_every_truncation_and_bit_flip_is_safe(samples in samples(), flips in vec((any::<prop::sample::Index>(), 0u32..8), 1..4)) {
        for enc in ALL {
            let mut b = Vec::new();
            if encode_as(enc, &samples, &mut b).is_none() {
                continue;
            }
            // Every strict prefix of a columnar chunk is rejected; XOR's zero padding may decode
            // as extra samples only if the count is wrong, which a prefix cannot make it.
            for cut in 0..b.len() {
                prop_assert!(decode(&b[..cut]).is_err(), "{:?} cut at {} of {}", enc, cut, b.len());
            }
            let mut m = b.clone();
            for (ix, bit) in &flips {
                let i = ix.index(m.len());
                m[i] ^= 1 << bit;
            }
            check_decode(&m);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn prop_decode_arbitrary_bytes_never_panics(bytes in vec(any::<u8>(), 0..400)) {
        check_decode(&bytes);
    }

    #[test]
    fn prop_decode_plausible_headers_never_panics(
        enc in 1u8..=4,
        n in 0u8..40,
        mode in 0u8..4,
        body in vec(any::<u8>(), 0..300),
    ) {
        let mut bytes = vec![enc, n, mode];
        bytes.extend_from_slice(&body);
        check_decode(&bytes);
    }
}

/// A resolver over a list of chunks, referenced by position.
fn resolving(data: &[u8], chunks: &[Vec<u8>]) -> Result<Vec<(i64, u64)>, ChunkError> {
    let (mut ts, mut vals) = (vec![9], vec![9.0]);
    let res = decode_into_resolving(data, &mut ts, &mut vals, &mut |r| {
        chunks.get(usize::try_from(r).ok()?).map(Vec::as_slice)
    });
    if res.is_err() {
        assert!(ts.is_empty() && vals.is_empty());
    }
    res.map(|()| {
        ts.iter()
            .zip(&vals)
            .map(|(&t, v)| (t, v.to_bits()))
            .collect()
    })
}

fn corrupt_detail(r: Result<Vec<(i64, u64)>, ChunkError>) -> &'static str {
    match r {
        Err(ChunkError::Corrupt { detail, .. }) => detail,
        other => panic!("want a corrupt-chunk error, got {other:?}"),
    }
}

#[test]
fn shared_timestamp_columns() {
    // Two series scraped together: same jittered timestamps, different values.
    let ts: Vec<i64> = (0..200)
        .map(|i| 1_700_000_000_000 + i * 15_000 + i * 7 % 5)
        .collect();
    let a: Vec<(i64, f64)> = ts.iter().map(|&t| (t, (t % 1000) as f64 / 100.0)).collect();
    let b: Vec<(i64, f64)> = ts.iter().enumerate().map(|(i, &t)| (t, i as f64)).collect();
    let (mut ca, mut cb) = (Vec::new(), Vec::new());
    assert_eq!(encode_best(&a, &mut ca), Encoding::Decimal);
    encode_best(&b, &mut cb);
    let mut scratch = Vec::new();
    let col_a = timestamp_column(&ca, &mut scratch).unwrap();
    let col_b = timestamp_column(&cb, &mut scratch).unwrap();
    // Identical timestamps give identical count + column bytes: the writer's lookup key.
    assert_eq!(ca[1..col_a.end], cb[1..col_b.end]);
    assert!(!has_shared_timestamps(&cb));

    let mut shared = Vec::new();
    share_timestamps(&cb, col_b.clone(), 0, &mut shared);
    assert!(has_shared_timestamps(&shared));
    assert!(
        shared.len() + (col_b.end - col_b.start) - 2 == cb.len(),
        "column replaced by 2 bytes"
    );
    assert_eq!(timestamp_column(&shared, &mut scratch), None);
    let chunks = vec![ca.clone(), shared.clone()];
    assert_eq!(resolving(&shared, &chunks), Ok(as_bits(&b)));
    assert_eq!(resolving(&ca, &chunks), Ok(as_bits(&a)));

    // Without its block a shared chunk cannot be decoded.
    assert_eq!(
        corrupt_detail(decode(&shared)),
        "shared timestamp column refers to no chunk of the block"
    );
    // A reference to a missing chunk, to a shared column (no chains: no cycles), to an XOR
    // chunk, to a chunk with another count, to garbage.
    let to = |target: u64| {
        let mut s = Vec::new();
        share_timestamps(&cb, col_b.clone(), target, &mut s);
        s
    };
    assert_eq!(
        corrupt_detail(resolving(&to(7), &chunks)),
        "shared timestamp column refers to no chunk of the block"
    );
    assert_eq!(
        corrupt_detail(resolving(&to(1), &chunks)),
        "shared timestamp column refers to a shared column"
    );
    let mut xor = Vec::new();
    assert!(encode_as(Encoding::Xor, &a, &mut xor).is_some());
    let mut fewer = Vec::new();
    encode_best(&a[..199], &mut fewer);
    let mut broken = ca.clone();
    broken.truncate(col_a.start + 3);
    let others = vec![xor, fewer, broken, Vec::new()];
    assert_eq!(
        corrupt_detail(resolving(&to(0), &others)),
        "shared timestamp column refers to a chunk without one"
    );
    assert_eq!(
        corrupt_detail(resolving(&to(1), &others)),
        "shared timestamp column has a different sample count"
    );
    assert_eq!(
        corrupt_detail(resolving(&to(2), &others)),
        "shared timestamp column refers to a corrupt column"
    );
    assert_eq!(
        corrupt_detail(resolving(&to(3), &others)),
        "shared timestamp column refers to a chunk without one"
    );
    // A truncated shared chunk is rejected like any other.
    for cut in 0..shared.len() {
        assert!(resolving(&shared[..cut], &chunks).is_err(), "cut at {cut}");
    }
    // XOR and constant-free edge cases have no column to share.
    let mut x = Vec::new();
    assert!(encode_as(Encoding::Xor, &b, &mut x).is_some());
    assert_eq!(timestamp_column(&x, &mut scratch), None);
    assert_eq!(timestamp_column(&[], &mut scratch), None);
}

proptest! {
    #[test]
    fn prop_shared_columns_round_trip(
        (ts, v1, v2) in timestamps().prop_flat_map(|ts| { let n = ts.len(); (Just(ts), values(n), values(n)) })
    ) {
        let a: Vec<(i64, f64)> = ts.iter().copied().zip(v1).collect();
        let b: Vec<(i64, f64)> = ts.iter().copied().zip(v2).collect();
        let (mut ca, mut cb) = (Vec::new(), Vec::new());
        encode_best(&a, &mut ca);
        encode_best(&b, &mut cb);
        let mut scratch = Vec::new();
        if let (Some(col_a), Some(col_b)) = (timestamp_column(&ca, &mut scratch), timestamp_column(&cb, &mut scratch)) {
            prop_assert_eq!(&ca[1..col_a.end], &cb[1..col_b.end]);
            let mut shared = Vec::new();
            share_timestamps(&cb, col_b, 0, &mut shared);
            prop_assert_eq!(resolving(&shared, &[ca]), Ok(as_bits(&b)));
        }
    }
}
