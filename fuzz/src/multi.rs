//! Several keys at once: random sequences over up to five keys of mixed kinds, mixing the
//! single-key commands (`RL.ALLOW` / `RL.PEEK` with `BLOCK`, `RL.CHARGE`, `RL.REFUND`, and on gcra
//! keys `RL.THROTTLE` / `CL.THROTTLE` / `GCRA`, which share the key's state) with `RL.ALLOWALL`
//! and `RL.PEEKALL` over one to four of them (keys shared between calls, per-group rules, costs
//! and `BLOCK`), with rule changes, clock steps back (one input in two), the server's expiry,
//! `DEL`, and keys of another algorithm (a lease key among them).
//!
//! The reference of a multi-key call is README's definition, applied to each key's own
//! reference ([`Slot::expect`]: the kind's model with the debts' and blocks' semantics of
//! `settle_reference.rs`; limits' Lua transliteration for `limits-sliding-window`): every group
//! is decided alone first; the call is admitted iff every group admits; then every group acts
//! as `RL.ALLOW` does, else only the denying groups do (their denial: a `BLOCK` starts, a
//! converted state is stored) and every other group answers `RL.PEEK … COST 0`'s reply with
//! its key unchanged. The binding group (0-based here, 1-based in the reply) is, when admitted,
//! the first group with the least `remaining`; when denied, the first denying group with the
//! largest `retry_after_ms` as the reply shows it (ms rounded up, at least 1; -1, never,
//! counting as the largest). A group naming another algorithm than its key's is an error that
//! changes no key (the first such group). `RL.PEEKALL` replies what `RL.ALLOWALL` would, and
//! writes nothing.
//!
//! At every write the invariants of [`Node::commit`] hold (a written state valid, expiring
//! exactly `reset_after` later, its payload read back, its replicated effect giving the replica
//! the same value); after every step, for every key: valid, its payload read back, the replica
//! equal, its look (`RL.PEEK … COST 0`) equal to its reference's, a key past its expiry
//! answering as an absent one.

use redis_ratelimit::algo::leases::{self, Acquire};
use redis_ratelimit::algo::multi::{allow_all, decide_all, AllDecision, Group, GroupMismatch};
use redis_ratelimit::algo::reference::{BucketRef, FixedRef, LimitsLua, LogRef, SlidingRef};
use redis_ratelimit::algo::settle_reference::{reference_op, RefKey};
use redis_ratelimit::algo::{
    Algorithm, AlgorithmMismatch, Bounds, Decision, Limiter, Outcome, RetryAfter, Rule,
    MAX_BLOCK_US, MAX_WINDOW_US,
};
use redis_ratelimit::compat::{parse_gcra, parse_throttle, throttle_reply};
use redis_ratelimit::datatype::codec::{decode, encode};

use crate::algos::{
    check_decision, cost, maybe_changed, next_time, rule, settle_op, Did, Node, Op, BASE_US,
    MAX_STEPS,
};
use crate::input::Input;

/// Keys per sequence at most.
const MAX_SLOTS: u64 = 5;

/// Groups per call at most.
const MAX_GROUPS: u64 = 4;

/// The rate-limit kinds a key may hold.
const RATE: &[Algorithm] = &[
    Algorithm::SlidingWindow,
    Algorithm::FixedWindow,
    Algorithm::Gcra,
    Algorithm::MovingWindow,
    Algorithm::LimitsSlidingWindow,
];

/// A key's reference.
#[derive(Clone, Debug)]
enum KeyModel {
    Sliding(Option<RefKey<SlidingRef>>),
    Fixed(Option<RefKey<FixedRef>>),
    Bucket(Option<RefKey<BucketRef>>),
    Log(Option<RefKey<LogRef>>),
    /// limits' two keys, while the key is under its first rule, no `BLOCK` touched it and the
    /// clock never stepped back (what limits' scripts model); `None`: not followed until the
    /// key is gone, its replies then those of the single-key code (checked against limits by
    /// the `algo` target), the multi-key composition still checked.
    Limits(Option<LimitsLua>),
    /// A lease key: every rate-limit command on it is refused.
    Leases,
}

impl KeyModel {
    /// The absent key under `rule`.
    fn absent(rule: &Rule) -> KeyModel {
        match rule.algorithm() {
            Algorithm::SlidingWindow => KeyModel::Sliding(None),
            Algorithm::FixedWindow => KeyModel::Fixed(None),
            Algorithm::Gcra => KeyModel::Bucket(None),
            Algorithm::MovingWindow => KeyModel::Log(None),
            Algorithm::LimitsSlidingWindow => {
                // limits' scripts count in whole ms.
                KeyModel::Limits(follows_limits(rule).then(LimitsLua::default))
            }
            Algorithm::Leases => KeyModel::Leases,
        }
    }
}

/// Whether limits' scripts model a `limits-sliding-window` key under `rule`: they count in
/// whole ms, and are exact while `previous × previous_ttl_ms` stays below 2⁵³ (Lua's floating
/// point; a few hundred charges of three capacities stay far below it here).
fn follows_limits(rule: &Rule) -> bool {
    rule.window_us().is_multiple_of(1_000)
        && rule.limit() <= 1_000
        && rule.window_us() <= 3_600_000_000
}

/// One key: the master and its replica, the rule requests name, the reference.
#[derive(Clone, Debug)]
struct Slot {
    node: Node,
    /// The algorithm the key holds (or will, once written).
    algorithm: Algorithm,
    /// What requests name (changes now and then).
    rule: Rule,
    /// `limits-sliding-window`: the rule limits' scripts are followed under.
    base: Rule,
    model: KeyModel,
}

impl Slot {
    /// A new key of a random kind; one in twelve a lease key holding one lease.
    fn new(input: &mut Input<'_>, now: u64) -> Option<Slot> {
        if input.chance(8)? {
            let limit = input.range(1, 4)?;
            let lease = match input.range(0, 3)? {
                0 => input.range(1, 10_000)?,
                1 => MAX_WINDOW_US,
                _ => input.range(1, 100_000_000)?,
            };
            let req = Acquire::new(limit, lease, None).ok()?;
            let v = leases::acquire(None, &req, now).ok()?;
            let Outcome::Created(l) = v.outcome else {
                panic!("an acquire on an absent key creates it: {v:?}");
            };
            let algorithm = input.pick(RATE)?;
            let rule = rule(input, algorithm)?;
            return Some(Slot {
                node: Node {
                    stored: Some(l.clone()),
                    replica: Some(l),
                },
                algorithm: Algorithm::Leases,
                rule,
                base: rule,
                model: KeyModel::Leases,
            });
        }
        let algorithm = input.pick(RATE)?;
        let rule = if algorithm == Algorithm::LimitsSlidingWindow {
            // limits' scripts count in ms: a whole number of seconds, as limits sends.
            let limit = input.pick(&[1, 2, 3, 5, 10, 100, 1_000])?;
            let secs = input.pick(&[1, 2, 10, 60, 3_600])?;
            Rule::new(algorithm, limit, secs * 1_000_000, None).ok()?
        } else {
            rule(input, algorithm)?
        };
        Some(Slot {
            node: Node::default(),
            algorithm,
            rule,
            base: rule,
            model: KeyModel::absent(&rule),
        })
    }

    /// The algorithm the stored key holds, if any.
    fn holds(&self) -> Option<Algorithm> {
        self.node.stored.as_ref().map(|_| self.algorithm)
    }

    /// The error a request under `rule` gets, if the key holds another algorithm.
    fn mismatch(&self, rule: &Rule) -> Option<AlgorithmMismatch> {
        self.holds()
            .filter(|&a| a != rule.algorithm())
            .map(|stored| AlgorithmMismatch {
                stored,
                requested: rule.algorithm(),
            })
    }

    /// The server's expiry or `DEL`: the key is gone.
    fn remove(&mut self) {
        self.node = Node::default();
        if self.algorithm == Algorithm::Leases {
            // What requests name creates the key from now on.
            self.algorithm = self.rule.algorithm();
            self.base = self.rule;
        }
        self.model = KeyModel::absent(&self.base);
    }

    /// Stops following limits' scripts when a request leaves what they model.
    fn untrack_if(&mut self, rule: &Rule, block_us: u64) {
        if let KeyModel::Limits(lua) = &mut self.model {
            if block_us > 0 || *rule != self.base {
                *lua = None;
            }
        }
    }

    /// The reference's answer to `op` under `rule` at `now` (same algorithm as the key's): the
    /// reply, what it writes, the reference after it.
    fn expect(&self, rule: &Rule, op: Op, now: u64) -> (Decision, Did, KeyModel) {
        macro_rules! model {
            ($variant:ident, $k:expr) => {{
                let (d, did, after) = reference_op($k.as_ref(), rule, op, now);
                (d, did, KeyModel::$variant(after))
            }};
        }
        match &self.model {
            KeyModel::Sliding(k) => model!(Sliding, k),
            KeyModel::Fixed(k) => model!(Fixed, k),
            KeyModel::Bucket(k) => model!(Bucket, k),
            KeyModel::Log(k) => model!(Log, k),
            KeyModel::Limits(lua) => {
                // The single-key code's answer (what RL.ALLOW on that key alone replies: the
                // `algo` target checks it against limits), with what limits' scripts decide.
                let mut alone = self.node.clone();
                let (d, did) = alone
                    .op(rule, op, now, &Bounds::DEFAULT)
                    .unwrap_or_else(|| panic!("one algorithm: {op:?} {rule:?} {self:?}"));
                let lua = lua.clone().map(|mut lua| {
                    lua_op(&mut lua, rule, op, now, &d);
                    lua
                });
                (d, did, KeyModel::Limits(lua))
            }
            KeyModel::Leases => panic!("a rate request on a lease key is refused first"),
        }
    }

    /// The checks after every step.
    fn check(&self, now: u64, ctx: &dyn Fn() -> String) {
        let Some(l) = &self.node.stored else {
            assert!(self.node.replica.is_none(), "{}", ctx());
            return;
        };
        assert!(l.is_valid(), "invalid {l:?}: {}", ctx());
        assert_eq!(decode(&encode(l)).as_ref(), Some(l), "{}", ctx());
        assert_eq!(self.node.replica.as_ref(), Some(l), "replica: {}", ctx());
        if self.algorithm == Algorithm::Leases {
            return;
        }
        assert_eq!(l.rule.algorithm(), self.algorithm, "{}", ctx());
        if l.is_over(now) {
            // Past its expiry a key answers as an absent one (the server may not have
            // removed it yet).
            for c in [0, 1, self.rule.capacity()] {
                let got = Limiter::peek_with(Some(l), &self.rule, c, now, 0);
                let absent = Limiter::peek_with(None, &self.rule, c, now, 0);
                assert_eq!(got, absent, "expired key, cost {c}: {}", ctx());
            }
        }
        let look = Op::Peek {
            cost: 0,
            block_us: 0,
        };
        match &self.model {
            KeyModel::Limits(Some(lua)) => check_limits(l, lua, &self.base, now, ctx),
            KeyModel::Limits(None) | KeyModel::Leases => {}
            _ => {
                let want = self.expect(&self.rule, look, now).0;
                let got = Limiter::peek_with(Some(l), &self.rule, 0, now, 0);
                assert_eq!(got, Ok(want), "the key's look: {}", ctx());
                // RL.INSPECT's `blocked_until_us`: when the block in force ends, 0 for none.
                let until = match &self.model {
                    KeyModel::Sliding(k) => k.as_ref().and_then(|k| k.block_at(now)),
                    KeyModel::Fixed(k) => k.as_ref().and_then(|k| k.block_at(now)),
                    KeyModel::Bucket(k) => k.as_ref().and_then(|k| k.block_at(now)),
                    KeyModel::Log(k) => k.as_ref().and_then(|k| k.block_at(now)),
                    KeyModel::Limits(_) | KeyModel::Leases => None,
                }
                .map_or(0, |b| b.1);
                let fields = l.inspect(now);
                let field = fields.iter().find(|f| f.0 == "blocked_until_us");
                assert_eq!(field.map(|f| f.1), Some(until), "RL.INSPECT: {}", ctx());
            }
        }
    }
}

/// What limits' scripts do for `op` (times in ms), and whether they admit what the module
/// decided (`got`).
fn lua_op(lua: &mut LimitsLua, rule: &Rule, op: Op, now: u64, got: &Decision) {
    let (limit, e, t) = (rule.limit(), rule.window_us() / 1_000, now / 1_000);
    match op {
        Op::Allow { cost, .. } => {
            let admitted = lua.acquire(limit, e, cost, t);
            if cost > 0 {
                assert_eq!(got.allowed, admitted, "limits: {op:?} at {t} {lua:?}");
            }
        }
        Op::Peek { cost, .. } => {
            if cost > 0 {
                let admitted = lua.clone().acquire(limit, e, cost, t);
                assert_eq!(got.allowed, admitted, "limits: {op:?} at {t} {lua:?}");
            }
        }
        Op::Charge(n) if n > 0 => lua.charge(e, n, t),
        Op::Refund(n) if n > 0 => lua.refund(e, n, t),
        Op::Charge(_) | Op::Refund(_) => {}
    }
}

/// A `limits-sliding-window` key against limits' two keys: the same counters and TTLs as
/// `RL.INSPECT` shows them, the same `remaining`, and the key living exactly as long as
/// limits' last key.
fn check_limits(l: &Limiter, lua: &LimitsLua, rule: &Rule, now: u64, ctx: &dyn Fn() -> String) {
    let (e, t) = (rule.window_us() / 1_000, now / 1_000);
    let window = lua.clone().get(e, t);
    let got = LimitsLua::window_of(&l.inspect(now));
    assert_eq!(got, window, "limits' keys at {t}: {}", ctx());
    let weighted = LimitsLua::weighted(window, e);
    let d = Limiter::peek_with(Some(l), rule, 0, now, 0).expect("its own algorithm");
    assert_eq!(
        d.remaining,
        rule.limit().saturating_sub(weighted),
        "limits' remaining at {t}: {}",
        ctx()
    );
    let last = lua.last_expire_ms();
    if last >= t {
        assert_eq!(l.expires_at_us(), last * 1_000, "limits' TTL: {}", ctx());
    } else {
        assert!(l.is_over(now), "outlives limits' keys: {}", ctx());
    }
}

/// The reply's `retry_after_ms` ordered for the binding rule: -1 (never) above every delay.
fn retry_ms_rank(d: &Decision) -> u64 {
    match d.retry_after {
        RetryAfter::Now => 0,
        RetryAfter::After(us) => us.div_ceil(1_000).max(1),
        RetryAfter::Never => u64::MAX,
    }
}

/// README's binding group: admitted, the first with the least `remaining`; denied, the first
/// denying group with the largest `retry_after_ms`.
fn binding(alone: &[Decision], replies: &[Decision], allowed: bool) -> usize {
    let mut best: Option<(usize, &Decision)> = None;
    for (i, (a, r)) in alone.iter().zip(replies).enumerate() {
        if allowed {
            if best.is_none_or(|(_, b)| r.remaining < b.remaining) {
                best = Some((i, r));
            }
        } else if !a.allowed && best.is_none_or(|(_, b)| retry_ms_rank(r) > retry_ms_rank(b)) {
            best = Some((i, r));
        }
    }
    best.map_or(usize::MAX, |(i, _)| i)
}

/// What the redis-cell reply says of a decision (README, "Drop-in GCRA commands").
fn cell_reply(d: &Decision) -> [i64; 5] {
    let secs_up = |us: u64| us.div_ceil(1_000_000) as i64;
    let retry = match d.retry_after {
        RetryAfter::After(us) if !d.allowed => secs_up(us),
        _ => -1,
    };
    [
        i64::from(!d.allowed),
        d.capacity as i64,
        d.remaining as i64,
        retry,
        secs_up(d.reset_after_us),
    ]
}

/// A rate rule of another algorithm than `algorithm`.
fn other_rule(input: &mut Input<'_>, algorithm: Algorithm) -> Option<Rule> {
    let others: Vec<Algorithm> = RATE.iter().copied().filter(|&a| a != algorithm).collect();
    let algorithm = input.pick(&others)?;
    rule(input, algorithm)
}

/// A `BLOCK` sometimes.
fn block(input: &mut Input<'_>, rule: &Rule) -> Option<u64> {
    Some(if input.chance(20)? {
        input
            .range(1, 3 * rule.window_us().min(1 << 40))?
            .min(MAX_BLOCK_US)
    } else {
        0
    })
}

/// The sequence state.
struct Run {
    slots: Vec<Slot>,
    now: u64,
    last: Option<Decision>,
    step: usize,
}

/// The `multi` target.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let _ = sequence(&mut input);
}

fn sequence(input: &mut Input<'_>) -> Option<()> {
    let n = input.range(1, MAX_SLOTS)? as usize;
    let forward_only = input.chance(50)?;
    let mut run = Run {
        slots: Vec::with_capacity(n),
        now: BASE_US + input.range(0, 1 << 40)?,
        last: None,
        step: 0,
    };
    for _ in 0..n {
        let s = Slot::new(input, run.now)?;
        run.slots.push(s);
    }
    for step in 0..MAX_STEPS {
        run.step = step;
        let i = input.range(0, n as u64 - 1)? as usize;
        let slot = run.slots.get_mut(i)?;
        if slot.algorithm != Algorithm::Leases {
            slot.rule = maybe_changed(input, slot.rule)?;
        }
        let stored = slot.node.stored.as_ref();
        let next = next_time(input, run.now, &slot.rule, stored, run.last.as_ref())?;
        let next = if forward_only {
            next.max(run.now)
        } else {
            next
        };
        if next < run.now {
            // limits' scripts do not model a clock that steps back.
            for s in &mut run.slots {
                if let KeyModel::Limits(lua) = &mut s.model {
                    *lua = None;
                }
            }
        }
        run.now = next;
        // The server's expiry (lazy: a key past its expiry may still be there).
        for s in &mut run.slots {
            let expired = s.node.stored.as_ref().is_some_and(|l| l.is_over(run.now));
            if expired && input.chance(50)? {
                s.remove();
            }
        }
        match input.range(0, 19)? {
            0..=7 => run.single(input, i)?,
            8 => run.throttle(input, i)?,
            9 => {
                // DEL, and the key's next life of another kind.
                let fresh = Slot::new(input, run.now)?;
                *run.slots.get_mut(i)? = fresh;
            }
            10..=16 => run.all(input, true)?,
            _ => run.all(input, false)?,
        }
        let now = run.now;
        for (k, s) in run.slots.iter_mut().enumerate() {
            if s.node.stored.is_none() {
                if let KeyModel::Limits(lua @ None) = &mut s.model {
                    // Gone: limits' keys are followed again from nothing.
                    if s.rule == s.base && follows_limits(&s.base) {
                        *lua = Some(LimitsLua::default());
                    }
                }
            }
            let ctx = || format!("step {step}, key {k} at {now}: {s:?}");
            s.check(now, &ctx);
        }
    }
    Some(())
}

impl Run {
    /// `RL.ALLOW` / `RL.PEEK` (with `BLOCK`), `RL.CHARGE` or `RL.REFUND` on one key, sometimes
    /// naming another algorithm than the key's.
    fn single(&mut self, input: &mut Input<'_>, i: usize) -> Option<()> {
        let (now, step) = (self.now, self.step);
        let slot = self.slots.get_mut(i)?;
        let foreign = slot.holds().is_some() && input.chance(4)?;
        let rule = if foreign || slot.algorithm == Algorithm::Leases {
            other_rule(input, slot.algorithm)?
        } else {
            slot.rule
        };
        let op = settle_op(input, &rule, self.last.as_ref())?;
        let before = slot.clone();
        let ctx = || format!("step {step}: {op:?} {rule:?} at {now} on {before:?}");
        if slot.mismatch(&rule).is_some() {
            assert!(
                slot.node.op(&rule, op, now, &Bounds::DEFAULT).is_none(),
                "another algorithm's request passed: {}",
                ctx()
            );
            assert_eq!(slot.node.stored, before.node.stored, "{}", ctx());
            return Some(());
        }
        let block_us = match op {
            Op::Allow { block_us, .. } | Op::Peek { block_us, .. } => block_us,
            Op::Charge(_) | Op::Refund(_) => 0,
        };
        slot.untrack_if(&rule, block_us);
        let (want, want_did, after) = slot.expect(&rule, op, now);
        let Some(got) = slot.node.op(&rule, op, now, &Bounds::DEFAULT) else {
            panic!("refused: {}", ctx());
        };
        assert_eq!(got, (want, want_did), "{}", ctx());
        slot.model = after;
        self.last = Some(want);
        Some(())
    }

    /// `RL.THROTTLE` / `CL.THROTTLE` / `GCRA` on a gcra key, with the arguments that name the
    /// key's rule: the same state as `RL.ALLOW … ALGO gcra`, redis-cell's reply.
    fn throttle(&mut self, input: &mut Input<'_>, i: usize) -> Option<()> {
        let (now, step) = (self.now, self.step);
        let slot = self.slots.get_mut(i)?;
        if slot.algorithm != Algorithm::Gcra {
            return self.single(input, i);
        }
        let rule = slot.rule;
        let cost = cost(input, &rule, self.last.as_ref())?;
        let w = rule.window_us();
        let max_burst = (rule.burst() - 1).to_string();
        let count = rule.limit().to_string();
        let quantity = cost.to_string();
        let req = if cost > 0 && input.chance(50)? {
            // GCRA: the period in seconds, exactly.
            let period = match input.range(0, 2)? {
                0 => format!("{}.{:06}", w / 1_000_000, w % 1_000_000),
                1 => format!("{w}e-6"),
                _ => format!("{}", w as f64 / 1e6),
            };
            let mut args = vec![max_burst.as_bytes(), count.as_bytes(), period.as_bytes()];
            if cost != 1 || input.chance(50)? {
                args.extend([&b"TOKENS"[..], quantity.as_bytes()]);
            }
            parse_gcra(args.iter().copied())
                .unwrap_or_else(|e| panic!("{args:?} of {rule:?}: {e:?}"))
        } else {
            let period = match input.range(0, 1)? {
                0 if w % 1_000_000 == 0 => format!("{}", w / 1_000_000),
                _ => format!("{}.{:03}ms", w / 1_000, w % 1_000),
            };
            let mut args = vec![max_burst.as_bytes(), count.as_bytes(), period.as_bytes()];
            if cost != 1 || input.chance(50)? {
                args.push(quantity.as_bytes());
            }
            parse_throttle(args.iter().copied())
                .unwrap_or_else(|e| panic!("{args:?} of {rule:?}: {e:?}"))
        };
        assert_eq!(
            (req.rule, req.cost),
            (rule, cost),
            "the arguments name the key's rule"
        );
        let op = Op::Allow { cost, block_us: 0 };
        let before = slot.clone();
        let ctx = || format!("step {step}: throttle {cost} {rule:?} at {now} on {before:?}");
        let (want, want_did, after) = slot.expect(&rule, op, now);
        let Some(got) = slot.node.op(&rule, op, now, &Bounds::DEFAULT) else {
            panic!("refused: {}", ctx());
        };
        assert_eq!(got, (want, want_did), "{}", ctx());
        assert_eq!(throttle_reply(&got.0), cell_reply(&want), "{}", ctx());
        slot.model = after;
        self.last = Some(want);
        Some(())
    }

    /// `RL.ALLOWALL` (`commit`) or `RL.PEEKALL` over 1 to 4 distinct keys in a random order.
    fn all(&mut self, input: &mut Input<'_>, commit: bool) -> Option<()> {
        let (now, step) = (self.now, self.step);
        let n = self.slots.len();
        let k = input.range(1, MAX_GROUPS.min(n as u64))? as usize;
        let mut order: Vec<usize> = (0..n).collect();
        for j in (1..n).rev() {
            order.swap(j, input.range(0, j as u64)? as usize);
        }
        order.truncate(k);
        let mut groups = Vec::with_capacity(k);
        for &i in &order {
            let slot = self.slots.get(i)?;
            let foreign = slot.holds().is_some() && input.chance(3)?;
            let rule = if foreign || slot.algorithm == Algorithm::Leases {
                other_rule(input, slot.algorithm)?
            } else {
                slot.rule
            };
            groups.push(Group {
                rule,
                cost: cost(input, &rule, self.last.as_ref())?,
                block_us: block(input, &rule)?,
            });
        }
        let before: Vec<Slot> = order.iter().map(|&i| self.slots[i].clone()).collect();
        let ctx = || {
            format!(
                "step {step}: {} at {now}: {groups:?} on {before:?}",
                if commit { "RL.ALLOWALL" } else { "RL.PEEKALL" }
            )
        };
        let mut copies: Vec<Option<Limiter>> =
            before.iter().map(|s| s.node.stored.clone()).collect();
        let peeked = {
            let view: Vec<Option<&Limiter>> = copies.iter().map(Option::as_ref).collect();
            decide_all(&view, &groups, now)
        };
        let done = commit.then(|| {
            let mut refs: Vec<Option<&mut Limiter>> =
                copies.iter_mut().map(Option::as_mut).collect();
            allow_all(&mut refs, &groups, now, &Bounds::DEFAULT)
        });

        // The first group naming another algorithm than its key's: an error, no key changed.
        let mismatch = before
            .iter()
            .zip(&groups)
            .enumerate()
            .find_map(|(index, (s, g))| {
                s.mismatch(&g.rule)
                    .map(|mismatch| GroupMismatch { index, mismatch })
            });
        if let Some(e) = mismatch {
            assert_eq!(peeked, Err(e), "{}", ctx());
            if let Some(done) = done {
                assert_eq!(done.map(|d| d.0), Err(e), "{}", ctx());
            }
            let after: Vec<Option<Limiter>> =
                before.iter().map(|s| s.node.stored.clone()).collect();
            assert_eq!(copies, after, "a refused call changed a key: {}", ctx());
            return Some(());
        }

        // The reference: every group decided alone, then all charged or only the denials act.
        let mut slots: Vec<Slot> = before.clone();
        for (s, g) in slots.iter_mut().zip(&groups) {
            s.untrack_if(&g.rule, g.block_us);
        }
        let alone: Vec<Decision> = slots
            .iter()
            .zip(&groups)
            .map(|(s, g)| {
                let op = Op::Peek {
                    cost: g.cost,
                    block_us: g.block_us,
                };
                s.expect(&g.rule, op, now).0
            })
            .collect();
        let allowed = alone.iter().all(|d| d.allowed);
        let mut want = Vec::with_capacity(k);
        for ((s, g), a) in slots.iter().zip(&groups).zip(&alone) {
            check_decision(a, &g.rule, Some(g.cost), &ctx);
            if allowed || !a.allowed {
                let op = Op::Allow {
                    cost: g.cost,
                    block_us: g.block_us,
                };
                let (d, did, after) = s.expect(&g.rule, op, now);
                assert_eq!(d, *a, "RL.ALLOW differs from RL.PEEK: {}", ctx());
                want.push((d, did, after));
            } else {
                let look = Op::Peek {
                    cost: 0,
                    block_us: 0,
                };
                let d = s.expect(&g.rule, look, now).0;
                want.push((d, Did::Nothing, s.model.clone()));
            }
        }
        let replies: Vec<Decision> = want.iter().map(|w| w.0).collect();
        let expected = AllDecision {
            allowed,
            binding: binding(&alone, &replies, allowed),
            groups: replies,
        };
        assert_eq!(peeked.as_ref(), Ok(&expected), "{}", ctx());
        let Some(done) = done else {
            // RL.PEEKALL: nothing written.
            return Some(());
        };
        let (decision, verdicts) = done.unwrap_or_else(|e| panic!("{e:?}: {}", ctx()));
        assert_eq!(
            decision,
            expected,
            "RL.ALLOWALL differs from RL.PEEKALL: {}",
            ctx()
        );
        assert_eq!(verdicts.len(), k, "{}", ctx());
        for ((((&i, g), v), copy), (d, did, after)) in order
            .iter()
            .zip(&groups)
            .zip(verdicts)
            .zip(copies)
            .zip(want)
        {
            assert_eq!(v.decision, d, "group {i}: {}", ctx());
            let slot = self.slots.get_mut(i)?;
            let op = Op::Allow {
                cost: g.cost,
                block_us: g.block_us,
            };
            let got = slot
                .node
                .commit(&g.rule, op, now, &Bounds::DEFAULT, copy, v);
            assert_eq!(got, (d, did), "group {i}: {}", ctx());
            slot.model = after;
        }
        self.last = expected.groups.get(expected.binding).copied();
        Some(())
    }
}
