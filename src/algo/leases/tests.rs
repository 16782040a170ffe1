//! Leases against a reference model written from the definition (a set of leases with ends),
//! and properties: replay reproduces the master, encoding round-trips, ids stay unique, clock
//! steps cost at most one lease, decoding survives damage.

use std::collections::BTreeMap;

use super::reference::{Model, ModelGrant};
use super::*;
use crate::algo::kind::Kind;

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.range(0, items.len() as u64 - 1) as usize].clone()
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.range(1, 100) <= percent
    }
}

const BASE: u64 = 1_700_000_000_000_000;

fn held_of(l: Option<&Limiter>, t: u64) -> BTreeMap<Vec<u8>, u64> {
    let Some(l) = l else {
        return BTreeMap::new();
    };
    let State::Leases(s) = &l.state else {
        panic!("not leases: {l:?}")
    };
    s.leases()
        .filter(|x| x.end_us > t)
        .map(|x| (x.id.to_bytes(), x.end_us.min(t + s.longest_us())))
        .collect()
}

/// Applies an outcome to the stored key as the glue does.
fn store(key: &mut Option<Limiter>, outcome: Outcome) {
    match outcome {
        Outcome::Created(l) => *key = Some(l),
        Outcome::Emptied => *key = None,
        Outcome::Updated | Outcome::Unchanged => {}
    }
}

/// Checks everything that must hold after each call: the key is valid, round-trips through the
/// codec, expires with its last lease, and equals what replaying the effects made.
fn check_key(key: &Option<Limiter>, replica: &Option<Limiter>, t: u64) {
    assert_eq!(key, replica, "replica differs at {t}");
    if let Some(l) = key {
        assert!(l.is_valid(), "{l:?}");
        let bytes = crate::datatype::codec::encode(l);
        assert_eq!(crate::datatype::codec::decode(&bytes).as_ref(), Some(l));
    }
}

fn random_id(rng: &mut Rng) -> Vec<u8> {
    match rng.range(0, 9) {
        0..=4 => rng
            .pick(&[&b"a"[..], b"b", b"c", b"worker-7", b"d"])
            .to_vec(),
        5 => rng
            .pick(&[&b"7"[..], b"0", b"007", b"18446744073709551615"])
            .to_vec(),
        // Numbers near the server's: they collide with the ids it makes.
        6..=7 => (BASE + rng.range(0, 3_000)).to_string().into_bytes(),
        _ => vec![b'x'; rng.range(1, MAX_ID_LEN as u64) as usize],
    }
}

/// How often each case came up (so the test shows it covers them).
#[derive(Default, Debug)]
struct Seen {
    granted: u64,
    renewed: u64,
    denied: u64,
    clamped: u64,
    released: u64,
    emptied: u64,
}

/// One random sequence on one key against the model.
fn compare(seed: u64, steps: usize, seen: &mut Seen) {
    let mut rng = Rng(seed);
    let mut model = Model::default();
    let mut key: Option<Limiter> = None;
    let mut replica: Option<Limiter> = None;
    let mut t = BASE;
    let mut limit = rng.range(1, 5);
    let leases = [1u64, 2, 10, 100, 1_000, 5_000];
    for step in 0..steps {
        t = match rng.range(0, 19) {
            0 => t.saturating_sub(rng.range(1, 2_000)), // a clock step back
            1 => t + rng.range(1_000, 20_000),
            2..=4 => t, // the same µs
            _ => t + rng.range(1, 300),
        };
        if rng.chance(5) {
            limit = rng.range(1, 6);
        }
        if model.read(t).is_empty() && rng.chance(50) {
            // The server's expiry removes a key whose last lease ended.
            (key, replica, model) = (None, None, Model::default());
        }
        let lease = rng.pick(&leases);
        if rng.chance(25) {
            let id = random_id(&mut rng);
            let lid = LeaseId::parse(&id).unwrap();
            let want = model.release(&id, t);
            let r = release(key.as_mut(), &lid, t).unwrap();
            assert_eq!(r.released, want, "seed {seed} step {step}: release");
            seen.released += u64::from(want);
            seen.emptied += u64::from(r.outcome == Outcome::Emptied);
            assert_eq!(r.effect.is_some(), want);
            if let Some(e) = &r.effect {
                let (decoded, _) = decode_effect(encode_effect(e, 0).as_slice()).unwrap();
                assert_eq!(&decoded, e);
                let outcome = replay(replica.as_mut(), &decoded).unwrap();
                store(&mut replica, outcome);
            }
            let outcome = r.outcome;
            store(&mut key, outcome);
        } else {
            let id = rng.chance(60).then(|| random_id(&mut rng));
            let req = Acquire::new(
                limit,
                lease,
                id.as_deref().map(|i| LeaseId::parse(i).unwrap()),
            )
            .unwrap();
            let renewal = id.as_deref().is_some_and(|i| model.read(t).contains_key(i));
            let want = model.acquire(limit, lease, id.as_deref(), t);
            seen.renewed += u64::from(renewal);
            seen.granted += u64::from(want.allowed);
            seen.denied += u64::from(!want.allowed);
            let v = acquire(key.as_mut(), &req, t).unwrap();
            let got = ModelGrant {
                allowed: v.grant.allowed,
                id: v.grant.id.as_ref().map(LeaseId::to_bytes),
                in_flight: v.grant.in_flight,
                retry: v.grant.retry_after_us,
                reset: v.grant.reset_after_us,
            };
            assert_eq!(got, want, "seed {seed} step {step} at {t}: {req:?}");
            seen.clamped += u64::from(v.clamped);
            if let Some(e) = &v.effect {
                let (decoded, _) = decode_effect(encode_effect(e, 0).as_slice()).unwrap();
                assert_eq!(&decoded, e);
                let outcome = replay(replica.as_mut(), &decoded).unwrap();
                store(&mut replica, outcome);
            }
            let outcome = v.outcome;
            store(&mut key, outcome);
        }
        assert_eq!(
            held_of(key.as_ref(), t),
            model.read(t),
            "seed {seed} step {step}"
        );
        check_key(&key, &replica, t);
        if let Some(l) = &key {
            // The key lives exactly as long as its last lease (after a write, > now).
            let last = model.ends.values().max().copied().unwrap_or(0);
            assert_eq!(l.expires_at_us(), last, "seed {seed} step {step}");
        }
    }
}

#[test]
fn matches_the_reference_model() {
    let mut seen = Seen::default();
    for seed in 0..300 {
        compare(seed, 400, &mut seen);
    }
    eprintln!("{seen:?}");
    for (case, n) in [
        ("granted", seen.granted),
        ("renewed", seen.renewed),
        ("denied", seen.denied),
        ("clamped", seen.clamped),
        ("released", seen.released),
        ("emptied", seen.emptied),
    ] {
        assert!(n >= 100, "{case} only {n} times");
    }
}

#[test]
fn never_more_than_limit_are_held() {
    let mut rng = Rng(77);
    for _ in 0..200 {
        let limit = rng.range(1, 20);
        let mut key = None;
        let mut t = BASE;
        for _ in 0..500 {
            t += rng.range(0, 50);
            let req = Acquire::new(limit, rng.range(1, 2_000), None).unwrap();
            let v = acquire(key.as_mut(), &req, t).unwrap();
            let outcome = v.outcome;
            store(&mut key, outcome);
            if rng.chance(30) {
                let held: Vec<LeaseId> = match &key {
                    Some(Limiter {
                        state: State::Leases(s),
                        ..
                    }) => s.leases().map(|l| l.id.clone()).collect(),
                    _ => vec![],
                };
                if !held.is_empty() {
                    let id = rng.pick(&held);
                    let outcome = release(key.as_mut(), &id, t).unwrap().outcome;
                    store(&mut key, outcome);
                }
            }
            let held = match &key {
                Some(Limiter {
                    state: State::Leases(s),
                    ..
                }) => s.held(t),
                _ => 0,
            };
            assert!(held <= limit, "{held} held, limit {limit}");
            assert!(v.grant.in_flight <= limit);
        }
    }
}

#[test]
fn retry_after_is_exact() {
    let mut rng = Rng(5);
    for _ in 0..300 {
        let limit = rng.range(1, 8);
        let mut key = None;
        let mut t = BASE;
        // Fill it (and sometimes more, then lower the limit).
        let fill = limit + rng.range(0, 3);
        for _ in 0..fill {
            t += rng.range(0, 100);
            let req = Acquire::new(fill, rng.range(1, 5_000), None).unwrap();
            let outcome = acquire(key.as_mut(), &req, t).unwrap().outcome;
            store(&mut key, outcome);
        }
        t += rng.range(0, 100);
        let req = Acquire::new(limit, 1_000, None).unwrap();
        let snapshot = key.clone();
        let v = acquire(key.as_mut(), &req, t).unwrap();
        if v.grant.allowed {
            continue; // some ended already
        }
        assert_eq!(key, snapshot, "a denial writes nothing here");
        let retry = v.grant.retry_after_us;
        assert!(retry >= 1);
        let mut before = snapshot.clone();
        assert!(
            !acquire(before.as_mut(), &req, t + retry - 1)
                .unwrap()
                .grant
                .allowed
        );
        let mut at = snapshot.clone();
        assert!(acquire(at.as_mut(), &req, t + retry).unwrap().grant.allowed);
    }
}

#[test]
fn an_ended_key_is_as_absent() {
    let req = Acquire::new(3, 1_000, None).unwrap();
    let mut key = None;
    for i in 0..3 {
        let outcome = acquire(key.as_mut(), &req, BASE + i).unwrap().outcome;
        store(&mut key, outcome);
    }
    let end = key.as_ref().unwrap().expires_at_us();
    assert_eq!(end, BASE + 2 + 1_000);
    let late = acquire(key.clone().as_mut(), &req, end).unwrap().grant;
    let fresh = acquire(None, &req, end).unwrap().grant;
    assert_eq!(late, fresh);
    assert_eq!((late.in_flight, late.reset_after_us), (1, 1_000));
}

#[test]
fn renewal_moves_the_end_and_takes_no_second_slot() {
    let a = LeaseId::parse(b"a").unwrap();
    let req = |lease| Acquire::new(1, lease, Some(a.clone())).unwrap();
    let v = acquire(None, &req(1_000), BASE).unwrap();
    let Outcome::Created(mut key) = v.outcome else {
        panic!()
    };
    // Full for others, renewable for a: later, then earlier.
    assert!(
        !acquire(
            Some(&mut key),
            &Acquire::new(1, 1_000, None).unwrap(),
            BASE + 1
        )
        .unwrap()
        .grant
        .allowed
    );
    let v = acquire(Some(&mut key), &req(5_000), BASE + 10).unwrap();
    assert_eq!((v.grant.in_flight, v.grant.reset_after_us), (1, 5_000));
    let v = acquire(Some(&mut key), &req(100), BASE + 20).unwrap();
    assert_eq!(v.grant.reset_after_us, 100);
    assert_eq!(key.expires_at_us(), BASE + 120);
    // After it ended, a's acquire is a new lease (still admitted: nothing else is held).
    let v = acquire(Some(&mut key), &req(100), BASE + 120).unwrap();
    assert!(v.grant.allowed);
}

#[test]
fn release_is_idempotent_and_the_last_one_empties_the_key() {
    let a = LeaseId::parse(b"a").unwrap();
    let b = LeaseId::parse(b"b").unwrap();
    let mut key = None;
    for id in [&a, &b] {
        let req = Acquire::new(2, 1_000, Some(id.clone())).unwrap();
        let outcome = acquire(key.as_mut(), &req, BASE).unwrap().outcome;
        store(&mut key, outcome);
    }
    let r = release(key.as_mut(), &a, BASE + 1).unwrap();
    assert!(r.released && r.outcome == Outcome::Updated);
    let r = release(key.as_mut(), &a, BASE + 2).unwrap();
    assert!(!r.released && r.outcome == Outcome::Unchanged && r.effect.is_none());
    // b ended at BASE + 1000: releasing it then frees nothing (it freed itself).
    let r = release(key.as_mut(), &b, BASE + 1_000).unwrap();
    assert!(!r.released);
    let r = release(key.as_mut(), &b, BASE + 999).unwrap();
    assert_eq!(r.outcome, Outcome::Emptied);
    assert!(release(None, &b, BASE).unwrap().outcome == Outcome::Unchanged);
}

#[test]
fn server_ids_are_unique_and_increasing() {
    // Callers holding the numbers the server would pick next are skipped.
    let mut key = None;
    let t = BASE;
    for n in [t, t + 1, t + 3] {
        let req = Acquire::new(100, 1_000_000, LeaseId::parse(n.to_string().as_bytes())).unwrap();
        let outcome = acquire(key.as_mut(), &req, t).unwrap().outcome;
        store(&mut key, outcome);
    }
    let req = Acquire::new(100, 1_000_000, None).unwrap();
    let mut ids = Vec::new();
    for _ in 0..4 {
        let v = acquire(key.as_mut(), &req, t).unwrap();
        ids.push(v.grant.id.unwrap());
    }
    let want: Vec<LeaseId> = [t + 2, t + 4, t + 5, t + 6]
        .into_iter()
        .map(LeaseId::Num)
        .collect();
    assert_eq!(ids, want);
    // The clock behind the last id: still increasing.
    let v = acquire(key.as_mut(), &req, t - 1_000).unwrap();
    assert_eq!(v.grant.id, Some(LeaseId::Num(t + 7)));
    // At the end of the numbers the server gives up cleanly.
    let s = LeasesState::from_parts(
        vec![Lease::new(t + 10, LeaseId::Num(u64::MAX))],
        10,
        u64::MAX - 1,
    )
    .unwrap();
    let rule = Acquire::new(2, 10, None).unwrap().rule;
    let mut l = Limiter {
        rule,
        state: State::Leases(s),
    };
    assert_eq!(
        acquire(Some(&mut l), &Acquire::new(2, 10, None).unwrap(), t),
        Err(LeaseError::NoId)
    );
}

#[test]
fn ids() {
    for (bytes, want) in [
        (&b"0"[..], Some(LeaseId::Num(0))),
        (b"18446744073709551615", Some(LeaseId::Num(u64::MAX))),
        (
            b"18446744073709551616",
            Some(LeaseId::Text(b"18446744073709551616".to_vec().into())),
        ),
        (b"01", Some(LeaseId::Text(b"01".to_vec().into()))),
        (b"-1", Some(LeaseId::Text(b"-1".to_vec().into()))),
        (b"", None),
    ] {
        assert_eq!(LeaseId::parse(bytes), want, "{bytes:?}");
        if let Some(id) = want {
            assert_eq!(id.to_bytes(), bytes);
        }
    }
    assert!(LeaseId::parse(&[7; MAX_ID_LEN]).is_some());
    assert!(LeaseId::parse(&[7; MAX_ID_LEN + 1]).is_none());
    for n in [0u64, 9, 10, 99, 100, 1_700_000_000_000_000, u64::MAX] {
        assert_eq!(LeaseId::Num(n).to_bytes(), n.to_string().into_bytes());
    }
}

/// A state ahead of the clock by a day costs at most the longest lease of waiting, and the
/// denial stores the clamp so that the key's TTL follows.
#[test]
fn a_clock_step_back_costs_at_most_one_lease() {
    const DAY: u64 = 86_400_000_000;
    let req = Acquire::new(2, 30_000_000, None).unwrap();
    let mut key = None;
    for _ in 0..2 {
        let outcome = acquire(key.as_mut(), &req, BASE + DAY).unwrap().outcome;
        store(&mut key, outcome);
    }
    let l = key.as_mut().unwrap();
    assert!(l.is_ahead(BASE));
    let v = acquire(Some(l), &req, BASE).unwrap();
    assert!(!v.grant.allowed && v.clamped);
    assert_eq!(v.effect, Some(Effect::Clamp { now_us: BASE }));
    assert_eq!(v.grant.retry_after_us, 30_000_000);
    assert_eq!(v.grant.reset_after_us, 30_000_000);
    assert_eq!(l.expires_at_us(), BASE + 30_000_000);
    assert!(!l.is_ahead(BASE));
    assert!(
        acquire(Some(l), &req, BASE + 30_000_000)
            .unwrap()
            .grant
            .allowed
    );
}

#[test]
fn replicated_effects_stay_small() {
    // However many leases the key holds, an effect is a few dozen bytes at most.
    let long = LeaseId::parse(&[b'z'; MAX_ID_LEN]).unwrap();
    let rule = Acquire::new(MAX_LEASES, MAX_WINDOW_US, None).unwrap().rule;
    let e = Effect::Acquire {
        now_us: MAX_TIMESTAMP_US,
        rule,
        id: long.clone(),
        server_made: false,
    };
    assert!(encode_effect(&e, FORMAT_MAX_LEASES as u64).as_slice().len() <= 160);
    let e = Effect::Release {
        now_us: BASE,
        id: LeaseId::Num(BASE),
    };
    assert!(encode_effect(&e, 1).as_slice().len() <= 24);
}

#[test]
/// Found by `scripts/fuzz` (decode_effect): a version-3 effect without its `stored` record was
/// read (as was one with the record twice, the second counting), so one effect had several
/// encodings. Now this version's payload is exactly what [`encode_effect`] writes.
fn effect_payloads_have_one_encoding() {
    let found = [
        3u8, 3, 6, 2, 131, 128, 249, 192, 193, 196, 130, 3, 0, 130, 1,
    ];
    assert_eq!(decode_effect(&found), None);
    let e = Effect::Release {
        now_us: BASE,
        id: LeaseId::Num(130),
    };
    let good = encode_effect(&e, 2).as_slice().to_vec();
    assert_eq!(decode_effect(&good), Some((e.clone(), Some(2))));
    // Without the record, with it twice, or out of order behind an unknown one (later version).
    let header_len = good.len() - 3;
    assert_eq!(decode_effect(&good[..header_len]), None);
    let mut twice = good.clone();
    twice.extend_from_slice(&[2, 1, 5]);
    assert_eq!(decode_effect(&twice), None);
    let mut later = good[..header_len].to_vec();
    later[0] = 4;
    later.extend_from_slice(&[9, 1, 0xaa, 2, 1, 2]);
    assert_eq!(decode_effect(&later), None);
    // A later version may leave the record out.
    let mut later = good[..header_len].to_vec();
    later[0] = 4;
    assert_eq!(decode_effect(&later), Some((e, None)));
}

#[test]
fn effect_payloads_are_strict_and_forward_compatible() {
    let rule = Acquire::new(10, 30_000_000, None).unwrap().rule;
    let effects = [
        Effect::Acquire {
            now_us: BASE,
            rule,
            id: LeaseId::parse(b"job-1").unwrap(),
            server_made: false,
        },
        Effect::Acquire {
            now_us: BASE,
            rule,
            id: LeaseId::Num(BASE),
            server_made: true,
        },
        Effect::Release {
            now_us: BASE,
            id: LeaseId::Num(3),
        },
        Effect::Clamp { now_us: BASE },
    ];
    for e in &effects {
        let good = encode_effect(e, 4).as_slice().to_vec();
        assert!(is_effect(&good));
        assert_eq!(decode_effect(&good), Some((e.clone(), Some(4))));
        for n in 0..good.len() {
            assert_ne!(
                decode_effect(&good[..n]),
                Some((e.clone(), Some(4))),
                "truncated to {n}"
            );
        }
        // A later version this one may read, with a record it does not know.
        let mut later = good.clone();
        later[0] = 4;
        later.extend_from_slice(&[9, 1, 0xaa]);
        assert_eq!(decode_effect(&later), Some((e.clone(), Some(4))));
        later[1] = 4; // needs a version-4 reader
        assert_eq!(decode_effect(&later), None);
        // This version must not carry unknown records.
        let mut extra = good.clone();
        extra.extend_from_slice(&[9, 1, 0xaa]);
        assert_eq!(decode_effect(&extra), None);
        // Every byte changed: refused, or a valid effect.
        for i in 0..good.len() {
            for b in 0..=255u8 {
                let mut v = good.clone();
                v[i] = b;
                if let Some((Effect::Acquire { id, .. } | Effect::Release { id, .. }, _)) =
                    decode_effect(&v)
                {
                    assert!(id.is_valid());
                }
            }
        }
    }
}

fn sample_states() -> Vec<Limiter> {
    let rule = Acquire::new(5, 30_000_000, None).unwrap().rule;
    let l = |leases: Vec<(u64, &[u8])>, last_id| Limiter {
        rule,
        state: State::Leases(
            LeasesState::from_parts(
                leases
                    .into_iter()
                    .map(|(end_us, id)| Lease::new(end_us, LeaseId::parse(id).unwrap()))
                    .collect(),
                60_000_000,
                last_id,
            )
            .unwrap(),
        ),
    };
    vec![
        l(vec![(BASE, b"1")], 0),
        l(
            vec![
                (BASE, b"b"),
                (BASE, b"c"),
                (BASE + 5, b"1700000000000000"),
                (BASE + 9, b"007"),
            ],
            BASE,
        ),
    ]
}

/// Found by `scripts/fuzz` (decode): a lease key's payload grew its vector by doubling, holding
/// up to 24 bytes per payload byte at once. Now it reserves once: the declared count when the
/// bytes can hold it, never more than the bytes left allow.
#[test]
fn decoding_reserves_once_and_within_the_payload() {
    use crate::datatype::codec::{decode, encode};
    for l in sample_states() {
        let State::Leases(s) = &decode(&encode(&l)).unwrap().state else {
            panic!()
        };
        assert!(s
            .0
            .chunks
            .iter()
            .all(|c| c.leases.capacity() == c.len() && c.prints.capacity() == c.len()));
        assert_eq!(s.0.chunks.capacity(), s.0.chunks.len());
    }
    // A count of a million in front of two leases' bytes: reserves at most what they allow.
    let mut r = crate::varint::Reader::new(&[0, 0, 0xc0, 0x84, 0x3d, 1, 0, 1, 1, 0, 2]);
    assert_eq!(
        <LeasesState as crate::algo::kind::Kind>::decode(&mut r, &sample_states()[0].rule),
        None
    );
    let bytes = [9u8; 30];
    let mut r = crate::varint::Reader::new(&bytes);
    r.take(20).unwrap();
    assert_eq!(r.remaining(), 10);
}

#[test]
fn decoding_is_strict() {
    use crate::datatype::codec::{decode, encode};
    for l in sample_states() {
        let good = encode(&l);
        assert_eq!(decode(&good), Some(l.clone()));
        for n in 0..good.len() {
            assert_eq!(decode(&good[..n]), None, "truncated to {n}");
        }
        for i in 0..good.len() {
            for b in 0..=255u8 {
                let mut v = good.clone();
                v[i] = b;
                if let Some(d) = decode(&v) {
                    assert!(d.is_valid());
                    if v[0] == crate::datatype::codec::PAYLOAD_VERSION {
                        assert_eq!(encode(&d), v, "decoding must be canonical");
                    }
                }
            }
        }
    }
    // Invariants decoding relies on.
    let lease = |end_us, id: &[u8]| Lease::new(end_us, LeaseId::parse(id).unwrap());
    let bad: Vec<(Vec<Lease>, u64)> = vec![
        (vec![], 10),                                  // empty
        (vec![lease(5, b"a"), lease(4, b"b")], 10),    // unsorted
        (vec![lease(5, b"a"), lease(6, b"a")], 10),    // duplicate id
        (vec![lease(5, b"b"), lease(5, b"a")], 10),    // ties out of id order
        (vec![lease(0, b"a")], 10),                    // end 0
        (vec![lease(MAX_TIMESTAMP_US + 1, b"a")], 10), // end too late
        (vec![lease(5, b"a")], 0),                     // no longest
        (vec![lease(5, b"a")], MAX_WINDOW_US + 1),     // longest too long
    ];
    for (leases, longest) in bad {
        assert!(LeasesState::from_parts(leases, longest, 0).is_none());
    }
    let text_digits = Lease::new(5, LeaseId::Text(b"12".to_vec().into()));
    assert!(LeasesState::from_parts(vec![text_digits], 10, 0).is_none());
    // A declared count reserves nothing: a payload claiming a million leases is just short.
    let mut v = vec![2, 2, Algorithm::Leases.tag(), 1, 1, 6];
    v.extend_from_slice(&[1, 0, 0xc0, 0x84, 0x3d]); // longest 1, last_id 0, n = 1,000,000
    assert_eq!(crate::datatype::codec::decode(&v), None);
}

#[test]
fn the_rule_s_lease_is_at_most_the_longest() {
    let mut l = sample_states().remove(0);
    l.rule = Acquire::new(5, 60_000_001, None).unwrap().rule;
    assert!(!l.is_valid());
}

#[test]
fn heap_blocks_and_relocation() {
    use std::alloc::{alloc, dealloc, Layout};
    use std::collections::HashMap;
    let mut l = sample_states().remove(1);
    let State::Leases(s) = &mut l.state else {
        panic!()
    };
    // The table, the chunk array, its one chunk's leases and prints, three text ids ("b",
    // "c", "007").
    assert_eq!(s.heap_blocks().count(), 7);
    let before = s.clone();
    // Nothing moves: nothing changes.
    unsafe { s.relocate(|_| std::ptr::null_mut()) };
    assert_eq!(*s, before);
    // Every block moves, as RM_DefragAlloc does: a copy in a new block, the old one freed.
    let mut layouts: HashMap<usize, Layout> = HashMap::new();
    let table: *const Table = &*s.0;
    layouts.insert(table as usize, Layout::new::<Table>());
    layouts.insert(
        s.0.chunks.as_ptr() as usize,
        Layout::array::<Chunk>(s.0.chunks.capacity()).unwrap(),
    );
    for c in &s.0.chunks {
        layouts.insert(
            c.leases.as_ptr() as usize,
            Layout::array::<Lease>(c.leases.capacity()).unwrap(),
        );
        layouts.insert(
            c.prints.as_ptr() as usize,
            Layout::array::<u32>(c.prints.capacity()).unwrap(),
        );
    }
    for x in s.0.iter() {
        if let LeaseId::Text(t) = &x.id {
            layouts.insert(t.as_ptr() as usize, Layout::array::<u8>(t.len()).unwrap());
        }
    }
    let mut moved = 0;
    unsafe {
        s.relocate(|p| {
            let layout = layouts[&(p as usize)];
            let new = alloc(layout);
            std::ptr::copy_nonoverlapping(p, new, layout.size());
            dealloc(p, layout);
            moved += 1;
            new
        })
    };
    assert_eq!(moved, 7);
    assert_eq!(*s, before);
    assert!(s.is_valid());
}

#[test]
fn kind_views() {
    let l = sample_states().remove(1);
    let State::Leases(s) = &l.state else { panic!() };
    // As a rate limiter would see it: capacity 5, 2 held at BASE + 1.
    let d = s.peek(&l.rule, &l.rule, 1, BASE + 1);
    assert_eq!((d.capacity, d.remaining, d.reset_after_us), (5, 3, 8));
    let mut out = Fields::new();
    LeasesState::inspect(Some(s), &l.rule, BASE + 1, &mut out);
    assert_eq!(
        out,
        [
            ("in_flight", 2),
            ("next_end_us", BASE + 5),
            ("last_end_us", BASE + 9),
            ("stored", 4),
            ("longest_us", 60_000_000),
            ("last_id", BASE),
        ]
    );
    let mut out = Fields::new();
    LeasesState::inspect(None, &l.rule, BASE, &mut out);
    assert!(out.iter().all(|(_, v)| *v == 0));
    assert!(s.carried_over(&l.rule, &l.rule, BASE + 9).is_none());
    assert_eq!(
        s.carried_over(&l.rule, &l.rule, BASE + 5).unwrap().stored(),
        1
    );
}

/// The table's shape: chunks of 1 to `CHUNK`, neighbours holding more than `CHUNK / 2`
/// together, so at most `4N / CHUNK + 1` chunks.
fn check_shape(s: &LeasesState) {
    let t = &s.0;
    assert!(t.chunks.iter().all(|c| (1..=CHUNK).contains(&c.len())));
    for w in t.chunks.windows(2) {
        assert!(
            w[0].len() + w[1].len() > CHUNK / 2,
            "{:?}",
            (w[0].len(), w[1].len())
        );
    }
    assert!(t.chunks.len() <= 4 * t.len() / CHUNK + 1);
}

/// Many leases on one key (thousands, ending in bursts) against the model: what is held,
/// every reply, expiry, replicas and the codec, with ended leases dropped lazily, at most
/// `DROP_PER_WRITE` per write.
#[test]
fn lazy_drop_matches_the_model_at_scale() {
    let mut seen = Seen::default();
    let mut lagged = 0;
    for seed in 0..12 {
        let mut rng = Rng(1_000 + seed);
        let mut model = Model::default();
        let (mut key, mut replica): (Option<Limiter>, Option<Limiter>) = (None, None);
        let mut t = BASE;
        let mut limit = rng.range(300, 3_000);
        let mut ids: Vec<Vec<u8>> = Vec::new();
        for step in 0..6_000 {
            t = match rng.range(0, 99) {
                0 => t + rng.range(1_000, 50_000), // most leases end at once
                1 => t.saturating_sub(rng.range(1, 3_000)),
                2..=30 => t,
                _ => t + rng.range(1, 20),
            };
            if rng.chance(1) {
                limit = rng.range(1, 3_000);
            }
            let stored_before = match &key {
                Some(Limiter {
                    state: State::Leases(s),
                    ..
                }) => s.stored(),
                _ => 0,
            };
            let effect = if rng.chance(20) && !ids.is_empty() {
                let id = rng.pick(&ids);
                let want = model.release(&id, t);
                let r = release(key.as_mut(), &LeaseId::parse(&id).unwrap(), t).unwrap();
                assert_eq!(r.released, want, "seed {seed} step {step}");
                seen.released += u64::from(want);
                store(&mut key, r.outcome);
                r.effect
            } else {
                let id = match rng.range(0, 9) {
                    0..=3 => None,
                    4..=6 => Some(format!("w{}", rng.range(0, 5_000)).into_bytes()),
                    _ => ids.last().cloned(),
                };
                if let Some(i) = &id {
                    ids.push(i.clone());
                }
                let lease = rng.pick(&[1u64, 50, 500, 5_000, 40_000]);
                let req = Acquire::new(
                    limit,
                    lease,
                    id.as_deref().map(|i| LeaseId::parse(i).unwrap()),
                )
                .unwrap();
                let want = model.acquire(limit, lease, id.as_deref(), t);
                let v = acquire(key.as_mut(), &req, t).unwrap();
                let got = ModelGrant {
                    allowed: v.grant.allowed,
                    id: v.grant.id.as_ref().map(LeaseId::to_bytes),
                    in_flight: v.grant.in_flight,
                    retry: v.grant.retry_after_us,
                    reset: v.grant.reset_after_us,
                };
                assert_eq!(got, want, "seed {seed} step {step} at {t}");
                seen.granted += u64::from(want.allowed);
                seen.denied += u64::from(!want.allowed);
                if let Some(i) = &v.grant.id {
                    ids.push(i.to_bytes());
                }
                store(&mut key, v.outcome);
                v.effect
            };
            if let Some(e) = &effect {
                let outcome = replay(replica.as_mut(), e).unwrap();
                store(&mut replica, outcome);
            }
            assert_eq!(
                held_of(key.as_ref(), t),
                model.read(t),
                "seed {seed} step {step}"
            );
            assert_eq!(key, replica, "seed {seed} step {step}");
            if let Some(Limiter {
                state: State::Leases(s),
                ..
            }) = &key
            {
                check_shape(s);
                let ended = s.stored() - s.held(t) as usize;
                if effect.is_some() {
                    // A write stores one lease more at most, and drops up to DROP_PER_WRITE.
                    assert!(s.stored() <= stored_before.max(s.held(t) as usize));
                    lagged += u64::from(ended > 0);
                }
                assert_eq!(
                    s.expires_at_us(),
                    model.ends.values().max().copied().unwrap()
                );
                if step % 500 == 0 {
                    let l = key.as_ref().unwrap();
                    assert!(l.is_valid());
                    let bytes = crate::datatype::codec::encode(l);
                    assert_eq!(crate::datatype::codec::decode(&bytes).as_ref(), Some(l));
                }
            }
            if model.read(t).is_empty() && rng.chance(50) {
                (key, replica, model) = (None, None, Model::default());
            }
            if ids.len() > 10_000 {
                ids.drain(..5_000);
            }
        }
    }
    eprintln!("{seen:?}, writes leaving ended leases behind: {lagged}");
    assert!(seen.denied >= 100 && seen.released >= 100 && lagged >= 30);
}

/// 9,999 ended leases and one held: each write drops `DROP_PER_WRITE` of them, in order, and
/// after ⌈9,999 / DROP_PER_WRITE⌉ writes none is left; meanwhile they count for nothing.
#[test]
fn ended_leases_go_within_a_bounded_number_of_writes() {
    let mut key: Option<Limiter> = None;
    let keeper = LeaseId::parse(b"keeper").unwrap();
    let o = acquire(
        None,
        &Acquire::new(10_000, 1_000_000, Some(keeper.clone())).unwrap(),
        BASE,
    )
    .unwrap()
    .outcome;
    store(&mut key, o);
    for i in 0..9_999u64 {
        let id = LeaseId::parse(format!("worker-{i:05}").as_bytes()).unwrap();
        let req = Acquire::new(10_000, 1_000, Some(id)).unwrap();
        let o = acquire(key.as_mut(), &req, BASE + i / 100).unwrap().outcome;
        store(&mut key, o);
    }
    let t = BASE + 2_000;
    let stored = |k: &Option<Limiter>| match k {
        Some(Limiter {
            state: State::Leases(s),
            ..
        }) => (s.stored(), s.held(t) as usize),
        _ => (0, 0),
    };
    assert_eq!(stored(&key), (10_000, 1));
    let mut writes = 0;
    let a = LeaseId::parse(b"a").unwrap();
    while stored(&key).0 > stored(&key).1 {
        let (before, _) = stored(&key);
        // Renewing (or taking) "a" and the keeper: writes that add nothing.
        let v = acquire(
            key.as_mut(),
            &Acquire::new(2, 1_000_000, Some(a.clone())).unwrap(),
            t,
        )
        .unwrap();
        assert!(v.grant.allowed && v.grant.in_flight == 2);
        let added = usize::from(writes == 0);
        assert_eq!(
            stored(&key).0,
            (before + added - DROP_PER_WRITE.min(before - 1)).max(2)
        );
        writes += 1;
    }
    assert_eq!(writes, 9_999usize.div_ceil(DROP_PER_WRITE));
    assert_eq!(stored(&key), (2, 2));
}

/// A release or renewal anywhere in 10,000 leases shifts one chunk; the shape holds throughout.
#[test]
fn the_shape_holds_through_releases_and_renewals() {
    let mut rng = Rng(3);
    let mut key: Option<Limiter> = None;
    let id = |i: u64| LeaseId::parse(format!("w{i}").as_bytes()).unwrap();
    for i in 0..10_000u64 {
        let req = Acquire::new(10_000, 1_000_000 + rng.range(0, 1_000), Some(id(i))).unwrap();
        let o = acquire(key.as_mut(), &req, BASE).unwrap().outcome;
        store(&mut key, o);
    }
    for round in 0..20_000u64 {
        let i = rng.range(0, 9_999);
        let l = key.as_mut().unwrap();
        if round % 2 == 0 {
            release(Some(l), &id(i), BASE + 1).unwrap();
        } else {
            let req = Acquire::new(10_000, rng.range(1, 2_000_000), Some(id(i))).unwrap();
            acquire(Some(l), &req, BASE + 1).unwrap();
        }
        let State::Leases(s) = &l.state else { panic!() };
        check_shape(s);
    }
    assert!(key.unwrap().is_valid());
}

/// Two ids with one fingerprint (a number is its own: the number FNV-1a makes of "a"): each is
/// found, renewed and released as itself.
#[test]
fn ids_sharing_a_fingerprint_stay_apart() {
    let a = LeaseId::parse(b"a").unwrap();
    let n = LeaseId::Num(fingerprint(&a));
    assert_eq!(fingerprint(&n), fingerprint(&a));
    let mut key = None;
    for (i, id) in [&a, &n].into_iter().enumerate() {
        let req = Acquire::new(2, 1_000, Some(id.clone())).unwrap();
        let o = acquire(key.as_mut(), &req, BASE + i as u64)
            .unwrap()
            .outcome;
        store(&mut key, o);
    }
    let l = key.as_mut().unwrap();
    let v = acquire(
        Some(l),
        &Acquire::new(2, 5_000, Some(n.clone())).unwrap(),
        BASE + 2,
    );
    assert_eq!(v.unwrap().grant.in_flight, 2);
    assert!(release(Some(l), &a, BASE + 3).unwrap().released);
    assert!(!release(Some(l), &a, BASE + 3).unwrap().released);
    let State::Leases(s) = &l.state else { panic!() };
    assert!(s.holds(&n, BASE + 3) && !s.holds(&a, BASE + 3));
    assert_eq!(l.expires_at_us(), BASE + 5_002);
}
