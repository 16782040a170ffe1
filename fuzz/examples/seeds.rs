//! Writes the seed corpora (fuzz/corpus/<target>/): `cargo run --example seeds -- fuzz/corpus`.
//! Seeds are small valid inputs of every command and every kind; libFuzzer mutates from there.

use std::fs;
use std::path::Path;

use redis_ratelimit::algo::leases::{self, encode_effect, Acquire, Effect, LeaseId};
use redis_ratelimit::algo::{Algorithm, Bounds, Limiter, Outcome, Rule};
use redis_ratelimit::datatype::codec::{encode, encode_hit};

const T: u64 = 1_700_000_000_000_000;

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let d = dir.join(target);
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join(name), bytes).unwrap();
}

/// A limiter of `rule` after `hits` requests of cost 1, 1 ms apart (leases: `hits` leases).
fn limiter(rule: &Rule, hits: u64) -> Limiter {
    let t = T;
    let mut stored: Option<Limiter> = None;
    if rule.algorithm() == Algorithm::Leases {
        for i in 0..hits {
            let id = (i % 2 == 0).then(|| LeaseId::parse(format!("w{i}").as_bytes()).unwrap());
            let req = Acquire::new(rule.limit(), rule.window_us(), id).unwrap();
            let v = leases::acquire(stored.as_mut(), &req, t + i * 1_000).unwrap();
            if let Outcome::Created(l) = v.outcome {
                stored = Some(l);
            }
        }
        return stored.unwrap();
    }
    for i in 0..hits {
        let (_, outcome) = Limiter::decide(stored.as_mut(), rule, 1, t + i * 1_000).unwrap();
        if let Outcome::Created(l) = outcome {
            stored = Some(l);
        }
    }
    stored.unwrap()
}

fn main() {
    let dir = std::env::args().nth(1).expect("usage: seeds <corpus dir>");
    let dir = Path::new(&dir);
    let args: &[(&str, &str)] = &[
        ("allow", "RL.ALLOW\n10\n1m"),
        (
            "allow-all",
            "RL.ALLOW\n10\n1.5s\nCOST\n2\nALGO\ngcra\nBURST\n20",
        ),
        (
            "allow-moving",
            "rl.allow\n100\n500ms\nalgo\nmoving-window\ncost\n0",
        ),
        (
            "allow-limits",
            "RL.ALLOW\n5\n60\nALGO\nlimits-sliding-window",
        ),
        (
            "peek",
            "RL.PEEK\n9223372036854775807\n365d\nALGO\nfixed-window",
        ),
        ("allow-bad", "RL.ALLOW\n0\n1x\nNOPE"),
        ("throttle", "CL.THROTTLE\n15\n30\n60\n1"),
        ("rl-throttle", "RL.THROTTLE\n0\n10\n0.001ms"),
        ("gcra", "GCRA\n4\n3\n0.5\nTOKENS\n2"),
        ("gcra-exp", "GCRA\n1\n1\n1e-3"),
        (
            "loadmodule",
            "LOADMODULE\nenable-debug-command\nyes\ncompat-commands\ncl.throttle,gcra",
        ),
        (
            "allowall",
            "RL.ALLOWALL\n2\nuser:1\nuser:1:day\n10\n1s\nBLOCK\n5s\n10000\n1d\nCOST\n3\nALGO\nmoving-window",
        ),
        ("peekall", "RL.PEEKALL\n1\nk\n5\n1m\nALGO\ngcra\nBURST\n9"),
        ("allowall-bad", "RL.ALLOWALL\n3\na\nb\n1\n1s\n2\n2s"),
        (
            "charge",
            "RL.CHARGE\n100000\n1m\n48500\nALGO\ngcra\nBURST\n200000",
        ),
        ("refund", "RL.REFUND\n10\n1s\n3\nALGO\nfixed-window"),
        ("block", "RL.ALLOW\n5\n1m\nBLOCK\n15m\nCOST\n2"),
        ("acquire", "RL.ACQUIRE\n10\n30s"),
        ("acquire-id", "RL.ACQUIRE\n3\n500ms\nID\nworker-1"),
        ("release", "RL.RELEASE\n1700000000000001"),
        (
            "fields",
            "-\n00000000000000000000001.5ms\n+2.5E+1\n.5\n99999999999999999999d",
        ),
    ];
    for (name, text) in args {
        write(dir, "args", name, text.as_bytes());
    }
    for &a in Algorithm::ALL {
        let burst = a.takes_burst().then_some(7);
        let rate = a.is_rate_limit();
        for (rule, hits) in [
            (Rule::new(a, 10, 60_000_000, None).unwrap(), 1),
            (Rule::new(a, 3, 1_000, burst).unwrap(), 3),
            (Rule::new(a, 1_000, 10_000_000, None).unwrap(), 40),
        ] {
            let l = limiter(&rule, hits);
            let name = format!("{}-{}-{hits}", a.name(), rule.limit());
            write(dir, "decode", &name, &encode(&l));
            if rate {
                // Version 3: a debt (charged past the capacity) and a block.
                let mut debt = l.clone();
                let b = Bounds::DEFAULT;
                Limiter::charge(Some(&mut debt), &rule, rule.capacity() * 2, T + 50_000, &b)
                    .unwrap();
                write(dir, "decode", &format!("{name}-debt"), &encode(&debt));
                let mut blocked = l.clone();
                let cap = rule.capacity();
                Limiter::decide_with(Some(&mut blocked), &rule, cap, T + 50_000, &b, 60_000_000)
                    .unwrap();
                write(dir, "decode", &format!("{name}-block"), &encode(&blocked));
                // Version-4 hits: a refund, a block.
                if let Some(hit) = debt.refund_hit(T + 60_000, 1, &b) {
                    let bytes = encode_hit(&hit);
                    write(
                        dir,
                        "decode_hit",
                        &format!("{name}-refund"),
                        bytes.as_slice(),
                    );
                }
                if let Some(hit) = blocked.hit(T + 50_000, 0, &b) {
                    let bytes = encode_hit(&hit);
                    write(
                        dir,
                        "decode_hit",
                        &format!("{name}-block"),
                        bytes.as_slice(),
                    );
                }
            }
            if let Some(hit) = l.hit(1_700_000_000_100_000, 1, &Bounds::DEFAULT) {
                write(
                    dir,
                    "decode_hit",
                    &format!("{name}-v2"),
                    encode_hit(&hit).as_slice(),
                );
                let bounds = Bounds { max_runs: 1_000 };
                let hit = l.hit(1_700_000_000_100_000, 2, &bounds).unwrap();
                write(
                    dir,
                    "decode_hit",
                    &format!("{name}-v3"),
                    encode_hit(&hit).as_slice(),
                );
            }
        }
    }
    // The first release's 50-byte layout (sliding-window, 10 per minute).
    let mut v1 = vec![1u8, 1];
    for w in [10u64, 60_000_000, 10, 1_699_999_980_000_000, 3, 9] {
        v1.extend_from_slice(&w.to_le_bytes());
    }
    write(dir, "decode", "v1-sliding", &v1);
    // Lease effects (RL.APPLY): acquire (server id, caller id), release, clamp.
    let rule = Acquire::new(10, 30_000_000, None).unwrap().rule;
    let effects = [
        (
            "acquire",
            Effect::Acquire {
                now_us: T,
                rule,
                id: LeaseId::Num(T),
                server_made: true,
            },
        ),
        (
            "acquire-id",
            Effect::Acquire {
                now_us: T,
                rule,
                id: LeaseId::parse(b"worker-1").unwrap(),
                server_made: false,
            },
        ),
        (
            "release",
            Effect::Release {
                now_us: T,
                id: LeaseId::Num(7),
            },
        ),
        ("clamp", Effect::Clamp { now_us: T }),
    ];
    for (name, e) in effects {
        write(dir, "decode_effect", name, encode_effect(&e, 3).as_slice());
    }
    // Operation sequences: a fixed byte pattern per kind (first byte picks the kind, the second
    // the driver: 50 the settle/block sequences, 51 the plain ones).
    for (i, &a) in Algorithm::ALL.iter().enumerate() {
        for mode in [50u8, 51] {
            let mut bytes = vec![i as u8, mode];
            let mut x = 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(i as u64 + 1);
            for _ in 0..600 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                bytes.push(x as u8);
            }
            let name = if mode == 50 {
                format!("{}-settle", a.name())
            } else {
                a.name().to_string()
            };
            write(dir, "algo", &name, &bytes);
        }
    }
    // Several keys: the first byte picks how many (1 to 5), the second whether the clock only
    // moves forward (below 50) or also steps back.
    for (name, keys, forward) in [
        ("two-keys", 1u8, 10u8),
        ("three-keys-steps-back", 2, 90),
        ("four-keys", 3, 20),
        ("five-keys-steps-back", 4, 60),
    ] {
        let mut bytes = vec![keys, forward];
        let mut x = 0x2545_F491_4F6C_DD1Du64.wrapping_mul(u64::from(keys) + 7);
        for _ in 0..1_500 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            bytes.push(x as u8);
        }
        write(dir, "multi", name, &bytes);
    }
}
