//! The module's settings: `ratelimit.<name>` module configs (`CONFIG GET` / `CONFIG SET` /
//! `CONFIG REWRITE`, a `ratelimit.<name> value` line in the config file, `MODULE LOADEX … CONFIG`),
//! also given as `loadmodule <path> [name value] …` arguments (any order; a name given twice keeps
//! the last value). An argument becomes the config's default for this run; a config-file line or
//! `LOADEX … CONFIG` wins over it. The names ([`NUMERIC`] holds the numeric ones):
//!
//! - `enable-debug-command yes|no` (default `no`, load time only): register `RL.DEBUG` (fault
//!   injection for tests);
//! - `compat-commands cl.throttle,gcra|none` (default both, load time only): the drop-in names to
//!   register;
//! - `ttl-hook yes|no` (default `no`, load time only: Redis 7.0 has no way to unsubscribe): also
//!   subscribe to the server's generic keyspace events, so that `PERSIST` on a limiter key is
//!   repaired right after the command instead of by the sweep — at the price of a module callback
//!   on every `DEL`, `EXPIRE`, `SET … EX`, `RENAME` of any key;
//! - `ttl-sweep-rate N` (default [`DEFAULT_SWEEP_RATE`], settable): how many keys per second the
//!   background sweep that gives a `PERSIST`ed limiter key its TTL back may look at; `0` pauses it
//!   (see `sweep`);
//! - the bounds on one call's work (settable; read by commands as one relaxed atomic load):
//!   `max-runs` (runs a moving-window log keeps), `max-keys` (keys per `RL.ALLOWALL` /
//!   `RL.PEEKALL`), `max-leases` (the largest `RL.ACQUIRE` limit), `max-window-ms` (the longest
//!   window, lease or `BLOCK` a request may name).
//!
//! Registration uses the raw module-config API (Redis 7.0+), each pointer checked: a server
//! without it keeps the arguments as the only way to set them.

use std::ffi::CStr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

use crate::algo::moving_window::{DEFAULT_MAX_RUNS, FORMAT_MAX_RUNS};
use crate::algo::{Bounds, MAX_WINDOW_US};

/// The sweep's default rate, keys per second.
pub const DEFAULT_SWEEP_RATE: u32 = 5_000;
/// `max-keys` default: keys per `RL.ALLOWALL` / `RL.PEEKALL` call.
pub const DEFAULT_MAX_KEYS: u64 = crate::algo::multi::MAX_KEYS as u64;
/// `max-keys` ceiling.
pub const CEILING_MAX_KEYS: u64 = 256;
/// `max-leases` default and ceiling (the lease table's O(N) bound is proven for it).
pub const DEFAULT_MAX_LEASES: u64 = crate::algo::leases::MAX_LEASES;
/// `max-window-ms` default and ceiling: 365 days, the stored format's bound.
pub const DEFAULT_MAX_WINDOW_MS: u64 = MAX_WINDOW_US / 1000;

/// Runs a moving-window log keeps (`max-runs`).
pub static MAX_RUNS: AtomicU64 = AtomicU64::new(DEFAULT_MAX_RUNS as u64);
/// Keys one multi-limit call may name (`max-keys`).
pub static MAX_KEYS: AtomicU64 = AtomicU64::new(DEFAULT_MAX_KEYS);
/// The largest `RL.ACQUIRE` limit (`max-leases`).
pub static MAX_LEASES: AtomicU64 = AtomicU64::new(DEFAULT_MAX_LEASES);
/// The longest window, lease or BLOCK a request may name, ms (`max-window-ms`).
pub static MAX_WINDOW_MS: AtomicU64 = AtomicU64::new(DEFAULT_MAX_WINDOW_MS);
/// Keys per second the TTL sweep may look at (`ttl-sweep-rate`); 0 = paused.
pub static SWEEP_RATE: AtomicU64 = AtomicU64::new(DEFAULT_SWEEP_RATE as u64);
pub(crate) static DEBUG_COMMAND: AtomicBool = AtomicBool::new(false);
pub(crate) static TTL_HOOK: AtomicBool = AtomicBool::new(false);
/// Bit 0: CL.THROTTLE, bit 1: GCRA.
pub(crate) static COMPAT: AtomicU8 = AtomicU8::new(3);

/// The bounds a write runs under now (one relaxed load).
#[inline]
pub fn bounds() -> Bounds {
    Bounds {
        max_runs: usize::try_from(MAX_RUNS.load(Ordering::Relaxed)).unwrap_or(DEFAULT_MAX_RUNS),
    }
}

/// The most keys one multi-limit call may name.
pub fn max_keys() -> usize {
    usize::try_from(MAX_KEYS.load(Ordering::Relaxed)).unwrap_or(1)
}

/// The largest `RL.ACQUIRE` limit.
pub fn max_leases() -> u64 {
    MAX_LEASES.load(Ordering::Relaxed)
}

/// Whether a window, lease or BLOCK of `us` is within `max-window-ms`.
pub fn duration_allowed(us: u64) -> bool {
    us <= MAX_WINDOW_MS.load(Ordering::Relaxed).saturating_mul(1000)
}

/// The error for a duration longer than `max-window-ms` (`what`: window, lease, BLOCK, period).
pub fn too_long(what: &str) -> String {
    format!(
        "ERR {what} is longer than ratelimit.max-window-ms ({} ms), the longest this server \
         allows",
        MAX_WINDOW_MS.load(Ordering::Relaxed)
    )
}

/// One numeric config.
pub struct Numeric {
    /// Its name after `ratelimit.` (and as a module argument).
    pub name: &'static CStr,
    /// The built-in default.
    pub default: u64,
    /// Smallest value.
    pub min: u64,
    /// Largest value.
    pub max: u64,
    /// `CONFIG SET` may change it.
    pub mutable: bool,
    /// Where the value lives.
    pub value: &'static AtomicU64,
    /// What a value means, for errors.
    pub meaning: &'static str,
}

/// The numeric configs.
pub static NUMERIC: [Numeric; 5] = [
    Numeric {
        name: c"ttl-sweep-rate",
        default: DEFAULT_SWEEP_RATE as u64,
        min: 0,
        max: u32::MAX as u64,
        mutable: true,
        value: &SWEEP_RATE,
        meaning: "a number of keys per second (0 = no sweep)",
    },
    Numeric {
        name: c"max-runs",
        default: DEFAULT_MAX_RUNS as u64,
        min: 2,
        max: FORMAT_MAX_RUNS as u64,
        mutable: true,
        value: &MAX_RUNS,
        meaning: "the most runs one moving-window key keeps",
    },
    Numeric {
        name: c"max-keys",
        default: DEFAULT_MAX_KEYS,
        min: 1,
        max: CEILING_MAX_KEYS,
        mutable: true,
        value: &MAX_KEYS,
        meaning: "the most keys one RL.ALLOWALL / RL.PEEKALL names",
    },
    Numeric {
        name: c"max-leases",
        default: DEFAULT_MAX_LEASES,
        min: 1,
        max: DEFAULT_MAX_LEASES,
        mutable: true,
        value: &MAX_LEASES,
        meaning: "the largest RL.ACQUIRE limit",
    },
    Numeric {
        name: c"max-window-ms",
        default: DEFAULT_MAX_WINDOW_MS,
        min: 1,
        max: DEFAULT_MAX_WINDOW_MS,
        mutable: true,
        value: &MAX_WINDOW_MS,
        meaning: "the longest window, lease or BLOCK in ms",
    },
];

/// What the `loadmodule` line asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleArgs {
    /// Register `RL.DEBUG` (fault injection for tests). Default off.
    pub debug_command: bool,
    /// Which drop-in names outside the `RL.` namespace to register. Default both.
    pub compat_commands: CompatCommands,
    /// Keys per second the TTL sweep may look at; 0 = no sweep.
    pub sweep_rate: u32,
    /// Subscribe to generic keyspace events to repair `PERSIST` at once. Default off.
    pub ttl_hook: bool,
    /// Every numeric config, in [`NUMERIC`] order.
    pub numeric: [u64; 5],
}

impl Default for ModuleArgs {
    fn default() -> ModuleArgs {
        ModuleArgs {
            debug_command: false,
            compat_commands: CompatCommands::default(),
            sweep_rate: DEFAULT_SWEEP_RATE,
            ttl_hook: false,
            numeric: NUMERIC.each_ref().map(|n| n.default),
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

impl CompatCommands {
    /// One bit per command (what the atomic in force holds).
    #[cfg(feature = "module")]
    pub(crate) fn bits(self) -> u8 {
        u8::from(self.cl_throttle) | (u8::from(self.gcra) << 1)
    }

    fn from_bits(bits: u8) -> CompatCommands {
        CompatCommands {
            cl_throttle: bits & 1 != 0,
            gcra: bits & 2 != 0,
        }
    }

    /// The value as `CONFIG GET` shows it (and as it parses back).
    pub fn text(self) -> &'static str {
        match (self.cl_throttle, self.gcra) {
            (true, true) => "cl.throttle,gcra",
            (true, false) => "cl.throttle",
            (false, true) => "gcra",
            (false, false) => "none",
        }
    }
}

const UNKNOWN: &str = "unknown module arguments: expected name value pairs with the names \
                       enable-debug-command, compat-commands, ttl-hook, ttl-sweep-rate, max-runs, \
                       max-keys, max-leases, max-window-ms";

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
/// let runs: [&[u8]; 2] = [b"max-runs", b"5000"];
/// assert_eq!(parse_module_args(&runs).unwrap().numeric[1], 5000);
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
        } else if let Some(i) = NUMERIC
            .iter()
            .position(|n| name.eq_ignore_ascii_case(n.name.to_bytes()))
        {
            let (Some(spec), Some(slot)) = (NUMERIC.get(i), parsed.numeric.get_mut(i)) else {
                return Err(UNKNOWN.into());
            };
            *slot = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|v| (spec.min..=spec.max).contains(v))
                .ok_or_else(|| range_error(spec))?;
        } else {
            return Err(UNKNOWN.into());
        }
    }
    parsed.sweep_rate =
        u32::try_from(parsed.numeric.first().copied().unwrap_or(0)).unwrap_or(u32::MAX);
    Ok(parsed)
}

pub(crate) fn range_error(spec: &Numeric) -> String {
    format!(
        "{} takes an integer from {} to {}: {}",
        spec.name.to_string_lossy(),
        spec.min,
        spec.max,
        spec.meaning
    )
}

pub(crate) fn yes_no(value: &[u8], name: &str) -> Result<bool, String> {
    if value.eq_ignore_ascii_case(b"yes") {
        Ok(true)
    } else if value.eq_ignore_ascii_case(b"no") {
        Ok(false)
    } else {
        Err(format!("{name} takes yes or no"))
    }
}

/// `cl.throttle,gcra` (any subset, any order, case-insensitive) or `none`.
pub(crate) fn parse_compat_commands(value: &[u8]) -> Result<CompatCommands, String> {
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

/// The load-time settings in force once the configs are loaded.
pub fn loaded() -> ModuleArgs {
    let mut args = ModuleArgs {
        debug_command: DEBUG_COMMAND.load(Ordering::Relaxed),
        compat_commands: CompatCommands::from_bits(COMPAT.load(Ordering::Relaxed)),
        sweep_rate: u32::try_from(SWEEP_RATE.load(Ordering::Relaxed)).unwrap_or(u32::MAX),
        ttl_hook: TTL_HOOK.load(Ordering::Relaxed),
        numeric: [0; 5],
    };
    args.numeric = NUMERIC.each_ref().map(|n| n.value.load(Ordering::Relaxed));
    args
}

#[cfg(feature = "module")]
mod register;
#[cfg(feature = "module")]
pub(crate) use register::register;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_arguments() {
        let cases: [&[&[u8]]; 17] = [
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
            &[b"max-runs", b"1"],
            &[b"max-runs", b"1000001"],
            &[b"max-keys", b"0"],
            &[b"max-leases", b"10001"],
            &[b"max-window-ms", b"31536000001"],
        ];
        for args in cases {
            assert!(parse_module_args(args).is_err(), "{args:?}");
        }
        let off: [&[u8]; 2] = [b"ENABLE-DEBUG-COMMAND", b"No"];
        assert_eq!(parse_module_args(&off), Ok(ModuleArgs::default()));
        let too_many: [&[u8]; 2] = [b"max-keys", b"300"];
        assert_eq!(
            parse_module_args(&too_many).unwrap_err(),
            "max-keys takes an integer from 1 to 256: the most keys one RL.ALLOWALL / \
             RL.PEEKALL names"
        );
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
    fn bounds_arguments() {
        let args: [&[u8]; 8] = [
            b"max-runs",
            b"1000",
            b"max-keys",
            b"4",
            b"max-leases",
            b"100",
            b"max-window-ms",
            b"86400000",
        ];
        let parsed = parse_module_args(&args).unwrap();
        assert_eq!(parsed.numeric, [5000, 1000, 4, 100, 86_400_000]);
        assert_eq!(
            ModuleArgs::default().numeric,
            [5000, 100_000, 16, 10_000, 31_536_000_000]
        );
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
            assert_eq!(
                parse_compat_commands(want.text().as_bytes()),
                Ok(want),
                "{want:?}"
            );
            assert_eq!(CompatCommands::from_bits(want.bits()), want);
        }
    }
}
