//! Leases: exclusive claims that a dead holder cannot keep (ARCHITECTURE.md
//! principle 7, SPEC.md R-OPS-4).
//!
//! A request may die between any two store calls, so a claim taken with a
//! bare `increment` ("the caller that gets 1 wins") is held for ever by a
//! request that died after taking it. A lease is that same claim, made in
//! time windows of [`LEASE_MILLIS`]: the claim counter of a name is
//! `{name}/lease/{window}`, and a claim in window `w` blocks claimants of
//! windows `w` and `w + 1` only. Whoever claims after that takes over.
//!
//! The store offers `increment` and plain reads only (no compare-and-swap
//! on an absent key, principle 4), so a claim is three steps:
//! 1. *probe*: read the markers of windows `w - 1` and `w`; either present
//!    means someone holds it (or held it moments ago): busy, and nothing is
//!    written, so a stream of retries cannot keep a dead claim alive;
//! 2. *take*: `increment` the marker of `w`; anything but 1 is busy;
//! 3. *confirm*: read the markers of `w - 1` and `w + 1`; either present
//!    means a claimant of a neighbouring window raced us: back off.
//!
//! Two claimants of neighbouring windows cannot both confirm (each one's
//! confirm read follows its own take, so at least one sees the other), and a
//! claimant two windows on only starts once the earlier claim's window has
//! ended. So a holder owns the name until [`Lease::expires_at`], at least one
//! full window after it took it; it must not write as the holder after
//! that, which [`Lease::keep`] checks (and renews the lease into the next
//! window for work that takes longer). A request that needs longer than a
//! window between two of its checks loses its lease, as with any lease.
//!
//! On a hot path those five steps are too many: Spin's Redis store reads
//! key by key, so every key is a round trip. [`claim_first`] is a claim
//! that costs one `increment` and no read for the first claimant of a
//! name, which is nearly every claimant of a provider's message id: the
//! increment's delta carries the claimant's time, so a later claimant
//! learns from the answer alone when the name was first claimed, and takes
//! over with a lease once that first claim has surely expired.

use crate::ports::{KeyValue, StoreError, UnixMillis};

/// The length of a lease window. A claim lasts from one to two windows: long
/// enough for any request (hosts end requests well before), short enough
/// that a provider's or flow's retry after a crash finds it expired.
pub const LEASE_MILLIS: i64 = 30_000;
/// A holder stops this long before its lease ends: a write sent at the last
/// moment must not land after someone else took over.
const SAFETY_MILLIS: i64 = 5_000;

fn window_of(now: UnixMillis) -> i64 {
    now.div_euclid(LEASE_MILLIS)
}

fn marker(name: &str, window: i64) -> String {
    format!("{name}/lease/{window}")
}

/// The keys to read before claiming `name` at `now`; pass their values to
/// [`take`].
fn probe_keys(name: &str, now: UnixMillis) -> [String; 2] {
    let window = window_of(now);
    [marker(name, window - 1), marker(name, window)]
}

/// When a busy claim is sure to have expired: the caller's `Retry-After`.
pub fn retry_after_seconds() -> u64 {
    (2 * LEASE_MILLIS / 1000) as u64
}

/// A claim taken but not yet confirmed: read [`Taken::confirm_keys`], then
/// [`Taken::confirm`].
#[derive(Debug)]
#[must_use]
struct Taken {
    name: String,
    window: i64,
}

/// A confirmed claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    name: String,
    /// The window the claim was taken in.
    first: i64,
    /// The latest window it was renewed into.
    window: i64,
}

/// Step 2: takes the claim unless the probe (the values of [`probe_keys`])
/// found a holder. `None` is busy.
fn take(
    kv: &dyn KeyValue,
    name: &str,
    now: UnixMillis,
    probed: &[Option<Vec<u8>>],
) -> Result<Option<Taken>, StoreError> {
    if probed.iter().any(Option::is_some) {
        return Ok(None);
    }
    let window = window_of(now);
    if kv.increment(&marker(name, window), 1)? != 1 {
        return Ok(None);
    }
    Ok(Some(Taken {
        name: name.to_owned(),
        window,
    }))
}

impl Taken {
    fn confirm_keys(&self) -> [String; 2] {
        [
            marker(&self.name, self.window - 1),
            marker(&self.name, self.window + 1),
        ]
    }

    /// Step 3: the lease, unless a claimant of a neighbouring window raced
    /// this one (`found` are the values of [`Taken::confirm_keys`]).
    fn confirm(self, found: &[Option<Vec<u8>>]) -> Option<Lease> {
        found.iter().all(Option::is_none).then_some(Lease {
            name: self.name,
            first: self.window,
            window: self.window,
        })
    }
}

/// All three steps with reads of their own; `None` is busy.
pub fn acquire(
    kv: &dyn KeyValue,
    name: &str,
    now: UnixMillis,
) -> Result<Option<Lease>, StoreError> {
    let probed = kv.get_many(&probe_keys(name, now))?;
    let Some(taken) = take(kv, name, now, &probed)? else {
        return Ok(None);
    };
    let found = kv.get_many(&taken.confirm_keys())?;
    Ok(taken.confirm(&found))
}

impl Lease {
    /// Until when the holder owns the name: the end of the window after the
    /// one it last claimed.
    pub fn expires_at(&self) -> UnixMillis {
        (self.window + 2) * LEASE_MILLIS
    }

    /// Whether the holder may still act as the holder at `now`, renewing
    /// the lease into the current window first when it has moved on (one
    /// `increment`). `false`: the lease is lost; stop without writing.
    pub fn keep(&mut self, kv: &dyn KeyValue, now: UnixMillis) -> Result<bool, StoreError> {
        if now >= self.expires_at() - SAFETY_MILLIS {
            return Ok(false);
        }
        let window = window_of(now);
        if window > self.window {
            // Only the holder claims the window after its own: claimants
            // of it see the holder's marker in their probe.
            if kv.increment(&marker(&self.name, window), 1)? != 1 {
                return Ok(false);
            }
            self.window = window;
        }
        Ok(true)
    }

    /// Gives the name back now instead of at expiry, for work that the
    /// next claimant should continue at once. Best effort: a lease that
    /// cannot be released still expires.
    pub fn release(self, kv: &dyn KeyValue) {
        let keys: Vec<String> = (self.first..=self.window)
            .map(|window| marker(&self.name, window))
            .collect();
        let _ = kv.delete_many(&keys);
    }
}

/// The low bits of a first-claim counter count the claims; the bits above
/// them sum the claimants' times, in seconds.
const CLAIM_COUNT_BITS: u32 = 16;

/// A name claimed with [`claim_first`].
#[derive(Debug)]
#[must_use]
pub enum Claimed {
    /// Nobody claimed the name before: the caller holds it.
    First(Holder),
    /// Someone did: the name may be done with (the caller checks its
    /// outcome), held, or left behind by a holder that died.
    After(Earlier),
}

/// What a later claimant of a name learned from its claim.
#[derive(Debug)]
#[must_use]
pub struct Earlier {
    key: String,
    /// No later than this second, the name was first claimed.
    first_by_second: i64,
}

/// The holder of a name claimed with [`claim_first`].
#[derive(Debug)]
pub enum Holder {
    /// The first claimant: it cannot renew (its claim is one counter),
    /// so it holds the name for one lease length from its claim.
    First { claimed_at: UnixMillis },
    /// A claimant that took over from a first claimant that died.
    TakenOver(Lease),
}

/// Claims the counter `key` with one `increment` and no read.
///
/// The delta is `(second << CLAIM_COUNT_BITS) + 1`, so the counter's value
/// before the increment (the answer minus the delta) tells how many claimed
/// before and the sum of their seconds. The first claimant sees zero and
/// holds the name; a later one knows the first claim came no later than
/// the average of the earlier ones (the first of them is the smallest,
/// give or take the hosts' clock skew, which [`SAFETY_MILLIS`] covers).
/// About 78,000 claims of one name fit before the sum overflows.
///
/// A key that holds something other than a counter fails the increment:
/// a caller may overwrite the counter with the claim's outcome, in the
/// write that completes the work, so that a later claim finds it done.
pub fn claim_first(kv: &dyn KeyValue, key: &str, now: UnixMillis) -> Result<Claimed, StoreError> {
    let second = now.max(0) / 1000;
    let delta = (second << CLAIM_COUNT_BITS) + 1;
    let before = kv.increment(key, delta)? - delta;
    let count = before & ((1 << CLAIM_COUNT_BITS) - 1);
    if count == 0 {
        return Ok(Claimed::First(Holder::First { claimed_at: now }));
    }
    Ok(Claimed::After(Earlier {
        key: key.to_owned(),
        first_by_second: (before >> CLAIM_COUNT_BITS) / count,
    }))
}

impl Earlier {
    /// Takes the name over, once its first claim has surely expired, with
    /// a lease of its own among the claimants that take over. `None`: the
    /// first claimant may still be at work, or another took over.
    pub fn take_over(
        self,
        kv: &dyn KeyValue,
        now: UnixMillis,
    ) -> Result<Option<Holder>, StoreError> {
        let first_expired_by = (self.first_by_second + 1) * 1000 + LEASE_MILLIS + SAFETY_MILLIS;
        if now < first_expired_by {
            return Ok(None);
        }
        Ok(acquire(kv, &format!("{}/takeover", self.key), now)?.map(Holder::TakenOver))
    }
}

impl Holder {
    /// Whether the holder may still act as the holder at `now` (see
    /// [`Lease::keep`]; a first claimant cannot renew).
    pub fn keep(&mut self, kv: &dyn KeyValue, now: UnixMillis) -> Result<bool, StoreError> {
        match self {
            Holder::First { claimed_at } => Ok(now < *claimed_at + LEASE_MILLIS - SAFETY_MILLIS),
            Holder::TakenOver(lease) => lease.keep(kv, now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryKeyValue;

    const T0: i64 = 1_800_000_000_000 - 1_800_000_000_000 % LEASE_MILLIS;

    #[test]
    fn one_claimant_holds_a_name_until_its_lease_ends_then_anyone_may_take_it() {
        let kv = MemoryKeyValue::default();
        let lease = acquire(&kv, "n", T0 + 10).unwrap().expect("the first wins");
        assert_eq!(acquire(&kv, "n", T0 + 20).unwrap(), None, "same window");
        assert_eq!(
            acquire(&kv, "n", T0 + LEASE_MILLIS + 5).unwrap(),
            None,
            "the next window"
        );
        // The holder died: two windows on, a retry takes over.
        let later = T0 + 2 * LEASE_MILLIS;
        assert!(lease.expires_at() <= later);
        assert!(acquire(&kv, "n", later).unwrap().is_some());
        assert_eq!(acquire(&kv, "n", later + 1).unwrap(), None);
    }

    #[test]
    fn retries_during_a_dead_claim_do_not_keep_it_alive() {
        let kv = MemoryKeyValue::default();
        let _dead = acquire(&kv, "n", T0).unwrap().unwrap();
        // A retry every few seconds for a minute and a half: every one is
        // busy until the dead claim's second window has passed, then one wins.
        let mut winner = None;
        for step in 0..30 {
            let now = T0 + step * 3_000;
            if let Some(lease) = acquire(&kv, "n", now).unwrap() {
                winner = Some(now);
                drop(lease);
                break;
            }
        }
        assert_eq!(winner, Some(T0 + 2 * LEASE_MILLIS));
    }

    #[test]
    fn claimants_of_neighbouring_windows_never_both_hold() {
        // Every interleaving of A (window w) and B (window w + 1): probe,
        // take, confirm each, in any order that keeps each one's own steps
        // in order.
        let now = [T0 + LEASE_MILLIS - 1, T0 + LEASE_MILLIS];
        for order in interleavings(3, 3) {
            let kv = MemoryKeyValue::default();
            let mut probed: [Vec<Option<Vec<u8>>>; 2] = Default::default();
            let mut taken: [Option<Taken>; 2] = [None, None];
            let mut held = [false, false];
            let mut step = [0, 0];
            for who in order {
                match step[who] {
                    0 => probed[who] = kv.get_many(&probe_keys("n", now[who])).unwrap(),
                    1 => taken[who] = take(&kv, "n", now[who], &probed[who]).unwrap(),
                    _ => {
                        if let Some(t) = taken[who].take() {
                            let found = kv.get_many(&t.confirm_keys()).unwrap();
                            held[who] = t.confirm(&found).is_some();
                        }
                    }
                }
                step[who] += 1;
            }
            assert!(!(held[0] && held[1]), "both hold");
        }
    }

    fn interleavings(a: usize, b: usize) -> Vec<Vec<usize>> {
        if a == 0 || b == 0 {
            return vec![[vec![0; a], vec![1; b]].concat()];
        }
        let mut all = Vec::new();
        for mut rest in interleavings(a - 1, b) {
            rest.insert(0, 0);
            all.push(rest);
        }
        for mut rest in interleavings(a, b - 1) {
            rest.insert(0, 1);
            all.push(rest);
        }
        all
    }

    #[test]
    fn a_holder_renews_into_the_next_window_and_stops_when_its_lease_is_over() {
        let kv = MemoryKeyValue::default();
        let mut lease = acquire(&kv, "n", T0).unwrap().unwrap();
        assert!(lease.keep(&kv, T0 + LEASE_MILLIS + 1).unwrap());
        // Renewed: a claimant two windows after the first is still busy.
        assert_eq!(acquire(&kv, "n", T0 + 2 * LEASE_MILLIS).unwrap(), None);
        assert!(lease.keep(&kv, T0 + 2 * LEASE_MILLIS + 1).unwrap());
        // Too late to renew: it is lost, whatever the store says.
        assert!(!lease.keep(&kv, lease.expires_at()).unwrap());
        let released = acquire(&kv, "m", T0).unwrap().unwrap();
        released.release(&kv);
        assert!(acquire(&kv, "m", T0 + 1).unwrap().is_some(), "given back");
    }

    #[test]
    fn the_first_claimant_holds_at_one_write_and_later_ones_take_over_once_it_expired() {
        let kv = MemoryKeyValue::default();
        let Claimed::First(mut holder) = claim_first(&kv, "m", T0 + 10).unwrap() else {
            panic!("the first claimant holds");
        };
        assert!(holder.keep(&kv, T0 + 20_000).unwrap());
        assert!(!holder.keep(&kv, T0 + LEASE_MILLIS).unwrap(), "no renewal");
        // A redelivery while the first may be at work is busy, however
        // many come, and does not keep the dead claim alive.
        for step in 1..=10 {
            let now = T0 + step * 3_000;
            let Claimed::After(earlier) = claim_first(&kv, "m", now).unwrap() else {
                panic!("claimed before");
            };
            assert!(earlier.take_over(&kv, now).unwrap().is_none(), "{step}");
        }
        // The first claim expired: one of two claimants takes over.
        let later = T0 + 2 * LEASE_MILLIS;
        let takers: Vec<bool> = (0..2)
            .map(|_| match claim_first(&kv, "m", later).unwrap() {
                Claimed::After(earlier) => earlier.take_over(&kv, later).unwrap().is_some(),
                Claimed::First(_) => panic!("claimed before"),
            })
            .collect();
        assert_eq!(takers, [true, false]);
        assert!(matches!(
            claim_first(&kv, "n", later).unwrap(),
            Claimed::First(_)
        ));
    }

    #[test]
    fn the_first_claim_is_dated_by_the_earliest_claims_whatever_comes_after() {
        // The first claimant died at T0; a flood of redeliveries keeps
        // coming. Each claimant's average of earlier claims trails behind,
        // so a takeover comes within a few lease lengths.
        let kv = MemoryKeyValue::default();
        let _dead = claim_first(&kv, "m", T0).unwrap();
        let mut taken = None;
        for step in 1..200 {
            let now = T0 + step * 1_000;
            if let Claimed::After(earlier) = claim_first(&kv, "m", now).unwrap() {
                if earlier.take_over(&kv, now).unwrap().is_some() {
                    taken = Some(now - T0);
                    break;
                }
            }
        }
        let waited = taken.expect("taken over");
        assert!(waited > LEASE_MILLIS, "{waited}");
        assert!(waited <= 4 * LEASE_MILLIS, "{waited}");
    }
}
