//! Module arguments: `loadmodule <path> [name value] …` with the names
//!
//! - `enable-debug-command yes|no` (default `no`): register `RL.DEBUG` (fault injection for tests);
//! - `ttl-sweep-rate N` (default [`DEFAULT_SWEEP_RATE`]): how many keys per second the
//!   background sweep that gives a `PERSIST`ed limiter key its TTL back may look at; `0` turns
//!   the sweep off (see `expiry`);
//! - `ttl-hook yes|no` (default `no`): also subscribe to the server's generic keyspace events, so
//!   that `PERSIST` on a limiter key is repaired right after the command instead of by the sweep —
//!   at the price of a module callback on every `DEL`, `EXPIRE`, `SET … EX`, `RENAME` of any key.
//!
//! A name given twice keeps the last value.

/// The sweep's default rate, keys per second.
pub const DEFAULT_SWEEP_RATE: u32 = 5_000;

/// What the `loadmodule` line asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModuleArgs {
    /// Register `RL.DEBUG` (fault injection for tests). Default off.
    pub debug_command: bool,
    /// Keys per second the TTL sweep may look at; 0 = no sweep.
    pub sweep_rate: u32,
    /// Subscribe to generic keyspace events to repair `PERSIST` at once. Default off.
    pub ttl_hook: bool,
}

impl Default for ModuleArgs {
    fn default() -> ModuleArgs {
        ModuleArgs {
            debug_command: false,
            sweep_rate: DEFAULT_SWEEP_RATE,
            ttl_hook: false,
        }
    }
}

const UNKNOWN: &str = "unknown module argument: the arguments are enable-debug-command yes|no, \
                       ttl-hook yes|no, ttl-sweep-rate <keys per second>";

/// Parses the arguments after the module path; `Err` says what is wrong (the load then fails).
///
/// ```
/// use redis_ratelimit::config::{parse_module_args, ModuleArgs};
/// assert_eq!(parse_module_args(&[]), Ok(ModuleArgs::default()));
/// let args: [&[u8]; 4] = [b"enable-debug-command", b"yes", b"ttl-sweep-rate", b"0"];
/// let parsed = parse_module_args(&args).unwrap();
/// assert!(parsed.debug_command);
/// assert_eq!(parsed.sweep_rate, 0);
/// assert!(!parsed.ttl_hook);
/// ```
pub fn parse_module_args(args: &[&[u8]]) -> Result<ModuleArgs, String> {
    let mut out = ModuleArgs::default();
    let mut rest = args;
    while let [name, tail @ ..] = rest {
        let [value, tail @ ..] = tail else {
            return Err(format!(
                "module argument {} needs a value",
                String::from_utf8_lossy(name)
            ));
        };
        rest = tail;
        if name.eq_ignore_ascii_case(b"enable-debug-command") {
            out.debug_command = yes_no(value, "enable-debug-command")?;
        } else if name.eq_ignore_ascii_case(b"ttl-hook") {
            out.ttl_hook = yes_no(value, "ttl-hook")?;
        } else if name.eq_ignore_ascii_case(b"ttl-sweep-rate") {
            out.sweep_rate = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<u32>().ok())
                .ok_or("ttl-sweep-rate takes a number of keys per second (0 = no sweep)")?;
        } else {
            return Err(UNKNOWN.into());
        }
    }
    Ok(out)
}

fn yes_no(value: &[u8], name: &str) -> Result<bool, String> {
    if value.eq_ignore_ascii_case(b"yes") {
        Ok(true)
    } else if value.eq_ignore_ascii_case(b"no") {
        Ok(false)
    } else {
        Err(format!("{name} takes yes or no"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_arguments() {
        let cases: [&[&[u8]]; 8] = [
            &[b"enable-debug-command"],
            &[b"enable-debug-command", b"maybe"],
            &[b"other", b"yes"],
            &[b"enable-debug-command", b"yes", b"x"],
            &[b"ttl-hook", b"1"],
            &[b"ttl-sweep-rate", b"-1"],
            &[b"ttl-sweep-rate", b"lots"],
            &[b"ttl-sweep-rate", b"99999999999"],
        ];
        for args in cases {
            assert!(parse_module_args(args).is_err(), "{args:?}");
        }
        let off: [&[u8]; 2] = [b"ENABLE-DEBUG-COMMAND", b"No"];
        assert_eq!(parse_module_args(&off), Ok(ModuleArgs::default()));
    }

    #[test]
    fn every_argument() {
        let args: [&[u8]; 6] = [
            b"ttl-hook",
            b"yes",
            b"ttl-sweep-rate",
            b"250",
            b"ttl-sweep-rate",
            b"500",
        ];
        assert_eq!(
            parse_module_args(&args),
            Ok(ModuleArgs {
                debug_command: false,
                sweep_rate: 500,
                ttl_hook: true,
            })
        );
    }
}
