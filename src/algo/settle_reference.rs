//! The reference semantics of `RL.CHARGE` / `RL.REFUND` (debts) and `BLOCK` on one key, written
//! from the definition on top of the counter models of [`super::reference`]: what the property
//! tests (`settle_tests.rs`) and the fuzz target `algo` compare the real code with.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use super::reference::{self, Model};
use super::{Decision, RetryAfter, Rule};

/// One key as the reference sees it: the rule it was written under, the model, the block.
#[derive(Clone, Debug)]
pub struct RefKey<M> {
    /// The rule it was written under.
    pub rule: Rule,
    /// The model.
    pub m: M,
    /// `(start, until)`.
    pub block: Option<(u64, u64)>,
}

/// What an operation did, in the reference's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Did {
    /// Wrote nothing.
    Nothing,
    /// Created the key.
    Created,
    /// Changed the key.
    Updated,
    /// Deleted the key.
    Emptied,
}

/// An operation on one key.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    /// `RL.ALLOW … COST cost BLOCK block_us` (0: no block).
    Allow {
        /// The cost.
        cost: u64,
        /// `BLOCK`, µs.
        block_us: u64,
    },
    /// `RL.PEEK … COST cost BLOCK block_us`.
    Peek {
        /// The cost.
        cost: u64,
        /// `BLOCK`, µs.
        block_us: u64,
    },
    /// `RL.CHARGE … n`.
    Charge(u64),
    /// `RL.REFUND … n`.
    Refund(u64),
}

impl<M: Model> RefKey<M> {
    /// The model as `rule` sees it at `now` (carried over when the rule changed).
    pub fn view(&self, rule: &Rule, now: u64) -> M {
        if self.rule == *rule {
            self.m.clone()
        } else {
            self.m.carry_over(&self.rule, rule, now)
        }
    }

    /// The block in force at `now`, as seen then: one that starts later starts now.
    pub fn block_at(&self, now: u64) -> Option<(u64, u64)> {
        self.block
            .map(|(s, u)| {
                if s > now {
                    (now, now + (u - s))
                } else {
                    (s, u)
                }
            })
            .filter(|&(_, u)| u > now)
    }

    /// Whether a denial under `rule` at `now` stores a converted or clamped state.
    pub fn converted(&self, rule: &Rule, now: u64) -> bool {
        self.rule != *rule
            || self.m.is_ahead(&self.rule, now)
            || self.block.is_some_and(|(s, _)| s > now)
    }
}

/// The reference semantics of one operation: the reply, what it did, the key after.
pub fn reference_op<M: Model>(
    key: Option<&RefKey<M>>,
    rule: &Rule,
    op: Op,
    now: u64,
) -> (Decision, Did, Option<RefKey<M>>) {
    let fresh = |m: M, block| RefKey {
        rule: *rule,
        m,
        block,
    };
    let unchanged = key.cloned();
    match op {
        Op::Allow { cost, block_us } | Op::Peek { cost, block_us } => {
            let writes = matches!(op, Op::Allow { .. });
            let Some(k) = key else {
                let (d, w) = reference::decide(&M::empty(), rule, cost, now);
                return match w {
                    Some(m) if writes => (d, Did::Created, Some(fresh(m, None))),
                    _ => (d, Did::Nothing, None),
                };
            };
            let view = k.view(rule, now);
            if let Some(b) = k.block_at(now) {
                let d = reference::decide_blocked(&view, rule, cost, now, b.1);
                let denied = matches!(d.retry_after, RetryAfter::After(_));
                if writes && denied && k.converted(rule, now) {
                    return (d, Did::Updated, Some(fresh(view.at(rule, now), Some(b))));
                }
                return (d, Did::Nothing, unchanged);
            }
            let (d, w) = reference::decide(&view, rule, cost, now);
            let denied = matches!(d.retry_after, RetryAfter::After(_));
            if denied && block_us > 0 {
                let b = (now, now + block_us);
                let d = reference::decide_blocked(&view, rule, cost, now, b.1);
                if !writes {
                    return (d, Did::Nothing, unchanged);
                }
                return (d, Did::Updated, Some(fresh(view.at(rule, now), Some(b))));
            }
            if !writes {
                return (d, Did::Nothing, unchanged);
            }
            match w {
                Some(m) => (d, Did::Updated, Some(fresh(m, None))),
                None if denied && k.converted(rule, now) => {
                    (d, Did::Updated, Some(fresh(view.at(rule, now), None)))
                }
                None => (d, Did::Nothing, unchanged),
            }
        }
        Op::Charge(cost) => {
            let until = |b: Option<(u64, u64)>| b.map_or(0, |b| b.1);
            let Some(k) = key else {
                if cost == 0 {
                    return (
                        reference::settled(&M::empty(), rule, now, 0),
                        Did::Nothing,
                        None,
                    );
                }
                let mut m = M::empty();
                m.force(rule, now, cost);
                let d = reference::settled(&m, rule, now, 0);
                return (d, Did::Created, Some(fresh(m, None)));
            };
            let mut view = k.view(rule, now);
            let b = k.block_at(now);
            if cost == 0 {
                return (
                    reference::settled(&view, rule, now, until(b)),
                    Did::Nothing,
                    unchanged,
                );
            }
            view.force(rule, now, cost);
            let d = reference::settled(&view, rule, now, until(b));
            (d, Did::Updated, Some(fresh(view, b)))
        }
        Op::Refund(amount) => {
            let Some(k) = key else {
                return (
                    reference::settled(&M::empty(), rule, now, 0),
                    Did::Nothing,
                    None,
                );
            };
            let mut view = k.view(rule, now);
            let b = k.block_at(now);
            let until = b.map_or(0, |b| b.1);
            if amount == 0 || reference::is_empty(&view, rule, now) {
                return (
                    reference::settled(&view, rule, now, until),
                    Did::Nothing,
                    unchanged,
                );
            }
            view.give_back(rule, now, amount);
            if reference::is_empty(&view, rule, now) && b.is_none() {
                let d = reference::settled(&M::empty(), rule, now, 0);
                return (d, Did::Emptied, None);
            }
            let d = reference::settled(&view, rule, now, until);
            (d, Did::Updated, Some(fresh(view, b)))
        }
    }
}
