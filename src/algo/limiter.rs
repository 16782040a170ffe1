//! What one key stores — the rule last applied and its kind's state — and the dispatch of every
//! request to that kind, by the stored state.

use super::block::Block;
use super::kind::{Bounds, Change, Fields, Hit};
use super::{Algorithm, Decision, RetryAfter, Rule, State};

/// What one key stores: the rule last applied and the algorithm's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limiter {
    /// The rule the state was last written under.
    pub rule: Rule,
    /// The algorithm's state (its variant always matches `rule.algorithm()`).
    pub state: State,
}

/// A request named an algorithm other than the one stored at the key (the glue replies with an
/// error and leaves the key alone).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlgorithmMismatch {
    /// The algorithm of the stored state.
    pub stored: Algorithm,
    /// The algorithm the request asked for.
    pub requested: Algorithm,
}

/// What [`Limiter::decide`] (or [`Limiter::replay`]) did to the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to store (denied, peek-like, or cost 0).
    Unchanged,
    /// The stored limiter was changed in place: store it (expiry, replication).
    Updated,
    /// The key was absent and this limiter must be created.
    Created(Limiter),
    /// The stored limiter holds nothing any more: delete the key ([`Limiter::replay`] only).
    Emptied,
}

/// Everything one decision tells the glue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The reply.
    pub decision: Decision,
    /// What to store.
    pub outcome: Outcome,
    /// The stored state lay ahead of the clock and was read clamped (a clock step back).
    pub clamped: bool,
}

impl Limiter {
    /// Decides a request of `cost` at `now_us` under `rule` against the key's stored limiter
    /// (`None` = absent key), and updates it in place when something must be stored.
    ///
    /// Stores after an allowed request with `cost > 0`, and after a denied one (`cost` ≤
    /// capacity) whose stored state had to be converted to a new rule or clamped after a clock
    /// step: then the new rule (or the clamp) takes effect at once and the denial's
    /// `retry_after` and `reset_after` (= the key's TTL) are exact.
    ///
    /// ```
    /// use redis_ratelimit::algo::{Algorithm, Limiter, Outcome, RetryAfter, Rule};
    /// let rule = Rule::new(Algorithm::FixedWindow, 1, 1_000, None).unwrap();
    /// let (d, outcome) = Limiter::decide(None, &rule, 1, 5_000).unwrap();
    /// let Outcome::Created(mut stored) = outcome else { unreachable!() };
    /// let (d, outcome) = Limiter::decide(Some(&mut stored), &rule, 1, 5_400).unwrap();
    /// assert_eq!((d.allowed, d.retry_after, outcome), (false, RetryAfter::After(600), Outcome::Unchanged));
    /// let gcra = Rule::new(Algorithm::Gcra, 1, 1_000, None).unwrap();
    /// assert!(Limiter::decide(Some(&mut stored), &gcra, 1, 5_400).is_err());
    /// ```
    pub fn decide(
        stored: Option<&mut Limiter>,
        rule: &Rule,
        cost: u64,
        now_us: u64,
    ) -> Result<(Decision, Outcome), AlgorithmMismatch> {
        Limiter::decide_within(stored, rule, cost, now_us, &Bounds::DEFAULT)
            .map(|v| (v.decision, v.outcome))
    }

    /// [`Limiter::decide`] under the operator's `bounds`, with everything the glue needs.
    pub fn decide_within(
        stored: Option<&mut Limiter>,
        rule: &Rule,
        cost: u64,
        now_us: u64,
        bounds: &Bounds,
    ) -> Result<Verdict, AlgorithmMismatch> {
        Limiter::decide_with(stored, rule, cost, now_us, bounds, 0)
    }

    /// [`Limiter::decide_within`] with `BLOCK block_us` (0: none; see [`super::block`]).
    ///
    /// A key under a block denies every request of cost ≥ 1 and writes nothing (unless, as any
    /// denial, it finds the state under another rule or ahead of the clock: then it stores it
    /// converted, block included). Otherwise the algorithm decides; a denial (cost within the
    /// capacity) with a `block_us` starts a block at `now_us` — a write: the state as `rule`
    /// sees it now is stored with the block. Any other write drops a block that has ended.
    ///
    /// ```
    /// use redis_ratelimit::algo::{Algorithm, Bounds, Limiter, Outcome, RetryAfter, Rule};
    /// let rule = Rule::new(Algorithm::FixedWindow, 1, 1_000, None).unwrap();
    /// let b = Bounds::DEFAULT;
    /// let Outcome::Created(mut l) = Limiter::decide_with(None, &rule, 1, 0, &b, 0).unwrap().outcome
    /// else { unreachable!() };
    /// // Denied at 100 with BLOCK 5 ms: blocked until 5 100, past the window's end at 1 000.
    /// let v = Limiter::decide_with(Some(&mut l), &rule, 1, 100, &b, 5_000).unwrap();
    /// assert_eq!((v.decision.retry_after, v.outcome), (RetryAfter::After(5_000), Outcome::Updated));
    /// assert_eq!(l.expires_at_us(), 5_100);
    /// // During the block: denied, nothing written.
    /// let v = Limiter::decide_with(Some(&mut l), &rule, 1, 3_000, &b, 5_000).unwrap();
    /// assert_eq!((v.decision.retry_after, v.outcome), (RetryAfter::After(2_100), Outcome::Unchanged));
    /// assert!(Limiter::decide_with(Some(&mut l), &rule, 1, 5_100, &b, 0).unwrap().decision.allowed);
    /// ```
    pub fn decide_with(
        stored: Option<&mut Limiter>,
        rule: &Rule,
        cost: u64,
        now_us: u64,
        bounds: &Bounds,
        block_us: u64,
    ) -> Result<Verdict, AlgorithmMismatch> {
        let Some(stored) = stored else {
            let (decision, created) = rule.algorithm().decide_absent(rule, cost, now_us);
            let outcome = match created {
                Some(state) => Outcome::Created(Limiter { rule: *rule, state }),
                None => Outcome::Unchanged,
            };
            return Ok(Verdict {
                decision,
                outcome,
                clamped: false,
            });
        };
        stored.check_algorithm(rule)?;
        if stored.answers_as_absent(cost, now_us) {
            let (decision, created) = rule.algorithm().decide_absent(rule, cost, now_us);
            let outcome = match created {
                Some(state) => {
                    *stored = Limiter { rule: *rule, state };
                    Outcome::Updated
                }
                None => Outcome::Unchanged,
            };
            return Ok(Verdict {
                decision,
                outcome,
                clamped: false,
            });
        }
        let clamped = stored.is_ahead(now_us);
        if let Some(block) = stored.active_block(now_us) {
            return Ok(stored.decide_blocked(block, rule, cost, now_us, clamped));
        }
        let old = stored.rule;
        let (mut decision, change) = stored.state.decide(&old, rule, cost, now_us, bounds);
        let starts = match decision.retry_after {
            RetryAfter::After(_) => Block::new(now_us, block_us),
            _ => None,
        };
        let mut outcome = match change {
            Change::Unchanged => Outcome::Unchanged,
            Change::Updated => Outcome::Updated,
            Change::Emptied => Outcome::Emptied,
        };
        if let Some(block) = starts {
            if outcome == Outcome::Unchanged {
                // The state as `rule` sees it now is stored with the block (what a replica's
                // replay of the write derives). A denial means something is left.
                let state = stored
                    .state
                    .carried_over(&old, rule, now_us)
                    .unwrap_or_else(|| rule.algorithm().nothing(rule, now_us));
                stored.state.set_kind(state);
                outcome = Outcome::Updated;
            }
            decision = blocked(decision, block, now_us, cost);
        }
        if outcome == Outcome::Updated {
            stored.rule = *rule;
            stored.state.set_block(starts);
        }
        Ok(Verdict {
            decision,
            outcome,
            clamped,
        })
    }

    /// Whether a request of `cost` at `now_us` must be decided as on an absent key, though
    /// the key is stored: past its expiry ms a key equals an absent one (the server removes a
    /// key once `now > expiry` in ms, but a node may still hold one it has not looked at).
    /// Every kind reads such a state as empty, so only a `COST 0` that writes
    /// (limits-sliding-window: limits' acquire of 0 starts a current counter on a limiter
    /// without one) needs it. During its expiry ms a limits-sliding key still counts, as
    /// limits' keys do.
    fn answers_as_absent(&self, cost: u64, now_us: u64) -> bool {
        cost == 0 && self.state.algorithm().cost_zero_writes() && self.is_over(now_us)
    }

    /// A request against a key under `block` (as seen at `now_us`).
    fn decide_blocked(
        &mut self,
        block: Block,
        rule: &Rule,
        cost: u64,
        now_us: u64,
        clamped: bool,
    ) -> Verdict {
        let decision = self.under_block(block, rule, cost, now_us);
        let converted = clamped || self.rule != *rule;
        let outcome = if converted && matches!(decision.retry_after, RetryAfter::After(_)) {
            let state = self
                .state
                .carried_over(&self.rule, rule, now_us)
                .unwrap_or_else(|| rule.algorithm().nothing(rule, now_us));
            self.state.set_kind(state);
            self.state.set_block(Some(block));
            self.rule = *rule;
            Outcome::Updated
        } else {
            Outcome::Unchanged
        };
        Verdict {
            decision,
            outcome,
            clamped,
        }
    }

    /// The decision for a request under `block` (as seen at `now_us`): the algorithm's own
    /// decision, without its charge, under the block.
    fn under_block(&self, block: Block, rule: &Rule, cost: u64, now_us: u64) -> Decision {
        let d = self.state.peek(&self.rule, rule, cost, now_us);
        let d = if d.allowed && cost > 0 {
            // The algorithm would admit and charge: the key as it stands is a look's.
            Decision {
                reset_after_us: self.state.peek(&self.rule, rule, 0, now_us).reset_after_us,
                ..d
            }
        } else {
            d
        };
        blocked(d, block, now_us, cost)
    }

    /// [`Limiter::peek`] with `BLOCK block_us`: the reply [`Limiter::decide_with`] would give.
    pub fn peek_with(
        stored: Option<&Limiter>,
        rule: &Rule,
        cost: u64,
        now_us: u64,
        block_us: u64,
    ) -> Result<Decision, AlgorithmMismatch> {
        let Some(l) = stored else {
            // An absent key admits any cost within the capacity: nothing starts a block.
            return Ok(rule.algorithm().decide_absent(rule, cost, now_us).0);
        };
        l.check_algorithm(rule)?;
        if l.answers_as_absent(cost, now_us) {
            return Ok(rule.algorithm().decide_absent(rule, cost, now_us).0);
        }
        if let Some(block) = l.active_block(now_us) {
            return Ok(l.under_block(block, rule, cost, now_us));
        }
        let d = l.state.peek(&l.rule, rule, cost, now_us);
        Ok(match (d.retry_after, Block::new(now_us, block_us)) {
            (RetryAfter::After(_), Some(block)) => blocked(d, block, now_us, cost),
            _ => d,
        })
    }

    /// Charges `cost` unconditionally (`RL.CHARGE`): past the capacity, the excess is a debt
    /// that later requests wait out (each kind defines and bounds it). A block in force stays.
    /// The decision describes the key after the call (see [`Limiter::settled`]); `cost` 0 only
    /// looks.
    ///
    /// ```
    /// use redis_ratelimit::algo::{Algorithm, Bounds, Limiter, Outcome, RetryAfter, Rule};
    /// let rule = Rule::new(Algorithm::Gcra, 10, 1_000_000, None).unwrap(); // T = 100 ms, τ = 1 s
    /// let v = Limiter::charge(None, &rule, 13, 0, &Bounds::DEFAULT).unwrap();
    /// // 3 cells of debt: a request passes once 4 cells have drained.
    /// assert_eq!((v.decision.allowed, v.decision.remaining), (false, 0));
    /// assert_eq!(v.decision.retry_after, RetryAfter::After(400_000));
    /// assert_eq!(v.decision.reset_after_us, 1_300_000);
    /// assert!(matches!(v.outcome, Outcome::Created(_)));
    /// ```
    pub fn charge(
        stored: Option<&mut Limiter>,
        rule: &Rule,
        cost: u64,
        now_us: u64,
        bounds: &Bounds,
    ) -> Result<Verdict, AlgorithmMismatch> {
        if cost == 0 {
            let decision = Limiter::settled(stored.as_deref(), rule, now_us)?;
            return Ok(Verdict {
                decision,
                outcome: Outcome::Unchanged,
                clamped: false,
            });
        }
        let Some(stored) = stored else {
            let created = Limiter {
                rule: *rule,
                state: rule.algorithm().charge_absent(rule, cost, now_us),
            };
            return Ok(Verdict {
                decision: Limiter::settled(Some(&created), rule, now_us)?,
                outcome: Outcome::Created(created),
                clamped: false,
            });
        };
        stored.check_algorithm(rule)?;
        let clamped = stored.is_ahead(now_us);
        let old = stored.rule;
        let block = stored.active_block(now_us);
        stored.state.charge(&old, rule, cost, now_us, bounds);
        stored.rule = *rule;
        stored.state.set_block(block);
        Ok(Verdict {
            decision: Limiter::settled(Some(stored), rule, now_us)?,
            outcome: Outcome::Updated,
            clamped,
        })
    }

    /// Gives back up to `amount` of what was charged (`RL.REFUND`), never below empty (each kind
    /// says from where). An absent key, or one that holds nothing now, is left alone; a refund
    /// that leaves nothing empties the key ([`Outcome::Emptied`]) — unless a block is in force,
    /// which the key keeps. The decision describes the key after the call.
    ///
    /// ```
    /// use redis_ratelimit::algo::{Algorithm, Bounds, Limiter, Outcome, Rule};
    /// let rule = Rule::new(Algorithm::SlidingWindow, 10, 1_000_000, None).unwrap();
    /// let b = Bounds::DEFAULT;
    /// let Outcome::Created(mut l) = Limiter::charge(None, &rule, 7, 0, &b).unwrap().outcome
    /// else { unreachable!() };
    /// let v = Limiter::refund(Some(&mut l), &rule, 5, 10, &b).unwrap();
    /// assert_eq!((v.decision.remaining, v.outcome), (8, Outcome::Updated));
    /// let v = Limiter::refund(Some(&mut l), &rule, 5, 10, &b).unwrap();
    /// assert_eq!((v.decision.remaining, v.outcome), (10, Outcome::Emptied));
    /// ```
    pub fn refund(
        stored: Option<&mut Limiter>,
        rule: &Rule,
        amount: u64,
        now_us: u64,
        bounds: &Bounds,
    ) -> Result<Verdict, AlgorithmMismatch> {
        let Some(stored) = stored else {
            return Ok(Verdict {
                decision: Limiter::settled(None, rule, now_us)?,
                outcome: Outcome::Unchanged,
                clamped: false,
            });
        };
        stored.check_algorithm(rule)?;
        let clamped = stored.is_ahead(now_us);
        if amount == 0 {
            return Ok(Verdict {
                decision: Limiter::settled(Some(stored), rule, now_us)?,
                outcome: Outcome::Unchanged,
                clamped,
            });
        }
        let old = stored.rule;
        let block = stored.active_block(now_us);
        let change = stored.state.refund(&old, rule, amount, now_us, bounds);
        let outcome = stored.after_change(change, rule, now_us, block);
        let decision = match outcome {
            Outcome::Emptied => Limiter::settled(None, rule, now_us)?,
            _ => Limiter::settled(Some(stored), rule, now_us)?,
        };
        Ok(Verdict {
            decision,
            outcome,
            clamped,
        })
    }

    /// What a change by a charge, refund or replay at `now_us` under `rule` leaves: the rule
    /// stored, `block` kept (`None` drops an ended one); a state emptied while a block is in
    /// force becomes one that holds nothing, and the key lives on for the block.
    fn after_change(
        &mut self,
        change: Change,
        rule: &Rule,
        now_us: u64,
        block: Option<Block>,
    ) -> Outcome {
        match (change, block) {
            (Change::Unchanged, _) => Outcome::Unchanged,
            (Change::Emptied, None) => Outcome::Emptied,
            (Change::Emptied, Some(_)) | (Change::Updated, _) => {
                if change == Change::Emptied {
                    self.state.set_kind(rule.algorithm().nothing(rule, now_us));
                }
                self.rule = *rule;
                self.state.set_block(block);
                Outcome::Updated
            }
        }
    }

    /// The key after a `RL.CHARGE` / `RL.REFUND` (`None`: absent), as their reply says it:
    /// `allowed` whether a cost-1 request would pass now, `remaining` how many would (nothing
    /// charged), `retry_after` when a cost-1 request passes (`Now` if allowed), `reset_after`
    /// when the key is full again — a block and a debt included.
    pub fn settled(
        l: Option<&Limiter>,
        rule: &Rule,
        now_us: u64,
    ) -> Result<Decision, AlgorithmMismatch> {
        if l.is_none() {
            // Nothing stored: full capacity (a kind whose `COST 0` creates a state, as
            // limits-sliding-window does, would report that state's expiry).
            return Ok(Decision::look(rule.capacity(), rule.capacity(), 0));
        }
        let look = Limiter::peek_with(l, rule, 0, now_us, 0)?;
        let one = Limiter::peek_with(l, rule, 1, now_us, 0)?;
        Ok(Decision {
            allowed: one.allowed,
            retry_after: one.retry_after,
            ..look
        })
    }

    /// The block in force at `now_us`, as seen then (see [`Block::at`]); `None` when there is
    /// none or it has ended.
    pub fn active_block(&self, now_us: u64) -> Option<Block> {
        self.state
            .block()
            .filter(|b| b.active(now_us))
            .map(|b| b.at(now_us))
    }

    /// When the block in force at `now_us` ends (0: none), for `RL.INSPECT`.
    pub fn blocked_until_us(&self, now_us: u64) -> u64 {
        self.active_block(now_us).map_or(0, |b| b.until_us)
    }

    /// The reply [`Limiter::decide`] would give, without changing anything.
    ///
    /// ```
    /// use redis_ratelimit::algo::{Algorithm, Limiter, Outcome, Rule};
    /// let rule = Rule::new(Algorithm::Gcra, 10, 1_000_000, None).unwrap();
    /// let (_, Outcome::Created(stored)) = Limiter::decide(None, &rule, 4, 0).unwrap() else {
    ///     unreachable!()
    /// };
    /// assert_eq!(Limiter::peek(Some(&stored), &rule, 1, 0).unwrap().remaining, 5);
    /// assert_eq!(Limiter::peek(None, &rule, 1, 0).unwrap().remaining, 9);
    /// ```
    pub fn peek(
        stored: Option<&Limiter>,
        rule: &Rule,
        cost: u64,
        now_us: u64,
    ) -> Result<Decision, AlgorithmMismatch> {
        Limiter::peek_with(stored, rule, cost, now_us, 0)
    }

    /// Replays a write the master made (`RL.APPLY`): no limit is checked, the master decided.
    /// Only for kinds that replicate hits (moving-window); others are a mismatch.
    ///
    /// ```
    /// use redis_ratelimit::algo::{Algorithm, Bounds, Limiter, Outcome, Rule};
    /// let rule = Rule::new(Algorithm::MovingWindow, 2, 1_000, None).unwrap();
    /// let (_, Outcome::Created(master)) = Limiter::decide(None, &rule, 2, 10).unwrap() else {
    ///     unreachable!()
    /// };
    /// let hit = master.hit(10, 2, &Bounds::DEFAULT).unwrap();
    /// let Outcome::Created(replica) = Limiter::replay(None, &hit).unwrap() else {
    ///     unreachable!()
    /// };
    /// assert_eq!(master, replica);
    /// ```
    pub fn replay(stored: Option<&mut Limiter>, hit: &Hit) -> Result<Outcome, AlgorithmMismatch> {
        let requested = hit.rule.algorithm();
        let Some(stored) = stored else {
            if requested.replication() != super::Replication::Hits {
                return Err(AlgorithmMismatch {
                    stored: requested,
                    requested,
                });
            }
            if hit.refund {
                return Ok(Outcome::Unchanged);
            }
            return Ok(match requested.replay_absent(hit) {
                Some(mut state) => {
                    state.set_block(hit.block);
                    Outcome::Created(Limiter {
                        rule: hit.rule,
                        state,
                    })
                }
                None => Outcome::Unchanged,
            });
        };
        stored.check_algorithm(&hit.rule)?;
        let old = stored.rule;
        let change = stored.state.replay(&old, hit).ok_or(AlgorithmMismatch {
            stored: requested,
            requested,
        })?;
        // The master sent the block its key has after the write: the same is left here.
        Ok(stored.after_change(change, &hit.rule, hit.now_us, hit.block))
    }

    /// How the write just made at `now_us` (charging `cost`) replicates as a hit, for kinds
    /// that replicate hits; `None` for the others (they replicate their state). The hit carries
    /// the key's block, if one is in force (only this release's replay knows blocks).
    pub fn hit(&self, now_us: u64, cost: u64, bounds: &Bounds) -> Option<Hit> {
        let mut hit = self.state.hit(&self.rule, now_us, cost, bounds)?;
        hit.block = self.state.block();
        hit.needs_current_replay |= hit.block.is_some();
        Some(hit)
    }

    /// How the refund of `amount` just made at `now_us` replicates (as [`Limiter::hit`]).
    pub fn refund_hit(&self, now_us: u64, amount: u64, bounds: &Bounds) -> Option<Hit> {
        let mut hit = self.hit(now_us, amount, bounds)?;
        hit.refund = true;
        hit.needs_current_replay = true;
        Some(hit)
    }

    /// Whether this limiter, after replaying `hit`, looks as the master said its own did.
    pub fn agrees_with(&self, hit: &Hit) -> bool {
        match (hit.after, self.hit(hit.now_us, hit.cost, &hit.bounds)) {
            (Some(theirs), Some(ours)) => ours.after == Some(theirs),
            _ => true,
        }
    }

    /// This limiter as `rule` sees it at `now_us`: clamped and aged under its own rule, then
    /// carried over to `rule`; `Ok(None)` when nothing is left (as absent).
    ///
    /// ```
    /// use redis_ratelimit::algo::{Algorithm, FixedWindowState, Limiter, Rule, State};
    /// let old = Rule::new(Algorithm::FixedWindow, 5, 1_000, None).unwrap();
    /// let new = Rule::new(Algorithm::FixedWindow, 5, 300, None).unwrap();
    /// let state = State::FixedWindow(FixedWindowState { window_start_us: 10_000, count: 5 });
    /// let l = Limiter { rule: old, state: state.clone() };
    /// assert_eq!(l.carried_over(&new, 10_299).unwrap(), Some(Limiter { rule: new, state }));
    /// assert_eq!(l.carried_over(&new, 10_300).unwrap(), None); // its new window is over
    /// ```
    pub fn carried_over(
        &self,
        rule: &Rule,
        now_us: u64,
    ) -> Result<Option<Limiter>, AlgorithmMismatch> {
        self.check_algorithm(rule)?;
        Ok(self
            .state
            .carried_over(&self.rule, rule, now_us)
            .map(|state| Limiter { rule: *rule, state }))
    }

    /// Whether the state is ahead of anything possible at `now_us` (left by a clock that stepped
    /// back): such a state is read as the most restrictive state possible at `now_us`.
    ///
    /// ```
    /// use redis_ratelimit::algo::{Algorithm, FixedWindowState, Limiter, Rule, State};
    /// let rule = Rule::new(Algorithm::FixedWindow, 5, 1_000, None).unwrap();
    /// let state = State::FixedWindow(FixedWindowState { window_start_us: 10_000, count: 5 });
    /// let l = Limiter { rule, state };
    /// assert!(l.is_ahead(9_999) && !l.is_ahead(10_000));
    /// ```
    pub fn is_ahead(&self, now_us: u64) -> bool {
        self.state.is_ahead(&self.rule, now_us)
            || self.state.block().is_some_and(|b| b.is_ahead(now_us))
    }

    fn check_algorithm(&self, rule: &Rule) -> Result<(), AlgorithmMismatch> {
        if self.state.algorithm() == rule.algorithm() {
            Ok(())
        } else {
            Err(AlgorithmMismatch {
                stored: self.state.algorithm(),
                requested: rule.algorithm(),
            })
        }
    }

    /// Absolute µs at which this limiter becomes equivalent to an absent key (the key's expiry).
    /// For a written state this is > now; 0 for a state that holds nothing.
    ///
    /// ```
    /// use redis_ratelimit::algo::{Algorithm, Limiter, Outcome, Rule};
    /// let rule = Rule::new(Algorithm::Gcra, 10, 1_000_000, None).unwrap();
    /// let (_, Outcome::Created(stored)) = Limiter::decide(None, &rule, 3, 7).unwrap() else {
    ///     unreachable!()
    /// };
    /// assert_eq!(stored.expires_at_us(), 7 + 3 * 100_000);
    /// ```
    pub fn expires_at_us(&self) -> u64 {
        let state = self.state.expires_at_us(&self.rule);
        self.state.block().map_or(state, |b| state.max(b.until_us))
    }

    /// Whether the stored limiter equals an absent one at `now_us`: past its expiry, or past
    /// its expiry's ms for a kind whose state lives through that ms
    /// ([`Kind::LIVES_THROUGH_EXPIRY_MS`](super::kind::Kind::LIVES_THROUGH_EXPIRY_MS)). The server may still hold such a key.
    pub fn is_over(&self, now_us: u64) -> bool {
        let at = self.expires_at_us();
        if self.state.algorithm().lives_through_expiry_ms() {
            at.div_ceil(1000) < now_us / 1000
        } else {
            at <= now_us
        }
    }

    /// Whether a decoded limiter (from RDB / a replicated payload) satisfies every invariant:
    /// the state variant matches `rule.algorithm()`, counts are at most `MAX_COUNT`, timestamps
    /// at most `MAX_TIMESTAMP_US`, and a sliding `window_start_us` is a multiple of the window.
    ///
    /// Zero counts are accepted (such a state behaves as an absent key).
    ///
    /// ```
    /// use redis_ratelimit::algo::{Algorithm, Limiter, Rule, SlidingWindowState, State};
    /// let rule = Rule::new(Algorithm::SlidingWindow, 10, 1_000, None).unwrap();
    /// let ok = SlidingWindowState { window_start_us: 5_000, current: 3, previous: 9 };
    /// assert!(Limiter { rule, state: State::SlidingWindow(ok) }.is_valid());
    /// let unaligned = SlidingWindowState { window_start_us: 5_001, ..ok };
    /// assert!(!Limiter { rule, state: State::SlidingWindow(unaligned) }.is_valid());
    /// ```
    pub fn is_valid(&self) -> bool {
        self.state.algorithm() == self.rule.algorithm() && self.state.is_valid(&self.rule)
    }

    /// `RL.INSPECT`'s state fields: the state as `RL.PEEK` sees it at `now_us`.
    ///
    /// ```
    /// use redis_ratelimit::algo::{Algorithm, Limiter, Outcome, Rule};
    /// let rule = Rule::new(Algorithm::FixedWindow, 5, 1_000, None).unwrap();
    /// let (_, Outcome::Created(l)) = Limiter::decide(None, &rule, 2, 7).unwrap() else {
    ///     unreachable!()
    /// };
    /// let fields = [("window_start_us", 7), ("count", 2), ("blocked_until_us", 0)];
    /// assert_eq!(l.inspect(500), fields);
    /// assert_eq!(l.inspect(1_007)[..2], [("window_start_us", 0), ("count", 0)]);
    /// ```
    pub fn inspect(&self, now_us: u64) -> Fields {
        let mut out = Fields::new();
        self.state.inspect(&self.rule, now_us, &mut out);
        out.push(("blocked_until_us", self.blocked_until_us(now_us)));
        out
    }
}

/// The decision for a request of `cost` at `now_us` against a key under `block` (as seen at
/// `now_us`), given the algorithm's own decision `d`: denied (a look with cost 0 still passes),
/// `remaining` 0; the request passes at the first instant both at or after the block's end and
/// admitted by the algorithm (whose admission only grows with time when nothing else arrives);
/// full again at the later of the two resets.
fn blocked(d: Decision, block: Block, now_us: u64, cost: u64) -> Decision {
    let wait = block.until_us.saturating_sub(now_us);
    let reset_after_us = d.reset_after_us.max(wait);
    let retry_after = match d.retry_after {
        _ if cost == 0 => RetryAfter::Now,
        RetryAfter::Never => RetryAfter::Never,
        RetryAfter::Now => RetryAfter::After(wait.max(1)),
        RetryAfter::After(own) => RetryAfter::After(own.max(wait).max(1)),
    };
    Decision {
        allowed: cost == 0,
        capacity: d.capacity,
        remaining: 0,
        retry_after,
        reset_after_us,
    }
}
