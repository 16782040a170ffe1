//! Module arguments: `loadmodule <path> [enable-debug-command yes|no]
//! [compat-commands cl.throttle,gcra|none]`.

/// What the `loadmodule` line asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModuleArgs {
    /// Register `RL.DEBUG` (fault injection for tests). Default off.
    pub debug_command: bool,
    /// Which drop-in names outside the `RL.` namespace to register. Default both.
    pub compat_commands: CompatCommands,
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

const UNKNOWN: &str = "unknown module arguments: expected enable-debug-command yes|no and \
                       compat-commands cl.throttle,gcra|none";

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
/// ```
pub fn parse_module_args(args: &[&[u8]]) -> Result<ModuleArgs, String> {
    let mut parsed = ModuleArgs::default();
    for pair in args.chunks(2) {
        let [name, value] = pair else {
            return Err(UNKNOWN.into());
        };
        if name.eq_ignore_ascii_case(b"enable-debug-command") {
            parsed.debug_command = if value.eq_ignore_ascii_case(b"yes") {
                true
            } else if value.eq_ignore_ascii_case(b"no") {
                false
            } else {
                return Err("enable-debug-command takes yes or no".into());
            };
        } else if name.eq_ignore_ascii_case(b"compat-commands") {
            parsed.compat_commands = parse_compat_commands(value)?;
        } else {
            return Err(UNKNOWN.into());
        }
    }
    Ok(parsed)
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
        let cases: [&[&[u8]]; 8] = [
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
