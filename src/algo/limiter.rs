//! What one key stores — the rule last applied and its kind's state — and the dispatch of every
//! request to that kind, by the stored state.

use super::kind::{Bounds, Change, Fields, Hit};
use super::{Algorithm, Decision, Rule, State};

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
        let clamped = stored.is_ahead(now_us);
        let old = stored.rule;
        let (decision, change) = stored.state.decide(&old, rule, cost, now_us, bounds);
        let outcome = match change {
            Change::Unchanged => Outcome::Unchanged,
            Change::Updated => {
                stored.rule = *rule;
                Outcome::Updated
            }
            Change::Emptied => Outcome::Emptied,
        };
        Ok(Verdict {
            decision,
            outcome,
            clamped,
        })
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
        let Some(l) = stored else {
            return Ok(rule.algorithm().decide_absent(rule, cost, now_us).0);
        };
        l.check_algorithm(rule)?;
        Ok(l.state.peek(&l.rule, rule, cost, now_us))
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
            return Ok(match requested.replay_absent(hit) {
                Some(state) => Outcome::Created(Limiter {
                    rule: hit.rule,
                    state,
                }),
                None => Outcome::Unchanged,
            });
        };
        stored.check_algorithm(&hit.rule)?;
        let old = stored.rule;
        let change = stored.state.replay(&old, hit).ok_or(AlgorithmMismatch {
            stored: requested,
            requested,
        })?;
        stored.rule = hit.rule;
        Ok(match change {
            Change::Unchanged => Outcome::Unchanged,
            Change::Updated => Outcome::Updated,
            Change::Emptied => Outcome::Emptied,
        })
    }

    /// How the write just made at `now_us` (charging `cost`) replicates as a hit, for kinds
    /// that replicate hits; `None` for the others (they replicate their state).
    pub fn hit(&self, now_us: u64, cost: u64, bounds: &Bounds) -> Option<Hit> {
        self.state.hit(&self.rule, now_us, cost, bounds)
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
        self.state.expires_at_us(&self.rule)
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
    /// assert_eq!(l.inspect(500), [("window_start_us", 7), ("count", 2)]);
    /// assert_eq!(l.inspect(1_007), [("window_start_us", 0), ("count", 0)]);
    /// ```
    pub fn inspect(&self, now_us: u64) -> Fields {
        let mut out = Fields::new();
        self.state.inspect(&self.rule, now_us, &mut out);
        out
    }
}
