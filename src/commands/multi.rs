//! `RL.ALLOWALL` and `RL.PEEKALL`: several limits in one call, all or nothing (see
//! [`crate::algo::multi`]).
//!
//! `RL.ALLOWALL numkeys key [key …] limit window [options] [limit window [options] …]`: one
//! rule group per key, in key order. Every key is opened once; every group is decided against
//! its key before anything is written; then every key is charged, or none is. The writes of
//! one call replicate as one `MULTI`/`EXEC` (the server wraps a command's effects).
//!
//! Reply: `[allowed, binding, r1, r2, …]` — `binding` the 1-based group that decided, then one
//! five-integer array per group (the key after the call).
//!
//! Keys: `numkeys` keys from argument 2. Cluster routing reads them through `getkeys-api`
//! (servers route module commands by legacy key positions or that API, never by key specs,
//! and a `numkeys` command has no legacy positions); the key spec (KEYNUM) serves
//! `COMMAND GETKEYS`-style introspection and ACL key checks.

use crate::stats::cmd;
use std::ffi::{c_int, c_long};

use redis_module::raw;

use super::effects::{apply, Effect};
use super::limit::{mismatch_error, reply_fields};
use super::{run, CmdError, WRONGTYPE};
use crate::algo::multi::{allow_all, decide_all, AllDecision, Group};
use crate::algo::{Limiter, Outcome};
use crate::args::{echo, parse_count, parse_groups, ArgError};
use crate::datatype::key::LimiterKey;
use crate::ffi::{arg_bytes, reply_integers, Arg, Ctx};
use crate::{clock, stats};

/// `RL.ALLOWALL numkeys key [key …] limit window [options] …`
pub(crate) extern "C" fn rl_allowall(ctx: Ctx, argv: *mut Arg, argc: c_int) -> c_int {
    run(&cmd::RL_ALLOWALL, ctx, argv, argc, |ctx, args| {
        all_command(ctx, args, true)
    })
}

/// `RL.PEEKALL numkeys key [key …] limit window [options] …`
pub(crate) extern "C" fn rl_peekall(ctx: Ctx, argv: *mut Arg, argc: c_int) -> c_int {
    run(&cmd::RL_PEEKALL, ctx, argv, argc, |ctx, args| {
        all_command(ctx, args, false)
    })
}

/// The keys (`numkeys` of them from argument 2) when `args` names them validly.
fn keys_of(args: &[Arg]) -> Result<(&[Arg], &[Arg]), CmdError> {
    let [_, numkeys, rest @ ..] = args else {
        return Err(CmdError::WrongArity);
    };
    let n = parse_count(arg_bytes(*numkeys))
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| (1..=crate::config::max_keys()).contains(n))
        .ok_or_else(|| CmdError::Owned(ArgError::NumKeys.message()))?;
    // n keys, then at least `limit window` per key.
    if rest.len() < n.saturating_mul(3) {
        return Err(CmdError::Owned(format!(
            "ERR numkeys is {n}: give {n} keys, then one rule group (limit window [options]) \
             per key"
        )));
    }
    Ok(rest.split_at(n))
}

fn all_command(ctx: Ctx, args: &[Arg], commit: bool) -> Result<(), CmdError> {
    if unsafe { raw::RedisModule_IsKeysPositionRequest.map_or(0, |f| f(ctx)) } != 0 {
        declare_keys(ctx, args, commit);
        return Ok(());
    }
    let (keys, rest) = keys_of(args)?;
    let rule_args: Vec<&[u8]> = rest.iter().map(|&a| arg_bytes(a)).collect();
    let groups = parse_groups(&rule_args, keys.len()).map_err(|e| CmdError::Owned(e.message()))?;
    for (i, &a) in keys.iter().enumerate() {
        let name = arg_bytes(a);
        if keys.iter().take(i).any(|&b| arg_bytes(b) == name) {
            return Err(CmdError::Owned(format!(
                "ERR key '{}' is named twice: each key takes one rule group, once",
                echo(name)
            )));
        }
    }
    let now_us = clock::now_us();
    let decided = if commit {
        allow(ctx, keys, &groups, now_us)
    } else {
        peek(ctx, keys, &groups, now_us)
    };
    // Each key is one decision of its algorithm (an error: one for each key's algorithm).
    for (i, g) in groups.iter().enumerate() {
        let counters = stats::algo(g.rule.algorithm());
        counters.calls.add(1);
        match decided.as_ref().map(|d| d.groups.get(i)) {
            Ok(Some(d)) => counters.verdict(d.allowed),
            Ok(None) => {}
            Err(_) => counters.errors.add(1),
        }
    }
    let decision = decided?;
    stats::answered(decision.allowed);
    reply(ctx, &decision);
    Ok(())
}

/// `RL.PEEKALL`: every key opened read-only.
fn peek(ctx: Ctx, keys: &[Arg], groups: &[Group], now_us: u64) -> Result<AllDecision, CmdError> {
    let open: Vec<LimiterKey> = keys
        .iter()
        .map(|&k| LimiterKey::open(ctx, k, false))
        .collect();
    let mut stored = Vec::with_capacity(open.len());
    for k in &open {
        stored.push(k.get().map_err(|_| WRONGTYPE)?);
    }
    let stored: Vec<Option<&Limiter>> = stored.iter().map(|h| h.as_deref()).collect();
    decide_all(&stored, groups, now_us).map_err(|e| mismatch_error(e.mismatch))
}

/// `RL.ALLOWALL`: every key opened for writing, decided, then written.
fn allow(ctx: Ctx, keys: &[Arg], groups: &[Group], now_us: u64) -> Result<AllDecision, CmdError> {
    let bounds = crate::config::bounds();
    let mut open: Vec<LimiterKey> = keys
        .iter()
        .map(|&k| LimiterKey::open(ctx, k, true))
        .collect();
    let (decision, verdicts) = {
        let mut held = Vec::with_capacity(open.len());
        for k in &open {
            held.push(k.get().map_err(|_| WRONGTYPE)?);
        }
        let mut stored: Vec<Option<&mut Limiter>> =
            held.iter_mut().map(|h| h.as_deref_mut()).collect();
        let result = allow_all(&mut stored, groups, now_us, &bounds)
            .map_err(|e| mismatch_error(e.mismatch))?;
        drop(stored);
        // The handles store what changed as they go; the unchanged ones are not packed again.
        for (h, v) in held.iter_mut().zip(&result.1) {
            if let (Some(h), Outcome::Unchanged) = (h.as_mut(), &v.outcome) {
                h.unchanged();
            }
        }
        result
    };
    if decision.allowed {
        stats::ALLOWED.add(1);
    } else {
        stats::DENIED.add(1);
    }
    for (((key, &name), verdict), g) in open.iter_mut().zip(keys).zip(verdicts).zip(groups) {
        if verdict.clamped {
            stats::CLAMPED.add(1);
        }
        let charged = if verdict.decision.allowed { g.cost } else { 0 };
        apply(
            ctx,
            key,
            name,
            verdict.outcome,
            now_us,
            Effect::Charge(charged),
            c"rl.allowall",
        )?;
    }
    Ok(decision)
}

fn reply(ctx: Ctx, d: &AllDecision) {
    let (Some(array), Some(int)) = (unsafe { raw::RedisModule_ReplyWithArray }, unsafe {
        raw::RedisModule_ReplyWithLongLong
    }) else {
        return;
    };
    let len = c_long::try_from(d.groups.len().saturating_add(2)).unwrap_or(c_long::MAX);
    unsafe {
        array(ctx, len);
        int(ctx, i64::from(d.allowed));
        int(
            ctx,
            i64::try_from(d.binding.saturating_add(1)).unwrap_or(i64::MAX),
        );
    }
    for g in &d.groups {
        reply_integers(ctx, &reply_fields(g));
    }
}

/// Answers a keys-position request (cluster routing, `COMMAND GETKEYS`): the `numkeys` keys
/// from argument 2, or none when `numkeys` is not valid (the command then fails on its own).
fn declare_keys(ctx: Ctx, args: &[Arg], write: bool) {
    let Ok((keys, _)) = keys_of(args) else {
        return;
    };
    let flags = if write {
        raw::REDISMODULE_CMD_KEY_RW | raw::REDISMODULE_CMD_KEY_UPDATE
    } else {
        raw::REDISMODULE_CMD_KEY_RO | raw::REDISMODULE_CMD_KEY_ACCESS
    };
    for pos in 2..keys.len().saturating_add(2) {
        let Ok(pos) = c_int::try_from(pos) else {
            return;
        };
        unsafe {
            if let Some(with_flags) = raw::RedisModule_KeyAtPosWithFlags {
                with_flags(ctx, pos, flags as c_int);
            } else if let Some(at) = raw::RedisModule_KeyAtPos {
                at(ctx, pos);
            }
        }
    }
}
