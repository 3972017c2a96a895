//! A small pool of low-priority threads for argon2 work, so password hashing can use every core without
//! stalling the async workers that answer checks and health probes (ARCHITECTURE.md "Security defaults").

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::error::ApiError;

type Job = Box<dyn FnOnce() + Send>;

/// Runs CPU-heavy password work on dedicated threads. Logins queue while their expected wait stays within a
/// budget and are refused beyond it; other password work always queues.
pub struct HashPool {
    jobs: Mutex<mpsc::Sender<Job>>,
    threads: usize,
    /// Most time a login may be expected to wait for a hashing thread.
    budget: Duration,
    load: Arc<Load>,
}

/// Jobs queued or running, and how long one takes (a moving average).
struct Load {
    pending: AtomicUsize,
    average_nanos: AtomicU64,
}

/// The assumed duration of a hash before one has been measured (argon2id with OWASP parameters, release build).
const FIRST_ESTIMATE: Duration = Duration::from_millis(50);

impl Load {
    fn average(&self) -> Duration {
        Duration::from_nanos(self.average_nanos.load(Ordering::Relaxed))
    }

    /// Folds one measured duration into the average (weight 1/8), so the estimate follows the machine's load.
    fn record(&self, took: Duration) {
        let took = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let old = self.average_nanos.load(Ordering::Relaxed);
        let new = old - old / 8 + took / 8;
        self.average_nanos.store(new, Ordering::Relaxed);
    }
}

/// Counts a job as pending until it is dropped (finished, or abandoned before it started).
struct Pending(Arc<Load>);

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How much lower than normal the hashing threads run (Unix nice value).
const NICENESS: i32 = 19;

fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority on the calling thread's id only changes this thread's scheduling priority.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, NICENESS);
    }
}

impl HashPool {
    /// Starts `threads` workers; a login is admitted while its expected wait is within `budget`.
    pub fn new(threads: usize, budget: Duration) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new().name(format!("castellan-hash-{i}")).spawn(move || {
                lower_priority();
                loop {
                    let job = match rx.lock() {
                        Ok(guard) => guard.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                }
            });
            if let Err(e) = spawned {
                tracing::error!("cannot start a hashing thread: {e}");
            }
        }
        let load = Load {
            pending: AtomicUsize::new(0),
            average_nanos: AtomicU64::new(u64::try_from(FIRST_ESTIMATE.as_nanos()).unwrap_or(u64::MAX)),
        };
        Self { jobs: Mutex::new(tx), threads: threads.max(1), budget, load: Arc::new(load) }
    }

    /// Counts one more pending job.
    fn enqueue(&self) -> (Pending, usize) {
        let ahead = self.load.pending.fetch_add(1, Ordering::Relaxed);
        (Pending(self.load.clone()), ahead)
    }

    async fn submit<T: Send + 'static>(&self, pending: Pending, f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let started = Instant::now();
            let result = f();
            pending.0.record(started.elapsed());
            // Free the slot before answering, so a client's next request finds it free.
            drop(pending);
            let _ = tx.send(result);
        });
        self.jobs
            .lock()
            .map_err(|_| ApiError::Internal("hashing pool poisoned".into()))?
            .send(job)
            .map_err(|_| ApiError::Internal("hashing pool stopped".into()))?;
        rx.await.map_err(|_| ApiError::Internal("hashing job dropped".into()))
    }

    /// Runs `f` after the jobs queued before it.
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
        let (pending, _) = self.enqueue();
        self.submit(pending, f).await
    }

    /// Runs `f` if its expected wait for a thread is within the budget; otherwise 429 with the seconds after which
    /// the queue is expected to have drained enough (logins beyond capacity, API.md §11).
    pub async fn try_run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
        let (pending, ahead) = self.enqueue();
        let wait = self.load.average().saturating_mul(u32::try_from(ahead / self.threads).unwrap_or(u32::MAX));
        if wait > self.budget {
            let retry = (wait - self.budget).as_secs_f64().ceil().max(1.0);
            return Err(ApiError::Throttled(retry as u64));
        }
        self.submit(pending, f).await
    }
}
