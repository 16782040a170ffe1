//! Argument parsing of every command: the table of commands whose arguments the module parses,
//! and oracles for the field parsers they share.
//!
//! Input format of the `args` target: lines separated by `\n`; the first names a command of
//! [`COMMANDS`] (case-insensitive), the others are its arguments after the key. Every line is
//! also fed to the field parsers ([`check_fields`]), whatever the command.
//!
//! For every command: a refusal is an `ERR …` reply of one short ASCII line (whatever the
//! input: arguments are quoted back at most 32 bytes long); an accepted request holds a valid
//! rule, and its canonical arguments ([`Command::render`]) parse back to the same request — the
//! parser never misreads.

use redis_ratelimit::algo::{Rule, MAX_COUNT, MAX_WINDOW_US};
use redis_ratelimit::args::{parse_count, parse_request, parse_window, Request};
use redis_ratelimit::compat::{parse_gcra, parse_seconds, parse_throttle};
use redis_ratelimit::config::parse_module_args;

/// Longest error reply any input may produce.
pub const MAX_ERROR_LEN: usize = 300;

/// A command whose arguments (after the key) the module parses.
pub struct Command {
    /// The command name.
    pub name: &'static str,
    /// How many arguments after the key its handler passes to the parser (others: arity error).
    pub args: (usize, usize),
    /// The parser: the request, or the error reply.
    pub parse: fn(&[&[u8]]) -> Result<Request, String>,
    /// Canonical arguments for a request (what the parser must read back unchanged).
    pub render: fn(&Request) -> Vec<String>,
}

/// Every command with arguments to parse. A new command = one line here (and one seed file in
/// `fuzz/corpus/args/`).
pub const COMMANDS: &[Command] = &[
    Command {
        name: "RL.ALLOW",
        args: (2, usize::MAX),
        parse: request,
        render: render_request,
    },
    Command {
        name: "RL.PEEK",
        args: (2, usize::MAX),
        parse: request,
        render: render_request,
    },
    Command {
        name: "RL.THROTTLE",
        args: (3, 4),
        parse: throttle,
        render: render_throttle,
    },
    Command {
        name: "CL.THROTTLE",
        args: (3, 4),
        parse: throttle,
        render: render_throttle,
    },
    Command {
        name: "GCRA",
        args: (3, 5),
        parse: gcra,
        render: render_gcra,
    },
];

fn request(args: &[&[u8]]) -> Result<Request, String> {
    parse_request(args.iter().copied()).map_err(|e| e.message())
}

fn throttle(args: &[&[u8]]) -> Result<Request, String> {
    parse_throttle(args.iter().copied()).map_err(|e| e.message())
}

fn gcra(args: &[&[u8]]) -> Result<Request, String> {
    parse_gcra(args.iter().copied()).map_err(|e| e.message())
}

/// A window in the syntax every command takes: ms with up to three decimals.
pub fn render_window(us: u64) -> String {
    match us % 1000 {
        0 => format!("{}ms", us / 1000),
        frac => format!("{}.{frac:03}ms", us / 1000),
    }
}

fn render_request(r: &Request) -> Vec<String> {
    let rule = &r.rule;
    let mut out = vec![
        rule.limit().to_string(),
        render_window(rule.window_us()),
        "COST".into(),
        r.cost.to_string(),
        "ALGO".into(),
        rule.algorithm().name().into(),
    ];
    if rule.algorithm().takes_burst() {
        out.extend(["BURST".into(), rule.burst().to_string()]);
    }
    out
}

fn render_throttle(r: &Request) -> Vec<String> {
    let rule = &r.rule;
    vec![
        (rule.burst() - 1).to_string(),
        rule.limit().to_string(),
        render_window(rule.window_us()),
        r.cost.to_string(),
    ]
}

fn render_gcra(r: &Request) -> Vec<String> {
    let (rule, us) = (&r.rule, r.rule.window_us());
    vec![
        (rule.burst() - 1).to_string(),
        rule.limit().to_string(),
        format!("{}.{:06}", us / 1_000_000, us % 1_000_000),
        "TOKENS".into(),
        r.cost.to_string(),
    ]
}

/// Asserts what every error reply must be.
pub fn check_error(what: &str, msg: &str) {
    assert!(
        msg.starts_with("ERR "),
        "{what}: error without ERR prefix: {msg:?}"
    );
    assert!(
        msg.len() <= MAX_ERROR_LEN,
        "{what}: error of {} bytes: {msg:?}",
        msg.len()
    );
    assert!(
        msg.bytes().all(|b| (0x20..0x7f).contains(&b)),
        "{what}: error not one line of printable ASCII: {msg:?}"
    );
}

/// Parses `args` as `cmd` does and checks the result.
pub fn check_command(cmd: &Command, args: &[&[u8]]) {
    if args.len() < cmd.args.0 || args.len() > cmd.args.1 {
        return; // the handler answers the server's arity error
    }
    match (cmd.parse)(args) {
        Err(msg) => check_error(cmd.name, &msg),
        Ok(req) => {
            let rule = req.rule;
            let burst = rule.algorithm().takes_burst().then_some(rule.burst());
            assert_eq!(
                Rule::new(rule.algorithm(), rule.limit(), rule.window_us(), burst),
                Ok(rule),
                "{}: accepted an invalid rule",
                cmd.name
            );
            assert!(req.cost <= MAX_COUNT, "{}: cost {}", cmd.name, req.cost);
            let canonical = (cmd.render)(&req);
            let canonical: Vec<&[u8]> = canonical.iter().map(|s| s.as_bytes()).collect();
            assert_eq!(
                (cmd.parse)(&canonical),
                Ok(req),
                "{}: {args:?} and its canonical form {canonical:?} differ",
                cmd.name
            );
        }
    }
}

/// `loadmodule` arguments: accepted, or refused with a one-line reason.
pub fn check_module_args(args: &[&[u8]]) {
    if let Err(msg) = parse_module_args(args) {
        assert!(!msg.is_empty() && !msg.contains(['\r', '\n']), "{msg:?}");
    }
}

/// The field parsers against oracles written from their definitions (README: a count is ASCII
/// digits; a window is digits with an optional fraction and a unit; GCRA's period is a decimal
/// number of seconds with an optional exponent), using `u128` and `f64` arithmetic instead of
/// the parsers' exact digit walks.
pub fn check_fields(arg: &[u8]) {
    assert_eq!(parse_count(arg), count_oracle(arg), "parse_count({arg:?})");
    if let Some(want) = window_oracle(arg) {
        assert_eq!(
            parse_window(arg),
            want,
            "parse_window({:?})",
            String::from_utf8_lossy(arg)
        );
    }
    if let Some(want) = seconds_oracle(arg) {
        assert_eq!(
            parse_seconds(arg),
            want,
            "parse_seconds({:?})",
            String::from_utf8_lossy(arg)
        );
    }
}

fn count_oracle(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let digits = std::str::from_utf8(s).ok()?.trim_start_matches('0');
    if digits.is_empty() {
        return Some(0);
    }
    if digits.len() > 38 {
        return None;
    }
    let n: u128 = digits.parse().ok()?;
    u64::try_from(n).ok().filter(|&n| n <= MAX_COUNT)
}

/// `x` (µs, approximate) rounded to the nearest integer, halves up, and kept when in range;
/// `None` (no verdict) when `x` lies too close to a half for `f64` to tell.
fn rounded_in_range(x: f64) -> Option<Option<u64>> {
    if !x.is_finite() || x < 0.0 {
        return Some(None);
    }
    if x > 1e15 {
        return Some(None); // far beyond 365 days
    }
    if (x - x.floor() - 0.5).abs() < 0.05 {
        return None;
    }
    let r = x.round() as u64;
    Some((1..=MAX_WINDOW_US).contains(&r).then_some(r))
}

/// `Some(verdict)` where the oracle can tell.
fn window_oracle(s: &[u8]) -> Option<Option<u64>> {
    let text = std::str::from_utf8(s).ok();
    let Some(text) = text else { return Some(None) };
    let unit_at = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(unit_at);
    let unit_us = match unit {
        "" | "s" => 1e6,
        "ms" => 1e3,
        "m" => 6e7,
        "h" => 3.6e9,
        "d" => 8.64e10,
        _ => return Some(None),
    };
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    let well_formed = match number.split_once('.') {
        None => digits(number),
        Some((int, frac)) => !unit.is_empty() && digits(int) && digits(frac),
    };
    if !well_formed {
        return Some(None);
    }
    let value: f64 = number.parse().ok()?;
    rounded_in_range(value * unit_us)
}

fn seconds_oracle(s: &[u8]) -> Option<Option<u64>> {
    let Ok(text) = std::str::from_utf8(s) else {
        return Some(None);
    };
    if !text
        .bytes()
        .all(|b| b.is_ascii_digit() || b".eE+-".contains(&b))
        || text.starts_with('-')
    {
        return Some(None);
    }
    match text.parse::<f64>() {
        Err(_) => Some(None),
        Ok(v) => rounded_in_range(v * 1e6),
    }
}

/// The `args` target.
pub fn run(data: &[u8]) {
    let mut lines = data.split(|&b| b == b'\n');
    let name = lines.next().unwrap_or_default();
    let args: Vec<&[u8]> = lines.collect();
    for arg in &args {
        check_fields(arg);
    }
    if name.eq_ignore_ascii_case(b"loadmodule") {
        check_module_args(&args);
    }
    if let Some(cmd) = COMMANDS
        .iter()
        .find(|c| name.eq_ignore_ascii_case(c.name.as_bytes()))
    {
        check_command(cmd, &args);
    }
}
