//! The cache lock: one upstream fetch per cold or expired key. Others wait on
//! a watch channel and are woken the moment the outcome is known (never by
//! polling). A fetch that ends without an outcome (its request was cancelled,
//! or it failed) wakes the waiters at once so one of them takes over.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::cache_key::CacheKey;
use crate::store::Entry;

/// How a fetch ended, as the waiters see it.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// Still fetching.
    Pending,
    /// Stored: serve it.
    Stored(Arc<Entry>),
    /// The response cannot be stored: go upstream yourselves, in parallel.
    Uncacheable,
    /// The fetch failed or was cancelled: one waiter takes over.
    Abandoned,
}

const SHARDS: usize = 16;

/// Fetches in progress, per key.
#[derive(Default)]
pub struct Flights {
    shards: [Mutex<HashMap<CacheKey, watch::Receiver<Outcome>>>; SHARDS],
}

/// The result of joining a key's flight.
pub enum Join {
    /// No fetch was running: this request fetches. Report through the guard.
    Leader(FlightGuard),
    /// Another request fetches: wait for its outcome.
    Waiter(watch::Receiver<Outcome>),
}

impl Flights {
    fn shard(&self, key: CacheKey) -> &Mutex<HashMap<CacheKey, watch::Receiver<Outcome>>> {
        &self.shards[(key.0 >> 64) as usize % SHARDS]
    }

    /// Becomes the key's fetcher, or a waiter on the running fetch.
    pub fn join(self: &Arc<Self>, key: CacheKey) -> Join {
        let mut map = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
        if let Some(rx) = map.get(&key) {
            if matches!(*rx.borrow(), Outcome::Pending) {
                return Join::Waiter(rx.clone());
            }
        }
        let (tx, rx) = watch::channel(Outcome::Pending);
        map.insert(key, rx);
        Join::Leader(FlightGuard {
            flights: self.clone(),
            key,
            tx: Some(tx),
        })
    }

    /// True when no fetch is in progress.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.shards
            .iter()
            .all(|s| s.lock().unwrap_or_else(|p| p.into_inner()).is_empty())
    }
}

/// Held by the request that fetches a key. Dropping it without
/// [`FlightGuard::finish`] (a cancelled request) tells the waiters `Abandoned`.
pub struct FlightGuard {
    flights: Arc<Flights>,
    key: CacheKey,
    tx: Option<watch::Sender<Outcome>>,
}

impl FlightGuard {
    /// Publishes the outcome and leaves the table.
    pub fn finish(mut self, outcome: Outcome) {
        self.end(outcome);
    }

    fn end(&mut self, outcome: Outcome) {
        if let Some(tx) = self.tx.take() {
            self.flights
                .shard(self.key)
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&self.key);
            let _ = tx.send(outcome);
        }
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        self.end(Outcome::Abandoned);
    }
}

/// Waits for a flight's outcome (not `Pending`); `None` when the sender vanished.
pub async fn wait(mut rx: watch::Receiver<Outcome>) -> Outcome {
    match rx.wait_for(|o| !matches!(o, Outcome::Pending)).await {
        Ok(o) => o.clone(),
        Err(_) => Outcome::Abandoned,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_leader_many_waiters_and_takeover() {
        let f = Arc::new(Flights::default());
        let k = CacheKey(7);
        let leader = match f.join(k) {
            Join::Leader(g) => g,
            Join::Waiter(_) => panic!("first is the leader"),
        };
        let waiters: Vec<_> = (0..10)
            .map(|_| match f.join(k) {
                Join::Waiter(rx) => tokio::spawn(wait(rx)),
                Join::Leader(_) => panic!("only one leader"),
            })
            .collect();
        drop(leader); // cancelled
        for w in waiters {
            assert!(matches!(w.await.unwrap(), Outcome::Abandoned));
        }
        assert!(f.is_empty());
        assert!(
            matches!(f.join(k), Join::Leader(_)),
            "a waiter can take over"
        );
    }
}
