//! Argument parsing of every command: the table of commands whose arguments the module parses,
//! and oracles for the field parsers they share.
//!
//! Input format of the `args` target: lines separated by `\n`; the first names a command of
//! [`COMMANDS`] (case-insensitive), the others are its arguments after the key (after the
//! name for `RL.ALLOWALL` / `RL.PEEKALL`: `numkeys`, the keys, the groups). Every line is
//! also fed to the field parsers ([`check_fields`]), whatever the command.
//!
//! For every command: a refusal is an `ERR …` reply of one short ASCII line (whatever the
//! input: arguments are quoted back at most 32 bytes long); an accepted request holds a valid
//! rule, and its canonical arguments ([`Command::render`]) parse back to the same request — the
//! parser never misreads.

use redis_ratelimit::algo::leases::{Acquire, LeaseId, MAX_ID_LEN, MAX_LEASES};
use redis_ratelimit::algo::multi::{Group, MAX_KEYS};
use redis_ratelimit::algo::{Algorithm, Rule, MAX_BLOCK_US, MAX_COUNT, MAX_WINDOW_US};
use redis_ratelimit::args::{
    parse_acquire, parse_count, parse_group, parse_groups, parse_lease_id, parse_settle,
    parse_window, ArgError,
};
use redis_ratelimit::compat::{parse_gcra, parse_seconds, parse_throttle};
use redis_ratelimit::config::parse_module_args;

/// Longest error reply any input may produce.
pub const MAX_ERROR_LEN: usize = 300;

/// What a command's arguments parse to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// `RL.ALLOW`, `RL.PEEK`, `RL.THROTTLE`, `CL.THROTTLE`, `GCRA`: a rule, a cost, a block.
    Group(Group),
    /// `RL.ALLOWALL` / `RL.PEEKALL`: the keys and one group per key.
    All(Vec<Vec<u8>>, Vec<Group>),
    /// `RL.CHARGE` / `RL.REFUND`: the rule and the amount.
    Settle(Rule, u64),
    /// `RL.ACQUIRE`.
    Acquire(Acquire),
    /// `RL.RELEASE`: the id.
    Release(LeaseId),
}

/// A command whose arguments the module parses.
pub struct Command {
    /// The command name.
    pub name: &'static str,
    /// How many arguments its handler passes to the parser (after the key, or after the name
    /// for the `numkeys` commands); others get the server's arity error.
    pub args: (usize, usize),
    /// The parser: what the arguments mean, or the error reply.
    pub parse: fn(&[&[u8]]) -> Result<Parsed, String>,
    /// Canonical arguments for a parse (what the parser must read back unchanged).
    pub render: fn(&Parsed) -> Vec<Vec<u8>>,
}

/// Every command with arguments to parse. A new command = one line here (and one seed file in
/// `fuzz/corpus/args/`).
pub const COMMANDS: &[Command] = &[
    Command {
        name: "RL.ALLOW",
        args: (2, usize::MAX),
        parse: group,
        render: render_group,
    },
    Command {
        name: "RL.PEEK",
        args: (2, usize::MAX),
        parse: group,
        render: render_group,
    },
    Command {
        name: "RL.ALLOWALL",
        args: (4, usize::MAX),
        parse: all,
        render: render_all,
    },
    Command {
        name: "RL.PEEKALL",
        args: (4, usize::MAX),
        parse: all,
        render: render_all,
    },
    Command {
        name: "RL.CHARGE",
        args: (3, usize::MAX),
        parse: settle,
        render: render_settle,
    },
    Command {
        name: "RL.REFUND",
        args: (3, usize::MAX),
        parse: settle,
        render: render_settle,
    },
    Command {
        name: "RL.ACQUIRE",
        args: (2, usize::MAX),
        parse: acquire,
        render: render_acquire,
    },
    Command {
        name: "RL.RELEASE",
        args: (1, 1),
        parse: release,
        render: render_release,
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

fn group(args: &[&[u8]]) -> Result<Parsed, String> {
    parse_group(args.iter().copied())
        .map(Parsed::Group)
        .map_err(|e| e.message())
}

/// `numkeys key … groups`, as `RL.ALLOWALL`'s handler splits them (`keys_of` in
/// src/commands/multi.rs), then the pure group parser.
fn all(args: &[&[u8]]) -> Result<Parsed, String> {
    let (numkeys, rest) = args.split_first().ok_or("ERR arity")?;
    let n = parse_count(numkeys)
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| (1..=MAX_KEYS).contains(n))
        .ok_or_else(|| ArgError::NumKeys.message())?;
    if rest.len() < n * 3 {
        return Err(format!("ERR numkeys is {n}: give {n} keys"));
    }
    let (keys, groups) = rest.split_at(n);
    let groups = parse_groups(groups, n).map_err(|e| e.message())?;
    Ok(Parsed::All(
        keys.iter().map(|k| k.to_vec()).collect(),
        groups,
    ))
}

fn settle(args: &[&[u8]]) -> Result<Parsed, String> {
    parse_settle(args.iter().copied())
        .map(|(rule, n)| Parsed::Settle(rule, n))
        .map_err(|e| e.message())
}

fn acquire(args: &[&[u8]]) -> Result<Parsed, String> {
    parse_acquire(args.iter().copied())
        .map(Parsed::Acquire)
        .map_err(|e| e.message())
}

fn release(args: &[&[u8]]) -> Result<Parsed, String> {
    let [id] = args else {
        return Err("ERR arity".into());
    };
    parse_lease_id(id)
        .map(Parsed::Release)
        .map_err(|e| e.message())
}

fn throttle(args: &[&[u8]]) -> Result<Parsed, String> {
    parse_throttle(args.iter().copied())
        .map(|r| Parsed::Group(cost_only(r.rule, r.cost)))
        .map_err(|e| e.message())
}

fn gcra(args: &[&[u8]]) -> Result<Parsed, String> {
    parse_gcra(args.iter().copied())
        .map(|r| Parsed::Group(cost_only(r.rule, r.cost)))
        .map_err(|e| e.message())
}

fn cost_only(rule: Rule, cost: u64) -> Group {
    Group {
        rule,
        cost,
        block_us: 0,
    }
}

/// A window in the syntax every command takes: ms with up to three decimals.
pub fn render_window(us: u64) -> String {
    match us % 1000 {
        0 => format!("{}ms", us / 1000),
        frac => format!("{}.{frac:03}ms", us / 1000),
    }
}

fn bytes(words: Vec<String>) -> Vec<Vec<u8>> {
    words.into_iter().map(String::into_bytes).collect()
}

fn group_words(g: &Group) -> Vec<String> {
    let rule = &g.rule;
    let mut out = vec![
        rule.limit().to_string(),
        render_window(rule.window_us()),
        "COST".into(),
        g.cost.to_string(),
        "ALGO".into(),
        rule.algorithm().name().into(),
    ];
    if rule.algorithm().takes_burst() {
        out.extend(["BURST".into(), rule.burst().to_string()]);
    }
    if g.block_us > 0 {
        out.extend(["BLOCK".into(), render_window(g.block_us)]);
    }
    out
}

fn render_group(p: &Parsed) -> Vec<Vec<u8>> {
    match p {
        Parsed::Group(g) => bytes(group_words(g)),
        _ => Vec::new(),
    }
}

fn render_all(p: &Parsed) -> Vec<Vec<u8>> {
    let Parsed::All(keys, groups) = p else {
        return Vec::new();
    };
    let mut out = vec![keys.len().to_string().into_bytes()];
    out.extend(keys.iter().cloned());
    for g in groups {
        out.extend(bytes(group_words(g)));
    }
    out
}

fn render_settle(p: &Parsed) -> Vec<Vec<u8>> {
    let Parsed::Settle(rule, n) = p else {
        return Vec::new();
    };
    let mut out = vec![
        rule.limit().to_string(),
        render_window(rule.window_us()),
        n.to_string(),
        "ALGO".into(),
        rule.algorithm().name().into(),
    ];
    if rule.algorithm().takes_burst() {
        out.extend(["BURST".into(), rule.burst().to_string()]);
    }
    bytes(out)
}

fn render_acquire(p: &Parsed) -> Vec<Vec<u8>> {
    let Parsed::Acquire(a) = p else {
        return Vec::new();
    };
    let mut out = bytes(vec![
        a.rule.limit().to_string(),
        render_window(a.rule.window_us()),
    ]);
    if let Some(id) = &a.id {
        out.push(b"ID".to_vec());
        out.push(id.to_bytes());
    }
    out
}

fn render_release(p: &Parsed) -> Vec<Vec<u8>> {
    match p {
        Parsed::Release(id) => vec![id.to_bytes()],
        _ => Vec::new(),
    }
}

fn render_throttle(p: &Parsed) -> Vec<Vec<u8>> {
    let Parsed::Group(g) = p else {
        return Vec::new();
    };
    let rule = &g.rule;
    bytes(vec![
        (rule.burst() - 1).to_string(),
        rule.limit().to_string(),
        render_window(rule.window_us()),
        g.cost.to_string(),
    ])
}

fn render_gcra(p: &Parsed) -> Vec<Vec<u8>> {
    let Parsed::Group(g) = p else {
        return Vec::new();
    };
    let (rule, us) = (&g.rule, g.rule.window_us());
    bytes(vec![
        (rule.burst() - 1).to_string(),
        rule.limit().to_string(),
        format!("{}.{:06}", us / 1_000_000, us % 1_000_000),
        "TOKENS".into(),
        g.cost.to_string(),
    ])
}

/// A rule the module may act on: what `Rule::new` accepts with the same fields.
fn check_rule(what: &str, rule: &Rule) {
    let burst = rule.algorithm().takes_burst().then_some(rule.burst());
    assert_eq!(
        Rule::new(rule.algorithm(), rule.limit(), rule.window_us(), burst),
        Ok(*rule),
        "{what}: accepted an invalid rule"
    );
}

fn check_group(what: &str, g: &Group) {
    check_rule(what, &g.rule);
    assert!(g.rule.algorithm().is_rate_limit(), "{what}: {g:?}");
    assert!(g.cost <= MAX_COUNT, "{what}: cost {}", g.cost);
    assert!(g.block_us <= MAX_BLOCK_US, "{what}: block {}", g.block_us);
}

/// What every accepted parse must hold, whatever the command.
fn check_parsed(what: &str, p: &Parsed) {
    match p {
        Parsed::Group(g) => check_group(what, g),
        Parsed::All(keys, groups) => {
            assert!((1..=MAX_KEYS).contains(&keys.len()), "{what}: {p:?}");
            assert_eq!(keys.len(), groups.len(), "{what}: {p:?}");
            for g in groups {
                check_group(what, g);
            }
        }
        Parsed::Settle(rule, n) => {
            check_rule(what, rule);
            assert!(rule.algorithm().is_rate_limit(), "{what}: {p:?}");
            assert!(*n <= MAX_COUNT, "{what}: amount {n}");
        }
        Parsed::Acquire(a) => {
            check_rule(what, &a.rule);
            assert_eq!(a.rule.algorithm(), Algorithm::Leases, "{what}: {p:?}");
            assert!((1..=MAX_LEASES).contains(&a.rule.limit()), "{what}: {p:?}");
            if let Some(id) = &a.id {
                check_id(what, id);
            }
        }
        Parsed::Release(id) => check_id(what, id),
    }
}

fn check_id(what: &str, id: &LeaseId) {
    let b = id.to_bytes();
    assert!((1..=MAX_ID_LEN).contains(&b.len()), "{what}: id {id:?}");
    assert_eq!(LeaseId::parse(&b).as_ref(), Some(id), "{what}: id {id:?}");
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
        Ok(parsed) => {
            check_parsed(cmd.name, &parsed);
            let canonical = (cmd.render)(&parsed);
            let canonical: Vec<&[u8]> = canonical.iter().map(Vec::as_slice).collect();
            assert_eq!(
                (cmd.parse)(&canonical),
                Ok(parsed),
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
