//! Several limits in one call, all or nothing: `RL.ALLOWALL` and `RL.PEEKALL`.
//!
//! A call names one key per rule group (10 per second *and* 10,000 per day; requests *and*
//! tokens per minute). It is admitted iff every group would admit its cost now; then every group
//! is charged, else none is. Every group is decided first against its key without changing it
//! ([`decide_all`]); only when all admit are the keys charged ([`allow_all`]), with the same
//! function `RL.ALLOW` uses, so each key ends exactly as `RL.ALLOW` alone would have left it.
//!
//! The reply per group is the key after the call: a charged group as `RL.ALLOW` answers; in a
//! denied call a group that denied as `RL.ALLOW` answers its denial (which, like `RL.ALLOW`'s,
//! may start its `BLOCK` or store a converted state), and a group that would have admitted
//! answers `allowed 1` with its key as it stands (nothing charged: what a cost-0 look says).
//!
//! The *binding* group is the one that decided: in a denied call the denying group with the
//! largest `retry_after` (in the reply's ms; never = largest), in an admitted call the group with
//! the least `remaining`; ties go to the first. A denied call's own retry-after is the binding
//! group's, and it is exact: each group's admission only grows with time when nothing else
//! arrives, so the whole call passes exactly when the last of its groups does.
//!
//! ```
//! use redis_ratelimit::algo::multi::{allow_all, Group};
//! use redis_ratelimit::algo::{Algorithm, Bounds, Limiter, Outcome, Rule};
//! let per_second = Rule::new(Algorithm::FixedWindow, 2, 1_000_000, None).unwrap();
//! let per_day = Rule::new(Algorithm::FixedWindow, 3, 86_400_000_000, None).unwrap();
//! let groups = [
//!     Group { rule: per_second, cost: 1, block_us: 0 },
//!     Group { rule: per_day, cost: 1, block_us: 0 },
//! ];
//! let (mut a, mut b): (Option<Limiter>, Option<Limiter>) = (None, None);
//! for (t, admitted) in [(0, true), (1, true), (2, false), (1_000_000, true), (1_000_001, false)] {
//!     let (d, verdicts) =
//!         allow_all(&mut [a.as_mut(), b.as_mut()], &groups, t, &Bounds::DEFAULT).unwrap();
//!     assert_eq!(d.allowed, admitted, "at {t}");
//!     for (slot, v) in [&mut a, &mut b].into_iter().zip(verdicts) {
//!         if let Outcome::Created(l) = v.outcome {
//!             *slot = Some(l);
//!         }
//!     }
//! }
//! // The third second's request was refused by the daily limit (group 2): the per-second key
//! // was not charged for it.
//! let d = redis_ratelimit::algo::multi::decide_all(&[a.as_ref(), b.as_ref()], &groups, 1_000_002)
//!     .unwrap();
//! assert_eq!((d.binding, d.groups[0].remaining), (1, 1));
//! ```

use super::limiter::{AlgorithmMismatch, Limiter, Outcome, Verdict};
use super::{Bounds, Decision, RetryAfter, Rule};

/// Most keys (rule groups) one call may name. A constant for now: every call is bounded by it.
pub const MAX_KEYS: usize = 16;

/// One rule group: the rule, the cost, and `BLOCK` (µs; 0 for none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Group {
    /// The rule.
    pub rule: Rule,
    /// What this request costs under it.
    pub cost: u64,
    /// `BLOCK` duration in µs, 0 for none.
    pub block_us: u64,
}

/// The decision of a multi-key call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllDecision {
    /// Every group admitted (and, for `RL.ALLOWALL`, was charged).
    pub allowed: bool,
    /// The group that decided (0-based; see the module docs).
    pub binding: usize,
    /// Each group's key after the call, in key order.
    pub groups: Vec<Decision>,
}

/// A group named an algorithm other than the one stored at its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupMismatch {
    /// Which group (0-based).
    pub index: usize,
    /// The mismatch.
    pub mismatch: AlgorithmMismatch,
}

/// Decides every group against its key, changing nothing: what `RL.PEEKALL` replies, and what
/// `RL.ALLOWALL` then does. `keys[i]` is group `i`'s stored limiter (`None`: absent).
pub fn decide_all(
    keys: &[Option<&Limiter>],
    groups: &[Group],
    now_us: u64,
) -> Result<AllDecision, GroupMismatch> {
    let mut own = Vec::with_capacity(groups.len());
    for (index, (key, g)) in keys.iter().zip(groups).enumerate() {
        let d = Limiter::peek_with(*key, &g.rule, g.cost, now_us, g.block_us)
            .map_err(|mismatch| GroupMismatch { index, mismatch })?;
        own.push(d);
    }
    let allowed = own.iter().all(|d| d.allowed);
    if allowed {
        let binding = first_best(&own, |d| std::cmp::Reverse(d.remaining));
        return Ok(AllDecision {
            allowed,
            binding,
            groups: own,
        });
    }
    let binding = first_best(&own, |d| if d.allowed { 0 } else { retry_rank(d) });
    let mut groups_after = Vec::with_capacity(own.len());
    for ((d, key), g) in own.iter().zip(keys).zip(groups) {
        groups_after.push(if d.allowed {
            // Would have admitted: nothing was charged; the key as it stands.
            Limiter::peek_with(*key, &g.rule, 0, now_us, 0).unwrap_or(*d)
        } else {
            *d
        });
    }
    Ok(AllDecision {
        allowed,
        binding,
        groups: groups_after,
    })
}

/// `RL.ALLOWALL` on distinct keys: decides every group ([`decide_all`]); if all admit, charges
/// every key as `RL.ALLOW` would, else only the denying groups act as `RL.ALLOW`'s denial does
/// (start their `BLOCK`, store a converted state). Returns the decision and, per key, what to
/// store. Errors before anything changed.
pub fn allow_all(
    keys: &mut [Option<&mut Limiter>],
    groups: &[Group],
    now_us: u64,
    bounds: &Bounds,
) -> Result<(AllDecision, Vec<Verdict>), GroupMismatch> {
    let plan = {
        let view: Vec<Option<&Limiter>> = keys.iter().map(|k| k.as_deref()).collect();
        decide_all(&view, groups, now_us)?
    };
    let mut verdicts = Vec::with_capacity(groups.len());
    for (index, ((key, g), d)) in keys.iter_mut().zip(groups).zip(&plan.groups).enumerate() {
        let acts = plan.allowed || !d.allowed;
        let v = if acts {
            Limiter::decide_with(
                key.as_deref_mut(),
                &g.rule,
                g.cost,
                now_us,
                bounds,
                g.block_us,
            )
            .map_err(|mismatch| GroupMismatch { index, mismatch })?
        } else {
            Verdict {
                decision: *d,
                outcome: Outcome::Unchanged,
                clamped: false,
            }
        };
        verdicts.push(v);
    }
    Ok((plan, verdicts))
}

/// The reply's `retry_after_ms` as a rank: never passes above every delay.
fn retry_rank(d: &Decision) -> u64 {
    match d.retry_after {
        RetryAfter::Now => 0,
        RetryAfter::After(us) => us.div_ceil(1000).max(1),
        RetryAfter::Never => u64::MAX,
    }
}

/// The index of the first largest `key`.
fn first_best<K: Ord>(decisions: &[Decision], key: impl Fn(&Decision) -> K) -> usize {
    let mut best = 0;
    for (i, d) in decisions.iter().enumerate().skip(1) {
        if let Some(b) = decisions.get(best) {
            if key(d) > key(b) {
                best = i;
            }
        }
    }
    best
}
