//! Leases' reference model, written from the definition (a set of leases with ends): what the
//! property tests (`tests.rs`) and the fuzz target `algo` compare the real code with.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::collections::BTreeMap;

/// The definition, as plainly as it can be written: a map id → end.
///
/// * held at `t`: the leases with `end > t`, each read as ending at `min(end, t + longest)`;
/// * a write at `t` first keeps exactly that (so ended leases go and clamped ends are stored;
///   `longest` is forgotten when nothing is held), then makes its change;
/// * acquire: renew a held id, or add one when fewer than `limit` are held, else deny with
///   `retry` = the `(held − limit + 1)`-th earliest end, `reset` = the latest, and write (only)
///   if some end was clamped;
/// * release: remove a held id;
/// * server ids: from `max(t, last + 1)`, the first number no held lease has.
#[derive(Clone, Debug, Default)]
pub struct Model {
    /// Every stored lease: id → end (µs).
    pub ends: BTreeMap<Vec<u8>, u64>,
    /// The longest lease granted since the key was last empty.
    pub longest: u64,
    /// The last id the server made.
    pub last_id: u64,
}

/// What `RL.ACQUIRE` answers, in the model's terms.
#[derive(Debug, PartialEq, Eq)]
pub struct ModelGrant {
    /// Granted.
    pub allowed: bool,
    /// The lease's id, when granted.
    pub id: Option<Vec<u8>>,
    /// Leases held after the call.
    pub in_flight: u64,
    /// µs until a lease frees up (0 when granted).
    pub retry: u64,
    /// µs until the last lease ends.
    pub reset: u64,
}

impl Model {
    /// The leases held at `t`, with their ends as read then.
    pub fn read(&self, t: u64) -> BTreeMap<Vec<u8>, u64> {
        self.ends
            .iter()
            .filter(|(_, &e)| e > t)
            .map(|(id, &e)| (id.clone(), e.min(t + self.longest)))
            .collect()
    }

    /// What a write at `t` keeps.
    pub fn write(&mut self, t: u64) {
        self.ends = self.read(t);
        if self.ends.is_empty() {
            self.longest = 0;
        }
    }

    /// `RL.ACQUIRE` at `t`.
    pub fn acquire(&mut self, limit: u64, lease: u64, id: Option<&[u8]>, t: u64) -> ModelGrant {
        let held = self.read(t);
        let renew = id.is_some_and(|id| held.contains_key(id));
        if renew || (held.len() as u64) < limit {
            self.write(t);
            let id = match id {
                Some(id) => id.to_vec(),
                None => {
                    let mut c = t.max(self.last_id + 1);
                    while held.contains_key(c.to_string().as_bytes()) {
                        c += 1;
                    }
                    self.last_id = c;
                    c.to_string().into_bytes()
                }
            };
            self.ends.insert(id.clone(), t + lease);
            self.longest = self.longest.max(lease);
            return ModelGrant {
                allowed: true,
                id: Some(id),
                in_flight: self.ends.len() as u64,
                retry: 0,
                reset: self.ends.values().max().unwrap() - t,
            };
        }
        let mut ends: Vec<u64> = held.values().copied().collect();
        ends.sort_unstable();
        let k = held.len() - limit as usize; // 0-based: the (held − limit + 1)-th earliest
        let grant = ModelGrant {
            allowed: false,
            id: None,
            in_flight: held.len() as u64,
            retry: ends[k] - t,
            reset: ends.last().unwrap() - t,
        };
        if self.ends.values().any(|&e| e > t + self.longest) {
            self.write(t);
        }
        grant
    }

    /// `RL.RELEASE` at `t`: whether it released.
    pub fn release(&mut self, id: &[u8], t: u64) -> bool {
        if !self.read(t).contains_key(id) {
            return false;
        }
        self.write(t);
        self.ends.remove(id);
        if self.ends.is_empty() {
            *self = Model::default(); // the key is deleted with its last lease
        }
        true
    }
}
