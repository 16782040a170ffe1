//! The harness checks itself: its oracles give verdicts on the README's examples, and each
//! check fails on what it must catch. `cargo test --manifest-path fuzz/Cargo.toml`.

use redis_ratelimit_fuzz::commands::{check_error, check_fields, COMMANDS};
use redis_ratelimit_fuzz::{algos, commands, decoders, multi};

#[test]
fn seeds_and_regressions_pass() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for dir in ["corpus", "regressions"] {
        for target in [
            "args",
            "decode",
            "decode_hit",
            "decode_effect",
            "algo",
            "multi",
        ] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
                continue;
            };
            for e in entries {
                let data = std::fs::read(e.unwrap().path()).unwrap();
                match target {
                    "args" => commands::run(&data),
                    "algo" => algos::run(&data),
                    "multi" => multi::run(&data),
                    name => decoders::run(name, &data),
                }
                n += 1;
            }
        }
    }
    assert!(n > 30, "{n} inputs");
}

#[test]
fn field_oracles_agree_on_examples() {
    for s in [
        "60",
        "500ms",
        "1.5s",
        "0.001ms",
        "0.0015ms",
        "365d",
        "366d",
        "1.5",
        "+1",
        "1e-3",
        ".5",
        "1.",
        "0.0000005",
        "0.0000004",
        "31536000",
        "31536001",
        "007s",
        "1 s",
        "1e3s",
    ] {
        check_fields(s.as_bytes());
    }
}

#[test]
#[should_panic(expected = "without ERR prefix")]
fn an_error_without_prefix_is_caught() {
    check_error("x", "limit must be positive");
}

#[test]
#[should_panic(expected = "not one line")]
fn a_multiline_error_is_caught() {
    check_error("x", "ERR a\r\nb");
}

#[test]
fn every_command_reads_its_canonical_form() {
    let valid: &[&[&str]] = &[
        &["10", "1m", "COST", "2"],
        &["10", "1m", "ALGO", "gcra", "BURST", "3", "BLOCK", "1.5s"],
        &[
            "2", "a", "b", "10", "1s", "BLOCK", "5s", "100", "1d", "COST", "3",
        ],
        &["1", "a", "10", "1s", "ALGO", "moving-window"],
        &["100000", "1m", "48500", "ALGO", "gcra", "BURST", "200000"],
        &["10", "1s", "3"],
        &["10", "30s", "ID", "worker-1"],
        &["42"],
        &["15", "30", "60", "1"],
        &["15", "30", "60", "1"],
        &["4", "3", "0.5", "TOKENS", "2"],
    ];
    assert_eq!(COMMANDS.len(), valid.len());
    for (cmd, args) in COMMANDS.iter().zip(valid) {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        assert!((cmd.parse)(&args).is_ok(), "{}", cmd.name);
        commands::check_command(cmd, &args);
    }
}
