//! Module arguments: `loadmodule <path> [enable-debug-command yes|no]`.

/// What the `loadmodule` line asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModuleArgs {
    /// Register `RL.DEBUG` (fault injection for tests). Default off.
    pub debug_command: bool,
}

const UNKNOWN: &str = "unknown module arguments: the only one is enable-debug-command yes|no";

/// Parses the arguments after the module path; `Err` says what is wrong (the load then fails).
///
/// ```
/// use redis_ratelimit::config::{parse_module_args, ModuleArgs};
/// assert_eq!(parse_module_args(&[]), Ok(ModuleArgs { debug_command: false }));
/// let on: [&[u8]; 2] = [b"enable-debug-command", b"yes"];
/// assert_eq!(parse_module_args(&on), Ok(ModuleArgs { debug_command: true }));
/// ```
pub fn parse_module_args(args: &[&[u8]]) -> Result<ModuleArgs, String> {
    let [name, value] = args else {
        return if args.is_empty() {
            Ok(ModuleArgs::default())
        } else {
            Err(UNKNOWN.into())
        };
    };
    if !name.eq_ignore_ascii_case(b"enable-debug-command") {
        return Err(UNKNOWN.into());
    }
    let debug_command = if value.eq_ignore_ascii_case(b"yes") {
        true
    } else if value.eq_ignore_ascii_case(b"no") {
        false
    } else {
        return Err("enable-debug-command takes yes or no".into());
    };
    Ok(ModuleArgs { debug_command })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_arguments() {
        let cases: [&[&[u8]]; 4] = [
            &[b"enable-debug-command"],
            &[b"enable-debug-command", b"maybe"],
            &[b"other", b"yes"],
            &[b"enable-debug-command", b"yes", b"x"],
        ];
        for args in cases {
            assert!(parse_module_args(args).is_err(), "{args:?}");
        }
        let off: [&[u8]; 2] = [b"ENABLE-DEBUG-COMMAND", b"No"];
        assert_eq!(parse_module_args(&off), Ok(ModuleArgs::default()));
    }
}
