//! A small pool of low-priority threads for argon2 work, so password hashing can use every core without
//! stalling the async workers that answer checks and health probes (ARCHITECTURE.md "Security defaults").

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::error::ApiError;

type Job = Box<dyn FnOnce() + Send>;

/// Runs CPU-heavy password work on dedicated threads with a bounded number of jobs in flight.
pub struct HashPool {
    jobs: Mutex<mpsc::Sender<Job>>,
    in_flight: Arc<Semaphore>,
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
    /// Starts `threads` workers; at most `max_in_flight` jobs may be queued or running.
    pub fn new(threads: usize, max_in_flight: usize) -> Self {
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
        Self { jobs: Mutex::new(tx), in_flight: Arc::new(Semaphore::new(max_in_flight.max(1))) }
    }

    async fn submit<T: Send + 'static>(
        &self,
        permit: OwnedSemaphorePermit,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let result = f();
            // Free the slot before answering, so a client's next request finds it free.
            drop(permit);
            let _ = tx.send(result);
        });
        self.jobs
            .lock()
            .map_err(|_| ApiError::Internal("hashing pool poisoned".into()))?
            .send(job)
            .map_err(|_| ApiError::Internal("hashing pool stopped".into()))?;
        rx.await.map_err(|_| ApiError::Internal("hashing job dropped".into()))
    }

    /// Runs `f`, waiting for room in the pool.
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
        let permit =
            self.in_flight.clone().acquire_owned().await.map_err(|_| ApiError::Internal("hashing pool closed".into()))?;
        self.submit(permit, f).await
    }

    /// Runs `f` if the pool has room now; otherwise 429 (logins beyond capacity, API.md §11).
    pub async fn try_run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
        let permit = self.in_flight.clone().try_acquire_owned().map_err(|_| ApiError::Throttled(1))?;
        self.submit(permit, f).await
    }
}
