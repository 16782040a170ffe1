//! What the counter kinds (sliding-window, fixed-window, gcra) share: a small `Copy` state that
//! a request first *views* under its own rule — clamped after a clock step, aged under the rule
//! it was written with, carried over to the request's rule — and that a pure function then
//! decides against, returning the state to write.

use super::kind::Change;
use super::{Decision, RetryAfter, Rule};

/// A counter kind's two pure steps.
pub(crate) trait Counter: Copy {
    /// The state as `rule` sees it at `now_us` (see the module docs); `None` = as absent.
    fn view(&self, stored: &Rule, rule: &Rule, now_us: u64) -> Option<Self>;

    /// Decides against a viewed state (`None` = absent): the decision and, iff admitted with
    /// `cost > 0`, the state to store.
    fn decide_view(
        view: Option<&Self>,
        rule: &Rule,
        cost: u64,
        now_us: u64,
    ) -> (Decision, Option<Self>);

    /// Whether the state is ahead of anything possible at `now_us` under `rule`.
    fn ahead(&self, rule: &Rule, now_us: u64) -> bool;
}

/// `Kind::decide` of a counter: stores what the algorithm wrote, and after a denial the viewed
/// state when the view converted it (a rule change or a clamp), so that the key's TTL and every
/// later reply follow from what the denial said.
pub(crate) fn decide<S: Counter>(
    state: &mut S,
    stored: &Rule,
    rule: &Rule,
    cost: u64,
    now_us: u64,
) -> (Decision, Change) {
    let converted = stored != rule || state.ahead(stored, now_us);
    let view = state.view(stored, rule, now_us);
    let (d, written) = S::decide_view(view.as_ref(), rule, cost, now_us);
    let to_store = match (written, d.retry_after) {
        (Some(w), _) => Some(w),
        (None, RetryAfter::After(_)) if converted => view,
        (None, _) => None,
    };
    match to_store {
        Some(s) => {
            *state = s;
            (d, Change::Updated)
        }
        None => (d, Change::Unchanged),
    }
}

/// `Kind::peek` of a counter.
pub(crate) fn peek<S: Counter>(
    state: &S,
    stored: &Rule,
    rule: &Rule,
    cost: u64,
    now_us: u64,
) -> Decision {
    S::decide_view(
        state.view(stored, rule, now_us).as_ref(),
        rule,
        cost,
        now_us,
    )
    .0
}

/// `Kind::refund` of a counter: `refund` gets the viewed state (`None` from it: nothing left).
/// A state that holds nothing at `now_us` is left alone.
pub(crate) fn refund<S: Counter>(
    state: &mut S,
    stored: &Rule,
    rule: &Rule,
    now_us: u64,
    refund: impl FnOnce(&S) -> Option<S>,
) -> Change {
    let Some(view) = state.view(stored, rule, now_us) else {
        return Change::Unchanged;
    };
    match refund(&view) {
        Some(s) => {
            *state = s;
            Change::Updated
        }
        None => Change::Emptied,
    }
}
