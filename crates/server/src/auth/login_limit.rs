//! Login attempts, slowed where they fail. An address that keeps failing waits longer and
//! longer (after [`FREE_FAILURES`], 1 s doubling up to [`MAX_WAIT`]); so does one address
//! against one account (after [`FREE_PAIR_FAILURES`]). An account under attack from many
//! addresses ([`ACCOUNT_ALARM`] failures in the window) takes no more tries from an address that
//! has already failed on it — while its owner, from an address without failures, still logs in.
//! Kept in memory, bounded; a restart forgets it (the attacker has gained one window).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(15 * 60);
const FREE_FAILURES: u32 = 5;
const FREE_PAIR_FAILURES: u32 = 3;
const ACCOUNT_ALARM: u32 = 50;
const MAX_WAIT: Duration = Duration::from_secs(5 * 60);
/// Entries of each map at most; beyond, the oldest go first.
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Strikes {
    failures: u32,
    last: Instant,
}

impl Strikes {
    /// How long after `last` the next try is allowed, given `free` failures without a wait.
    fn wait(&self, free: u32) -> Duration {
        if self.failures < free {
            return Duration::ZERO;
        }
        let doublings = (self.failures - free).min(16);
        Duration::from_secs(1u64 << doublings).min(MAX_WAIT)
    }
}

#[derive(Debug, Default)]
pub struct LoginLimit {
    by_address: HashMap<IpAddr, Strikes>,
    by_pair: HashMap<(String, IpAddr), Strikes>,
    by_account: HashMap<String, Strikes>,
}

impl LoginLimit {
    /// `Err(wait)` when `address` may not try `account` now.
    pub fn check(&mut self, account: &str, address: IpAddr, now: Instant) -> Result<(), Duration> {
        self.forget_old(now);
        let pair = self.by_pair.get(&(account.to_owned(), address)).copied();
        if let Some(account) = self.by_account.get(account) {
            if account.failures >= ACCOUNT_ALARM && pair.is_some() {
                return Err((account.last + WINDOW).saturating_duration_since(now));
            }
        }
        let waits = [
            self.by_address.get(&address).map(|s| (s, FREE_FAILURES)),
            pair.as_ref().map(|s| (s, FREE_PAIR_FAILURES)),
        ];
        let until = waits
            .into_iter()
            .flatten()
            .map(|(s, free)| s.last + s.wait(free))
            .max();
        match until {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    pub fn failed(&mut self, account: &str, address: IpAddr, now: Instant) {
        strike(&mut self.by_address, address, now);
        strike(&mut self.by_pair, (account.to_owned(), address), now);
        strike(&mut self.by_account, account.to_owned(), now);
    }

    /// A success clears what this address did against this account (not the address's other
    /// failures, nor the account's alarm).
    pub fn succeeded(&mut self, account: &str, address: IpAddr) {
        self.by_pair.remove(&(account.to_owned(), address));
    }

    fn forget_old(&mut self, now: Instant) {
        let fresh = |s: &Strikes| now.saturating_duration_since(s.last) < WINDOW;
        self.by_address.retain(|_, s| fresh(s));
        self.by_pair.retain(|_, s| fresh(s));
        self.by_account.retain(|_, s| fresh(s));
    }
}

fn strike<K: std::hash::Hash + Eq + Clone>(map: &mut HashMap<K, Strikes>, key: K, now: Instant) {
    if map.len() >= MAX_ENTRIES && !map.contains_key(&key) {
        if let Some(oldest) = map
            .iter()
            .min_by_key(|(_, s)| s.last)
            .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
    }
    let entry = map.entry(key).or_insert(Strikes {
        failures: 0,
        last: now,
    });
    entry.failures += 1;
    entry.last = now;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, n])
    }

    #[test]
    fn an_address_that_keeps_failing_waits_longer_each_time() {
        let mut limit = LoginLimit::default();
        let t0 = Instant::now();
        for _ in 0..FREE_PAIR_FAILURES {
            assert_eq!(limit.check("admin", ip(2), t0), Ok(()));
            limit.failed("admin", ip(2), t0);
        }
        assert_eq!(limit.check("admin", ip(2), t0), Err(Duration::from_secs(1)));
        limit.failed("admin", ip(2), t0);
        assert_eq!(limit.check("admin", ip(2), t0), Err(Duration::from_secs(2)));
        // Another account from there: the address's own count (4 < 5) does not block yet.
        assert_eq!(limit.check("bob", ip(2), t0), Ok(()));
        // The owner from elsewhere is not slowed.
        assert_eq!(limit.check("admin", ip(1), t0), Ok(()));
        // The wait passes.
        assert_eq!(
            limit.check("admin", ip(2), t0 + Duration::from_secs(2)),
            Ok(())
        );
        // And a success clears the pair.
        limit.succeeded("admin", ip(2));
        assert_eq!(limit.check("admin", ip(2), t0), Ok(()));
    }

    #[test]
    fn an_account_under_attack_takes_no_more_tries_from_failed_addresses() {
        let mut limit = LoginLimit::default();
        let t0 = Instant::now();
        for n in 0..ACCOUNT_ALARM {
            limit.failed("admin", ip((n % 100) as u8 + 2), t0);
        }
        let later = t0 + Duration::from_secs(60);
        assert!(
            limit.check("admin", ip(2), later).is_err(),
            "an attacker's address"
        );
        assert_eq!(
            limit.check("admin", ip(1), later),
            Ok(()),
            "the owner's address"
        );
        assert_eq!(limit.check("bob", ip(2), later), Ok(()), "another account");
        assert_eq!(
            limit.check("admin", ip(2), t0 + WINDOW),
            Ok(()),
            "the window passed"
        );
    }
}
