//! Module arguments: `loadmodule <path> [name value] …` (any order; a name given twice keeps the
//! last value) with the names
//!
//! - `enable-debug-command yes|no` (default `no`): register `RL.DEBUG` (fault injection for tests);
//! - `compat-commands cl.throttle,gcra|none` (default both): the drop-in names to register;
//! - `ttl-sweep-rate N` (default [`DEFAULT_SWEEP_RATE`]): how many keys per second the
//!   background sweep that gives a `PERSIST`ed limiter key its TTL back may look at; `0` turns
//!   the sweep off (see `sweep`);
//! - `ttl-hook yes|no` (default `no`): also subscribe to the server's generic keyspace events, so
//!   that `PERSIST` on a limiter key is repaired right after the command instead of by the sweep —
//!   at the price of a module callback on every `DEL`, `EXPIRE`, `SET … EX`, `RENAME` of any key.

/// The sweep's default rate, keys per second.
pub const DEFAULT_SWEEP_RATE: u32 = 5_000;

/// What the `loadmodule` line asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModuleArgs {
    /// Register `RL.DEBUG` (fault injection for tests). Default off.
    pub debug_command: bool,
    /// Which drop-in names outside the `RL.` namespace to register. Default both.
    pub compat_commands: CompatCommands,
    /// Keys per second the TTL sweep may look at; 0 = no sweep.
    pub sweep_rate: u32,
    /// Subscribe to generic keyspace events to repair `PERSIST` at once. Default off.
    pub ttl_hook: bool,
}

impl Default for ModuleArgs {
    fn default() -> ModuleArgs {
        ModuleArgs {
            debug_command: false,
            compat_commands: CompatCommands::default(),
            sweep_rate: DEFAULT_SWEEP_RATE,
            ttl_hook: false,
        }
    }
}

/// The drop-in command names outside the `RL.` namespace (`compat-commands`): each is
/// registered only when wanted and when the server has no command of that name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompatCommands {
    /// redis-cell's `CL.THROTTLE`.
    pub cl_throttle: bool,
    /// Redis 8.8's pulled `GCRA`.
    pub gcra: bool,
}

impl Default for CompatCommands {
    fn default() -> Self {
        CompatCommands {
            cl_throttle: true,
            gcra: true,
        }
    }
}

const UNKNOWN: &str = "unknown module arguments: expected enable-debug-command yes|no, \
                       compat-commands cl.throttle,gcra|none, ttl-hook yes|no and \
                       ttl-sweep-rate <keys per second>";

const COMPAT_VALUES: &str =
    "compat-commands takes a comma-separated list of cl.throttle and gcra, or none";

/// Parses the arguments after the module path (name/value pairs, any order); `Err` says what
/// is wrong (the load then fails).
///
/// ```
/// use redis_ratelimit::config::{parse_module_args, CompatCommands, ModuleArgs};
/// assert_eq!(parse_module_args(&[]), Ok(ModuleArgs::default()));
/// let on: [&[u8]; 2] = [b"enable-debug-command", b"yes"];
/// assert!(parse_module_args(&on).unwrap().debug_command);
/// let only_gcra: [&[u8]; 2] = [b"compat-commands", b"gcra"];
/// assert_eq!(
///     parse_module_args(&only_gcra).unwrap().compat_commands,
///     CompatCommands { cl_throttle: false, gcra: true }
/// );
/// let ttl: [&[u8]; 4] = [b"ttl-sweep-rate", b"0", b"ttl-hook", b"yes"];
/// let parsed = parse_module_args(&ttl).unwrap();
/// assert_eq!((parsed.sweep_rate, parsed.ttl_hook), (0, true));
/// ```
pub fn parse_module_args(args: &[&[u8]]) -> Result<ModuleArgs, String> {
    let mut parsed = ModuleArgs::default();
    for pair in args.chunks(2) {
        let [name, value] = pair else {
            return Err(UNKNOWN.into());
        };
        if name.eq_ignore_ascii_case(b"enable-debug-command") {
            parsed.debug_command = yes_no(value, "enable-debug-command")?;
        } else if name.eq_ignore_ascii_case(b"compat-commands") {
            parsed.compat_commands = parse_compat_commands(value)?;
        } else if name.eq_ignore_ascii_case(b"ttl-hook") {
            parsed.ttl_hook = yes_no(value, "ttl-hook")?;
        } else if name.eq_ignore_ascii_case(b"ttl-sweep-rate") {
            parsed.sweep_rate = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<u32>().ok())
                .ok_or("ttl-sweep-rate takes a number of keys per second (0 = no sweep)")?;
        } else {
            return Err(UNKNOWN.into());
        }
    }
    Ok(parsed)
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

/// `cl.throttle,gcra` (any subset, any order, case-insensitive) or `none`.
fn parse_compat_commands(value: &[u8]) -> Result<CompatCommands, String> {
    let mut wanted = CompatCommands {
        cl_throttle: false,
        gcra: false,
    };
    if value.eq_ignore_ascii_case(b"none") {
        return Ok(wanted);
    }
    for name in value.split(|&c| c == b',') {
        if name.eq_ignore_ascii_case(b"cl.throttle") {
            wanted.cl_throttle = true;
        } else if name.eq_ignore_ascii_case(b"gcra") {
            wanted.gcra = true;
        } else {
            return Err(COMPAT_VALUES.into());
        }
    }
    Ok(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_arguments() {
        let cases: [&[&[u8]]; 12] = [
            &[b"ttl-hook", b"1"],
            &[b"ttl-sweep-rate", b"-1"],
            &[b"ttl-sweep-rate", b"lots"],
            &[b"ttl-sweep-rate", b"99999999999"],
            &[b"enable-debug-command"],
            &[b"enable-debug-command", b"maybe"],
            &[b"other", b"yes"],
            &[b"enable-debug-command", b"yes", b"x"],
            &[b"compat-commands", b""],
            &[b"compat-commands", b"gcra,"],
            &[b"compat-commands", b"cl.throttle,redis-cell"],
            &[b"compat-commands", b"none,gcra"],
        ];
        for args in cases {
            assert!(parse_module_args(args).is_err(), "{args:?}");
        }
        let off: [&[u8]; 2] = [b"ENABLE-DEBUG-COMMAND", b"No"];
        assert_eq!(parse_module_args(&off), Ok(ModuleArgs::default()));
    }

    #[test]
    fn ttl_arguments() {
        let args: [&[u8]; 6] = [
            b"ttl-hook",
            b"yes",
            b"ttl-sweep-rate",
            b"250",
            b"TTL-SWEEP-RATE",
            b"500",
        ];
        let parsed = parse_module_args(&args).unwrap();
        assert_eq!((parsed.sweep_rate, parsed.ttl_hook), (500, true));
        assert_eq!(ModuleArgs::default().sweep_rate, DEFAULT_SWEEP_RATE);
    }

    #[test]
    fn compat_commands() {
        let both = CompatCommands::default();
        let none = CompatCommands {
            cl_throttle: false,
            gcra: false,
        };
        let cases: [(&[u8], CompatCommands); 5] = [
            (b"cl.throttle,gcra", both),
            (b"GCRA,CL.THROTTLE", both),
            (b"none", none),
            (
                b"cl.throttle",
                CompatCommands {
                    cl_throttle: true,
                    gcra: false,
                },
            ),
            (
                b"gcra",
                CompatCommands {
                    cl_throttle: false,
                    gcra: true,
                },
            ),
        ];
        for (value, want) in cases {
            let args: [&[u8]; 4] = [b"compat-commands", value, b"enable-debug-command", b"yes"];
            let parsed = parse_module_args(&args).unwrap();
            assert_eq!(parsed.compat_commands, want, "{value:?}");
            assert!(parsed.debug_command);
        }
    }
}
