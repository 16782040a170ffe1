//! Writes the seed corpora (fuzz/corpus/<target>/): `cargo run --example seeds -- fuzz/corpus`.
//! Seeds are small valid inputs of every command and every kind; libFuzzer mutates from there.

use std::fs;
use std::path::Path;

use redis_ratelimit::algo::{Algorithm, Bounds, Limiter, Outcome, Rule};
use redis_ratelimit::datatype::codec::{encode, encode_hit};

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let d = dir.join(target);
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join(name), bytes).unwrap();
}

/// A limiter of `rule` after `hits` requests of cost 1, 1 ms apart.
fn limiter(rule: &Rule, hits: u64) -> Limiter {
    let t = 1_700_000_000_000_000;
    let mut stored: Option<Limiter> = None;
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
            "fields",
            "-\n00000000000000000000001.5ms\n+2.5E+1\n.5\n99999999999999999999d",
        ),
    ];
    for (name, text) in args {
        write(dir, "args", name, text.as_bytes());
    }
    for &a in Algorithm::ALL {
        let burst = a.takes_burst().then_some(7);
        for (rule, hits) in [
            (Rule::new(a, 10, 60_000_000, None).unwrap(), 1),
            (Rule::new(a, 3, 1_000, burst).unwrap(), 3),
            (Rule::new(a, 1_000, 10_000_000, None).unwrap(), 40),
        ] {
            let l = limiter(&rule, hits);
            let name = format!("{}-{}-{hits}", a.name(), rule.limit());
            write(dir, "decode", &name, &encode(&l));
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
    // Operation sequences: a fixed byte pattern per kind (first byte picks the kind).
    for (i, &a) in Algorithm::ALL.iter().enumerate() {
        let mut bytes = vec![i as u8, 50];
        let mut x = 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(i as u64 + 1);
        for _ in 0..600 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            bytes.push(x as u8);
        }
        write(dir, "algo", a.name(), &bytes);
    }
}
