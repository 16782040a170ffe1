//! One trait per state kind, and the one table that lists the kinds.
//!
//! A kind is a file with a state type that implements [`Kind`], plus one line in the
//! `state_kinds!` table at the end of this file. The table generates [`Algorithm`] (names, tags,
//! parsing) and [`State`] (one variant per kind) and every dispatch from a stored [`State`] to
//! its kind: nothing else matches on algorithms. Dispatch goes by the *stored* state; the
//! caller's rule only chooses the kind of a key that does not exist yet.

use std::fmt::Debug;

use super::{Decision, Rule};
use crate::bits::{Packer, Unpacker};
use crate::varint::{Reader, Sink};

/// Fields of `RL.INSPECT` a kind adds after the rule: `(name, value)` in reply order.
pub type Fields = Vec<(&'static str, u64)>;

/// What a request did to a stored state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Nothing to store.
    Unchanged,
    /// Changed in place: store it (expiry, replication, signal).
    Updated,
    /// Holds nothing any more: delete the key.
    Emptied,
}

/// How a write reaches replicas and the AOF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replication {
    /// The whole new state (`RL.SETSTATE`): small states.
    State,
    /// The hit that changed it (`RL.APPLY`): the replica replays it ([`Kind::replay`]), so the
    /// stream stays O(1) per write however large the state.
    Hits,
    /// Effects of the kind's own commands (`RL.APPLY` with the kind's own payload, e.g. a lease
    /// acquired or released with the master's time and the id): see that kind's file.
    Effects,
}

/// Bounds that keep every call cheap whatever its arguments (configurable by the operator).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// Most runs a moving-window log keeps (see [`super::moving_window`]).
    pub max_runs: usize,
}

impl Bounds {
    /// The defaults.
    pub const DEFAULT: Bounds = Bounds {
        max_runs: super::moving_window::DEFAULT_MAX_RUNS,
    };
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds::DEFAULT
    }
}

/// A write replicated as a hit: everything a replica needs to replay it exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hit {
    /// The rule the master applied.
    pub rule: Rule,
    /// The master's time.
    pub now_us: u64,
    /// The cost charged (0: a conversion to a new rule or a clamp, nothing charged).
    pub cost: u64,
    /// The master's bounds for this key.
    pub bounds: Bounds,
    /// What the master's state looked like after the write, for the replica to check its own:
    /// `(runs, total)` for a log. `None` when not sent.
    pub after: Option<(u64, u64)>,
    /// The write needs this release's replay (a reader of the previous payload version would
    /// replay it differently): the payload must say so.
    pub needs_current_replay: bool,
    /// A refund (`RL.REFUND`) of `cost`, not a charge.
    pub refund: bool,
    /// The key's block after the write, when one is in force (a denial that started it, or a
    /// write during it): the replica stores it as is.
    pub block: Option<super::block::Block>,
}

/// The state of one kind of limiter. Every method is pure: time is a parameter.
///
/// Semantics shared by every kind are in the [`super`] module docs; each kind's file documents
/// its exact rule with a worked example.
pub trait Kind: Sized + Clone + Debug + PartialEq + Eq {
    /// Whether its rules take `BURST` (a capacity other than the limit).
    const TAKES_BURST: bool = false;
    /// How its writes reach replicas and the AOF.
    const REPLICATION: Replication = Replication::State;
    /// Whether it is a rate limit, served by `RL.ALLOW` / `RL.PEEK` / `RL.THROTTLE` and named by
    /// `ALGO` (false: leases, served by their own commands; those commands answer a clear error
    /// on the other kinds, and the rate-limit commands on this one).
    const RATE_LIMIT: bool = true;
    /// Whether a cost-0 request may change the state (a kind whose reads move it on, as
    /// `limits`' sliding window shifts its counters on every access): then `RL.ALLOW … COST 0`
    /// decides (and may store) instead of only peeking.
    const COST_ZERO_WRITES: bool = false;
    /// Whether the state lives through its expiry's ms, as a key on the server does (removed
    /// once `now > expiry` in ms): `limits-sliding-window`, whose counters are limits' keys and
    /// still count in that ms. Otherwise the state is over at its expiry (µs).
    const LIVES_THROUGH_EXPIRY_MS: bool = false;

    /// Decides a request against an absent key; `Some` is the state to create.
    fn decide_absent(rule: &Rule, cost: u64, now_us: u64) -> (Decision, Option<Self>);

    /// Decides a request of `cost` at `now_us` under `rule` against this state (written under
    /// `stored`), changing it in place when something must be stored.
    fn decide(
        &mut self,
        stored: &Rule,
        rule: &Rule,
        cost: u64,
        now_us: u64,
        bounds: &Bounds,
    ) -> (Decision, Change);

    /// The decision [`Kind::decide`] would make, changing nothing.
    fn peek(&self, stored: &Rule, rule: &Rule, cost: u64, now_us: u64) -> Decision;

    /// The state as `rule` sees it at `now_us` (clamped, aged under `stored`, carried over);
    /// `None` when it holds nothing any more.
    fn carried_over(&self, stored: &Rule, rule: &Rule, now_us: u64) -> Option<Self>;

    /// Whether it lies ahead of anything possible at `now_us` (a clock step back).
    fn is_ahead(&self, rule: &Rule, now_us: u64) -> bool;

    /// Absolute µs at which it becomes equivalent to an absent key (the key's expiry).
    fn expires_at_us(&self, rule: &Rule) -> u64;

    /// Whether a decoded state keeps every invariant under `rule`.
    fn is_valid(&self, rule: &Rule) -> bool;

    /// Appends the state's payload bytes (see `datatype::codec`).
    fn encode(&self, out: &mut impl Sink);

    /// Reads a state's payload bytes; `None` for anything malformed. May leave bytes unread
    /// (fields of a later version, which the codec then ignores).
    fn decode(bytes: &mut Reader<'_>, rule: &Rule) -> Option<Self>;

    /// Reads the fields this release appended to the state after those of payload version 2
    /// (payloads of version 3 and later only; none by default).
    fn decode_current(&mut self, _bytes: &mut Reader<'_>) -> Option<()> {
        Some(())
    }

    /// `RL.INSPECT`'s fields for the state as `RL.PEEK` sees it at `now_us` (`None`: absent).
    fn inspect(state: Option<&Self>, stored: &Rule, now_us: u64, out: &mut Fields);

    /// Replays a master's write on a replica ([`Replication::Hits`] kinds only).
    fn replay(&mut self, _stored: &Rule, _hit: &Hit) -> Option<Change> {
        None
    }

    /// The state a replayed hit creates on an absent key ([`Replication::Hits`] kinds only).
    fn replay_absent(_hit: &Hit) -> Option<Self> {
        None
    }

    /// Describes the write just made for replication ([`Replication::Hits`] kinds only).
    fn hit(&self, _rule: &Rule, _now_us: u64, _cost: u64, _bounds: &Bounds) -> Option<Hit> {
        None
    }

    /// Writes the state, stored under `rule`, as a few bit fields (see [`crate::bits`]) when
    /// they fit: its compact form, which the data type keeps inside the key's value word (47
    /// bits: nothing allocated) or a 16-byte block (112 bits) instead of a boxed limiter.
    /// `false` (the default): the state stays boxed, whole — always correct, never compact.
    ///
    /// The contract (checked by `algo::tests::packed_states_unpack_to_themselves` for every
    /// kind in the table): [`Kind::unpack`] under the same rule gives back exactly `self`. So:
    /// field widths depend on the rule only (a count up to the limit: [`Packer::count`]), never
    /// on the values; a field that does not fit its width fails the packing (a count above a
    /// lowered limit) rather than being clipped; a time goes last, as the anchor
    /// ([`Packer::anchor`]), with `min_bits` covering the span of times that keys of the rule
    /// alive at the same time can hold (a window, a bucket's depth), so that they share its
    /// high part; any further time is written relative to the anchor or to the rule, or the
    /// state stays boxed. Pure: no allocation, no clock.
    fn pack(&self, _rule: &Rule, _out: &mut Packer) -> bool {
        false
    }

    /// Whether [`Kind::pack`] may succeed, from the state's shape alone: a cheap check that lets
    /// a boxed state that cannot pack skip every packing attempt on a write. `false` must imply
    /// that `pack` fails; the default is `false` exactly when `pack` is not implemented.
    #[inline]
    fn may_pack(&self) -> bool {
        false
    }

    /// Reads what [`Kind::pack`] wrote under the same `rule`: exactly the state packed.
    fn unpack(_rule: &Rule, _bits: &mut Unpacker) -> Option<Self> {
        None
    }

    /// Charges `cost` ≥ 1 at `now_us` under `rule` (the state carried over from `stored` first)
    /// whatever the capacity says (`RL.CHARGE`): what exceeds the capacity is a *debt*, which
    /// later requests wait out. Each kind documents its debt and its bound.
    fn charge(
        &mut self,
        stored: &Rule,
        rule: &Rule,
        cost: u64,
        now_us: u64,
        bounds: &Bounds,
    ) -> Change;

    /// The state [`Kind::charge`] creates on an absent key.
    fn charge_absent(rule: &Rule, cost: u64, now_us: u64) -> Self;

    /// Gives back up to `amount` ≥ 1 of what was charged, at `now_us` under `rule` (carried
    /// over from `stored` first), never below empty (`RL.REFUND`). [`Change::Unchanged`] when
    /// the state holds nothing at `now_us` (it is left alone: it equals an absent key),
    /// [`Change::Emptied`] when the refund leaves nothing.
    fn refund(
        &mut self,
        stored: &Rule,
        rule: &Rule,
        amount: u64,
        now_us: u64,
        bounds: &Bounds,
    ) -> Change;

    /// A state that holds nothing at `now_us` under `rule`: what a key keeps when it must live
    /// on for its block alone (a refund emptied it, or a rule change left nothing).
    fn nothing(rule: &Rule, now_us: u64) -> Self;

    /// Whether the state holds something the previous payload version cannot express (a gcra
    /// debt): its payload then needs a reader of the current version (see `datatype::codec`).
    fn needs_current_reader(&self) -> bool {
        false
    }
}

/// Generates [`Algorithm`], [`State`] and the dispatch from the table of kinds.
macro_rules! state_kinds {
    ($($tag:literal => $variant:ident($ty:ty), $name:literal;)+) => {
        /// Which algorithm a limiter runs (one per state kind). Names follow the Python `limits`
        /// library.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Algorithm {
            $(
                #[doc = concat!("`", $name, "`: see [`", stringify!($ty), "`].")]
                $variant,
            )+
        }

        /// The state of one key: one variant per kind, and `Blocked` for a kind's state under a
        /// penalty block (boxed: keys never blocked pay nothing for it; never nested).
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum State {
            $(
                #[doc = concat!("`", $name, "`.")]
                $variant($ty),
            )+
            /// A kind's state under a block (see [`super::block`]).
            Blocked(Box<super::block::Blocked>),
        }

        impl Algorithm {
            /// Every algorithm, in tag order.
            pub const ALL: &'static [Algorithm] = &[$(Algorithm::$variant),+];

            /// The name used in commands, replies and errors.
            pub fn name(self) -> &'static str {
                match self { $(Algorithm::$variant => $name,)+ }
            }

            /// The payload tag (see `datatype::codec`).
            pub fn tag(self) -> u8 {
                match self { $(Algorithm::$variant => $tag,)+ }
            }

            /// The algorithm of a payload tag.
            pub fn from_tag(tag: u8) -> Option<Algorithm> {
                match tag { $($tag => Some(Algorithm::$variant),)+ _ => None }
            }

            /// Whether its rules take `BURST`.
            pub fn takes_burst(self) -> bool {
                match self { $(Algorithm::$variant => <$ty as Kind>::TAKES_BURST,)+ }
            }

            /// Whether `COST 0` may write (see [`Kind::COST_ZERO_WRITES`]).
            pub fn cost_zero_writes(self) -> bool {
                match self { $(Algorithm::$variant => <$ty as Kind>::COST_ZERO_WRITES,)+ }
            }

            /// Whether its state lives through its expiry's ms (see
            /// [`Kind::LIVES_THROUGH_EXPIRY_MS`]).
            pub fn lives_through_expiry_ms(self) -> bool {
                match self { $(Algorithm::$variant => <$ty as Kind>::LIVES_THROUGH_EXPIRY_MS,)+ }
            }

            /// How its writes reach replicas.
            pub fn replication(self) -> Replication {
                match self { $(Algorithm::$variant => <$ty as Kind>::REPLICATION,)+ }
            }

            /// Whether it is a rate limit (`RL.ALLOW`, `ALGO`), not leases.
            pub fn is_rate_limit(self) -> bool {
                match self { $(Algorithm::$variant => <$ty as Kind>::RATE_LIMIT,)+ }
            }

            /// Decides against an absent key (the caller's rule chooses the kind).
            pub(crate) fn decide_absent(
                self,
                rule: &Rule,
                cost: u64,
                now_us: u64,
            ) -> (Decision, Option<State>) {
                match self {
                    $(Algorithm::$variant => {
                        let (d, s) = <$ty as Kind>::decide_absent(rule, cost, now_us);
                        (d, s.map(State::$variant))
                    })+
                }
            }

            /// Reads a state of this kind from a payload of version 2 (`current` false) or later.
            pub(crate) fn decode_state(
                self,
                bytes: &mut Reader<'_>,
                rule: &Rule,
                current: bool,
            ) -> Option<State> {
                match self {
                    $(Algorithm::$variant => {
                        let mut s = <$ty as Kind>::decode(bytes, rule)?;
                        if current {
                            s.decode_current(bytes)?;
                        }
                        Some(State::$variant(s))
                    })+
                }
            }

            /// The state a replayed hit creates on an absent key.
            pub(crate) fn replay_absent(self, hit: &Hit) -> Option<State> {
                match self {
                    $(Algorithm::$variant => <$ty as Kind>::replay_absent(hit).map(State::$variant),)+
                }
            }

            /// Reads a packed state of this kind (see [`Kind::unpack`]).
            #[inline(always)]
            pub fn unpack_state(self, rule: &Rule, bits: &mut Unpacker) -> Option<State> {
                match self {
                    $(Algorithm::$variant => <$ty as Kind>::unpack(rule, bits).map(State::$variant),)+
                }
            }

            /// The state a charge creates on an absent key.
            pub(crate) fn charge_absent(self, rule: &Rule, cost: u64, now_us: u64) -> State {
                match self {
                    $(Algorithm::$variant => State::$variant(<$ty as Kind>::charge_absent(rule, cost, now_us)),)+
                }
            }

            /// A state of this kind that holds nothing at `now_us`.
            pub(crate) fn nothing(self, rule: &Rule, now_us: u64) -> State {
                match self {
                    $(Algorithm::$variant => State::$variant(<$ty as Kind>::nothing(rule, now_us)),)+
                }
            }
        }

        impl State {
            /// The algorithm this state belongs to.
            pub fn algorithm(&self) -> Algorithm {
                match self {
                    $(State::$variant(_) => Algorithm::$variant,)+
                    State::Blocked(b) => b.state.algorithm(),
                }
            }

            pub(crate) fn decide(
                &mut self,
                stored: &Rule,
                rule: &Rule,
                cost: u64,
                now_us: u64,
                bounds: &Bounds,
            ) -> (Decision, Change) {
                match self {
                    $(State::$variant(s) => <$ty as Kind>::decide(s, stored, rule, cost, now_us, bounds),)+
                    State::Blocked(b) => b.state.decide(stored, rule, cost, now_us, bounds),
                }
            }

            pub(crate) fn peek(&self, stored: &Rule, rule: &Rule, cost: u64, now_us: u64) -> Decision {
                match self {
                    $(State::$variant(s) => <$ty as Kind>::peek(s, stored, rule, cost, now_us),)+
                    State::Blocked(b) => b.state.peek(stored, rule, cost, now_us),
                }
            }

            /// The kind's state carried over (a block is not carried: the caller keeps it).
            pub(crate) fn carried_over(&self, stored: &Rule, rule: &Rule, now_us: u64) -> Option<State> {
                match self {
                    $(State::$variant(s) => <$ty as Kind>::carried_over(s, stored, rule, now_us).map(State::$variant),)+
                    State::Blocked(b) => b.state.carried_over(stored, rule, now_us),
                }
            }

            /// Whether the kind's state lies ahead of `now_us` (the block is the limiter's).
            pub(crate) fn is_ahead(&self, rule: &Rule, now_us: u64) -> bool {
                match self {
                    $(State::$variant(s) => <$ty as Kind>::is_ahead(s, rule, now_us),)+
                    State::Blocked(b) => b.state.is_ahead(rule, now_us),
                }
            }

            /// When the kind's state is as absent (the block is the limiter's).
            pub(crate) fn expires_at_us(&self, rule: &Rule) -> u64 {
                match self {
                    $(State::$variant(s) => <$ty as Kind>::expires_at_us(s, rule),)+
                    State::Blocked(b) => b.state.expires_at_us(rule),
                }
            }

            pub(crate) fn is_valid(&self, rule: &Rule) -> bool {
                match self {
                    $(State::$variant(s) => <$ty as Kind>::is_valid(s, rule),)+
                    State::Blocked(b) => {
                        b.block.is_valid()
                            && !matches!(b.state, State::Blocked(_))
                            && b.state.is_valid(rule)
                    }
                }
            }

            /// Appends the kind's state payload bytes (a block is an envelope record).
            pub fn encode(&self, out: &mut impl Sink) {
                match self {
                    $(State::$variant(s) => <$ty as Kind>::encode(s, out),)+
                    State::Blocked(b) => b.state.encode(out),
                }
            }

            pub(crate) fn inspect(&self, stored: &Rule, now_us: u64, out: &mut Fields) {
                match self {
                    $(State::$variant(s) => <$ty as Kind>::inspect(Some(s), stored, now_us, out),)+
                    State::Blocked(b) => b.state.inspect(stored, now_us, out),
                }
            }

            pub(crate) fn replay(&mut self, stored: &Rule, hit: &Hit) -> Option<Change> {
                match self {
                    $(State::$variant(s) => <$ty as Kind>::replay(s, stored, hit),)+
                    State::Blocked(b) => b.state.replay(stored, hit),
                }
            }

            pub(crate) fn hit(&self, rule: &Rule, now_us: u64, cost: u64, bounds: &Bounds) -> Option<Hit> {
                match self {
                    $(State::$variant(s) => <$ty as Kind>::hit(s, rule, now_us, cost, bounds),)+
                    State::Blocked(b) => b.state.hit(rule, now_us, cost, bounds),
                }
            }

            pub(crate) fn charge(
                &mut self,
                stored: &Rule,
                rule: &Rule,
                cost: u64,
                now_us: u64,
                bounds: &Bounds,
            ) -> Change {
                match self {
                    $(State::$variant(s) => <$ty as Kind>::charge(s, stored, rule, cost, now_us, bounds),)+
                    State::Blocked(b) => b.state.charge(stored, rule, cost, now_us, bounds),
                }
            }

            pub(crate) fn refund(
                &mut self,
                stored: &Rule,
                rule: &Rule,
                amount: u64,
                now_us: u64,
                bounds: &Bounds,
            ) -> Change {
                match self {
                    $(State::$variant(s) => <$ty as Kind>::refund(s, stored, rule, amount, now_us, bounds),)+
                    State::Blocked(b) => b.state.refund(stored, rule, amount, now_us, bounds),
                }
            }

            /// Whether the kind's state needs a reader of the current payload version.
            pub fn needs_current_reader(&self) -> bool {
                match self {
                    $(State::$variant(s) => <$ty as Kind>::needs_current_reader(s),)+
                    State::Blocked(b) => b.state.needs_current_reader(),
                }
            }

            /// Packs the state stored under `rule` (see [`Kind::pack`]); `false`: it does not fit.
            /// A state under a penalty block stays boxed (blocks are rare and short-lived; the
            /// key is compact again from the write that drops its ended block).
            #[inline(always)]
            pub fn pack(&self, rule: &Rule, out: &mut Packer) -> bool {
                match self {
                    $(State::$variant(s) => <$ty as Kind>::pack(s, rule, out),)+
                    State::Blocked(_) => false,
                }
            }

            /// Whether [`State::pack`] may succeed (see [`Kind::may_pack`]).
            #[inline(always)]
            pub fn may_pack(&self) -> bool {
                match self {
                    $(State::$variant(s) => <$ty as Kind>::may_pack(s),)+
                    State::Blocked(_) => false,
                }
            }
        }
    };
}

use super::block::{Block, Blocked};
use super::{
    FixedWindowState, GcraState, LeasesState, LimitsSlidingState, MovingWindowState,
    SlidingWindowState,
};

// The table: tag (payload byte, never reused) => variant(state type), name. Tags are part of the
// RDB format.
state_kinds! {
    1 => SlidingWindow(SlidingWindowState), "sliding-window";
    2 => FixedWindow(FixedWindowState), "fixed-window";
    3 => Gcra(GcraState), "gcra";
    4 => MovingWindow(MovingWindowState), "moving-window";
    5 => LimitsSlidingWindow(LimitsSlidingState), "limits-sliding-window";
    6 => Leases(LeasesState), "leases";
}

impl Algorithm {
    /// The rate limits (every kind but leases), in tag order.
    pub fn rate_limits() -> impl Iterator<Item = Algorithm> {
        Algorithm::ALL.iter().copied().filter(|a| a.is_rate_limit())
    }

    /// Parses a command-line name, case-insensitively.
    ///
    /// ```
    /// use redis_ratelimit::algo::Algorithm;
    /// assert_eq!(Algorithm::from_name(b"GCRA"), Some(Algorithm::Gcra));
    /// assert_eq!(Algorithm::from_name(b"token-bucket"), None);
    /// ```
    pub fn from_name(name: &[u8]) -> Option<Algorithm> {
        // The name as written first (one compare per name; clients send it in lower case), any
        // case after.
        let all = Algorithm::ALL.iter().copied();
        all.clone()
            .find(|a| a.name().as_bytes() == name)
            .or_else(|| {
                all.into_iter()
                    .find(|a| a.name().as_bytes().eq_ignore_ascii_case(name))
            })
    }
}

impl State {
    /// The kind's own state (inside a block, if any).
    pub fn kind(&self) -> &State {
        match self {
            State::Blocked(b) => &b.state,
            other => other,
        }
    }

    /// The kind's own state, to change in place (inside a block, if any).
    pub fn kind_mut(&mut self) -> &mut State {
        match self {
            State::Blocked(b) => &mut b.state,
            other => other,
        }
    }

    /// The block stored with the state, if any (it may have ended: see [`Block::active`]).
    pub fn block(&self) -> Option<Block> {
        match self {
            State::Blocked(b) => Some(b.block),
            _ => None,
        }
    }

    /// Stores `block` with the state (`None` removes it), keeping the kind's state.
    pub fn set_block(&mut self, block: Option<Block>) {
        match (block, &mut *self) {
            (Some(block), State::Blocked(b)) => b.block = block,
            (Some(block), _) => {
                let state = self.take_kind();
                *self = State::Blocked(Box::new(Blocked { block, state }));
            }
            (None, State::Blocked(_)) => *self = self.take_kind(),
            (None, _) => {}
        }
    }

    /// Replaces the kind's state, keeping the block.
    pub fn set_kind(&mut self, state: State) {
        let state = match state {
            State::Blocked(b) => b.state,
            other => other,
        };
        *self.kind_mut() = state;
    }

    /// Moves the kind's state out, leaving a cheap placeholder in `self`.
    fn take_kind(&mut self) -> State {
        let placeholder = State::FixedWindow(FixedWindowState {
            window_start_us: 0,
            count: 0,
        });
        match std::mem::replace(self, placeholder) {
            State::Blocked(b) => b.state,
            other => other,
        }
    }
}
