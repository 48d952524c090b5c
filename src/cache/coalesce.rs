//! Single-flight: identical concurrent misses wait for one leader.
//!
//! The leader's work runs in its own task, so a leader whose client disconnects still finishes (and
//! caches) the result for everyone waiting. If the work panics, waiters get an internal error instead
//! of hanging. The key leaves the table before the result is published, so a request arriving later
//! starts afresh (and normally finds the result in the cache the work just filled).

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

type Slot<V> = watch::Receiver<Option<Result<V>>>;

pub struct Flights<K, V> {
    inflight: Arc<Mutex<HashMap<K, Slot<V>>>>,
}

impl<K, V> Default for Flights<K, V> {
    fn default() -> Self {
        Flights { inflight: Arc::new(Mutex::new(HashMap::new())) }
    }
}

/// Whether this caller did the work or waited for someone else's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    Follower,
}

impl<K, V> Flights<K, V>
where
    K: Eq + Hash + Clone + Send + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Number of keys being worked on.
    pub fn in_flight(&self) -> usize {
        self.inflight.lock().expect("flights lock").len()
    }

    /// Whether work for `key` is running now (joining it costs nothing).
    pub fn is_running(&self, key: &K) -> bool {
        self.inflight.lock().expect("flights lock").contains_key(key)
    }

    /// Run `work` for `key` unless it is already running; either way, return its result.
    pub async fn run<F, Fut>(&self, key: K, work: F) -> (Result<V>, Role)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V>> + Send + 'static,
    {
        let (mut rx, role) = {
            let mut map = self.inflight.lock().expect("flights lock");
            match map.get(&key) {
                Some(rx) => (rx.clone(), Role::Follower),
                None => {
                    let (tx, rx) = watch::channel(None);
                    map.insert(key.clone(), rx.clone());
                    let fut = work();
                    let table = self.inflight.clone();
                    tokio::spawn(async move {
                        // Remove the key even if `fut` panics (the guard runs on unwind).
                        struct Leave<K: Eq + Hash, V>(Arc<Mutex<HashMap<K, Slot<V>>>>, Option<K>);
                        impl<K: Eq + Hash, V> Drop for Leave<K, V> {
                            fn drop(&mut self) {
                                if let (Ok(mut m), Some(k)) = (self.0.lock(), self.1.take()) {
                                    m.remove(&k);
                                }
                            }
                        }
                        let leave = Leave(table, Some(key));
                        let result = fut.await;
                        drop(leave); // leave the table before publishing
                        let _ = tx.send(Some(result));
                    });
                    (rx, Role::Leader)
                }
            }
        };
        let result = match rx.wait_for(Option::is_some).await {
            Ok(v) => v.clone().expect("waited for Some"),
            Err(_) => Err(Error::Internal("the request this one waited for failed".into())),
        };
        (result, role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_share_one_run() {
        let flights: Arc<Flights<&'static str, u32>> = Arc::default();
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (f, runs) = (flights.clone(), runs.clone());
            tasks.push(tokio::spawn(async move {
                f.run("k", || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Ok(7)
                })
                .await
            }));
        }
        let mut leaders = 0;
        for t in tasks {
            let (r, role) = t.await.unwrap();
            assert_eq!(r.unwrap(), 7);
            leaders += (role == Role::Leader) as usize;
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(leaders, 1);
        assert_eq!(flights.in_flight(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn errors_are_shared_and_not_remembered() {
        let flights: Arc<Flights<u8, u32>> = Arc::default();
        let f2 = flights.clone();
        let follower = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            f2.run(1, || async { Ok(1) }).await
        });
        let (r, role) = flights
            .run(1, || async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Err(Error::OriginUnavailable("down".into()))
            })
            .await;
        assert_eq!(role, Role::Leader);
        assert!(matches!(r, Err(Error::OriginUnavailable(_))));
        let (r, role) = follower.await.unwrap();
        assert_eq!(role, Role::Follower);
        assert!(matches!(r, Err(Error::OriginUnavailable(_))), "the follower gets the leader's error");
        assert_eq!(flights.run(1, || async { Ok(2) }).await.0.unwrap(), 2, "a later call runs again");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_leader_still_finishes_and_a_panic_never_hangs() {
        let flights: Arc<Flights<u8, u32>> = Arc::default();
        let done = Arc::new(AtomicUsize::new(0));
        let (f, d) = (flights.clone(), done.clone());
        let leader = tokio::spawn(async move {
            f.run(1, || async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                d.fetch_add(1, Ordering::SeqCst);
                Ok(5)
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        let f = flights.clone();
        let follower = tokio::spawn(async move { f.run(1, || async { Ok(0) }).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        leader.abort();
        let (r, role) = follower.await.unwrap();
        assert_eq!((r.unwrap(), role), (5, Role::Follower));
        assert_eq!(done.load(Ordering::SeqCst), 1);

        let (r, _) = flights.run(2, || async { panic!("work panicked") }).await;
        assert!(matches!(r, Err(Error::Internal(_))));
        assert_eq!(flights.in_flight(), 0);
    }
}
