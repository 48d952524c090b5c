//! The CPU pool: transforms run on tokio's blocking threads behind a semaphore sized to the cores,
//! with a bounded wait queue (full → 503 at once) and a deadline.

use crate::error::{Error, Result};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

pub struct CpuPool {
    permits: Arc<Semaphore>,
    workers: usize,
    waiting: AtomicUsize,
    max_queue: usize,
    deadline: Duration,
}

/// Decrements the waiting count however the wait ends (granted, or the request went away).
struct Waiting<'a>(&'a AtomicUsize);
impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl CpuPool {
    pub fn new(workers: usize, max_queue: usize, deadline: Duration) -> Self {
        let workers =
            if workers == 0 { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) } else { workers };
        CpuPool {
            permits: Arc::new(Semaphore::new(workers)),
            workers,
            waiting: AtomicUsize::new(0),
            max_queue,
            deadline,
        }
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Transforms waiting for a worker right now.
    pub fn queued(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Transforms running right now.
    pub fn in_flight(&self) -> usize {
        self.workers - self.permits.available_permits()
    }

    /// Run `f` on a blocking thread once a worker is free. A panic inside `f` becomes a 500.
    /// The deadline bounds how long the caller waits; the worker keeps its permit until `f` returns, so
    /// overrunning work still counts against the pool.
    pub async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T> + Send + 'static,
    {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.max_queue {
                    self.waiting.fetch_sub(1, Ordering::SeqCst);
                    return Err(Error::Overloaded);
                }
                let _waiting = Waiting(&self.waiting);
                self.permits.clone().acquire_owned().await.map_err(|_| Error::Internal("pool closed".into()))?
            }
        };
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            catch_unwind(AssertUnwindSafe(f))
        });
        match tokio::time::timeout(self.deadline, task).await {
            Err(_) => Err(Error::TransformTimeout),
            Ok(Err(join)) => Err(Error::Internal(format!("transform task failed: {join}"))),
            Ok(Ok(Err(panic))) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
                tracing::error!(panic = msg.as_deref().unwrap_or("?"), "transform panicked");
                Err(Error::Internal("transform panicked".into()))
            }
            Ok(Ok(Ok(result))) => result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn full_queue_answers_503_at_once() {
        let pool = Arc::new(CpuPool::new(1, 1, Duration::from_secs(5)));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let busy = {
            let pool = pool.clone();
            tokio::spawn(async move {
                pool.run(move || {
                    rx.recv().ok();
                    Ok(1)
                })
                .await
            })
        };
        while pool.in_flight() == 0 {
            tokio::task::yield_now().await;
        }
        let queued = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(|| Ok(2)).await })
        };
        while pool.queued() == 0 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(pool.run(|| Ok(3)).await, Err(Error::Overloaded)));
        tx.send(()).unwrap();
        assert_eq!(busy.await.unwrap().unwrap(), 1);
        assert_eq!(queued.await.unwrap().unwrap(), 2);
        assert_eq!(pool.queued(), 0);
    }

    #[tokio::test]
    async fn panics_become_errors() {
        let pool = CpuPool::new(1, 1, Duration::from_secs(5));
        let r: Result<()> = pool.run(|| panic!("boom")).await;
        assert!(matches!(r, Err(Error::Internal(_))));
        assert_eq!(pool.run(|| Ok(7)).await.unwrap(), 7, "the pool survives a panic");
    }
}
