//! Runtimes for background work, on threads that run at a lower priority.
//!
//! Catch-up reads and compaction (building, compressing and writing upload
//! objects; reading and rewriting objects in merges) take CPU in runs of
//! tens to hundreds of milliseconds, and none of it is urgent. On the async
//! workers that serve requests, one such run stalls every request queued
//! behind it. A [`BackgroundRuntime`] gives that work OS threads of its own
//! (its blocking pool included) with a higher niceness, so when the two
//! cores are short the OS runs the threads that acknowledge producers first
//! and the background work with what is left.

use tokio::runtime::{Handle, Runtime};

/// A multi-thread tokio runtime whose threads run at a lower priority.
///
/// Work is spawned through [`BackgroundRuntime::handle`] and awaitable from
/// any runtime. Dropping it shuts the runtime down in the background: it
/// never blocks, so it is safe to drop from inside another runtime.
#[derive(Debug)]
pub struct BackgroundRuntime {
    /// `Option` only so `Drop` can move the runtime out.
    runtime: Option<Runtime>,
    handle: Handle,
}

impl BackgroundRuntime {
    /// Starts `threads` worker threads named `name`, each `lower_by` nice
    /// levels below the thread that starts it (the runtime's blocking
    /// threads too; at most nice 19). Does not need to be called from
    /// inside a runtime.
    pub fn start(name: &str, threads: usize, lower_by: i32) -> std::io::Result<Self> {
        Self::build(name, threads, None, lower_by)
    }

    /// As [`BackgroundRuntime::start`], with at most `blocking` threads in
    /// the blocking pool (work spawned there beyond that waits its turn).
    ///
    /// Niceness weighs each runnable thread on its own: a hundred lowered
    /// threads together outweigh the two that serve producers. A blocking
    /// pool left at tokio's default (512 threads) grows with the work
    /// queued on it, so a bound on its threads is what keeps the runtime's
    /// share of the CPU bounded.
    pub fn start_bounded(
        name: &str,
        threads: usize,
        blocking: usize,
        lower_by: i32,
    ) -> std::io::Result<Self> {
        if blocking == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("the {name} runtime needs at least one blocking thread"),
            ));
        }
        Self::build(name, threads, Some(blocking), lower_by)
    }

    fn build(
        name: &str,
        threads: usize,
        blocking: Option<usize>,
        lower_by: i32,
    ) -> std::io::Result<Self> {
        if threads == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("the {name} runtime needs at least one thread"),
            ));
        }
        // Relative to the server's own priority: an operator who runs it at
        // nice 15 (or -5) keeps the background that much below it.
        let nice = (current_thread_nice() + lower_by).min(MAX_NICE);
        let runtime_name = name.to_owned();
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        if let Some(blocking) = blocking {
            builder.max_blocking_threads(blocking);
        }
        let runtime = builder
            .worker_threads(threads)
            .thread_name(name)
            .on_thread_start(move || {
                // A thread that cannot be lowered keeps normal priority:
                // slower producers, never lost work.
                if let Err(e) = set_current_thread_nice(nice) {
                    tracing::warn!(runtime = %runtime_name, nice, error = %e, "cannot lower a background thread's priority");
                }
            })
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        Ok(Self {
            runtime: Some(runtime),
            handle,
        })
    }

    /// The runtime's handle, to spawn work on it.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl Drop for BackgroundRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // A plain drop blocks on the workers and panics inside another
            // runtime; the background shutdown does neither.
            runtime.shutdown_background();
        }
    }
}

/// The least favourable niceness Linux has.
const MAX_NICE: i32 = 19;

/// Sets the calling thread's niceness to `nice`. On Linux
/// `setpriority(PRIO_PROCESS, tid)` applies to one thread only.
pub fn set_current_thread_nice(nice: i32) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain syscalls on the current thread's own id; no memory
        // is passed to the kernel.
        let result = unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, nice)
        };
        if result == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = nice;
        Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
    }
}

/// The calling thread's niceness (Linux; 0 elsewhere), for tests and status.
pub fn current_thread_nice() -> i32 {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: as above.
        unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::getpriority(libc::PRIO_PROCESS, tid)
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_threads_is_refused() {
        let err = BackgroundRuntime::start("strata-test-bg", 0, 10).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        let err = BackgroundRuntime::start_bounded("strata-test-bg", 1, 0, 10).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    }

    /// With one blocking thread, blocking work runs one piece at a time:
    /// the second waits until the first is done.
    #[test]
    fn a_bounded_blocking_pool_runs_no_more_than_its_threads() {
        use std::sync::mpsc;
        use std::time::Duration;

        let bg = BackgroundRuntime::start_bounded("strata-test-bg", 1, 1, 0).unwrap();
        let (release_first, first_waits) = mpsc::channel::<()>();
        let (first_started, first_running) = mpsc::channel::<()>();
        let (second_started, second_running) = mpsc::channel::<()>();
        let first = bg.handle().spawn_blocking(move || {
            first_started.send(()).unwrap();
            first_waits.recv().unwrap();
        });
        first_running.recv().unwrap();
        let second = bg.handle().spawn_blocking(move || {
            second_started.send(()).unwrap();
        });
        assert!(
            second_running
                .recv_timeout(Duration::from_millis(100))
                .is_err(),
            "a second blocking thread ran beside the first"
        );
        release_first.send(()).unwrap();
        second_running.recv().unwrap();
        let done = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        done.block_on(async {
            first.await.unwrap();
            second.await.unwrap();
        });
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn workers_and_blocking_threads_run_lowered_and_named() {
        let base = current_thread_nice();
        let bg = BackgroundRuntime::start("strata-test-bg", 1, 7).unwrap();
        let probe = || {
            let name = std::thread::current().name().map(str::to_owned);
            (name, current_thread_nice())
        };
        let task = bg.handle().spawn(async move {
            let worker = probe();
            let blocking = tokio::task::spawn_blocking(probe).await.unwrap();
            (worker, blocking)
        });
        let (worker, blocking) = bg.handle().block_on(task).unwrap();
        for (name, nice) in [worker, blocking] {
            assert_eq!(name.as_deref(), Some("strata-test-bg"));
            assert_eq!(nice, (base + 7).min(MAX_NICE), "relative to the caller's");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn priority_is_lowered_from_the_starting_threads_and_capped() {
        // A thread of its own, so the test thread keeps its priority.
        std::thread::spawn(|| {
            let base = current_thread_nice() + 5;
            set_current_thread_nice(base).unwrap();
            let probe = |bg: &BackgroundRuntime| {
                bg.handle()
                    .block_on(bg.handle().spawn(async { current_thread_nice() }))
                    .unwrap()
            };
            let lowered = BackgroundRuntime::start("strata-test-bg", 1, 3).unwrap();
            assert_eq!(probe(&lowered), (base + 3).min(MAX_NICE));
            let capped = BackgroundRuntime::start("strata-test-bg", 1, 40).unwrap();
            assert_eq!(probe(&capped), MAX_NICE);
        })
        .join()
        .unwrap();
    }

    #[tokio::test]
    async fn dropping_inside_a_runtime_does_not_block_or_panic() {
        let bg = BackgroundRuntime::start("strata-test-bg", 1, 10).unwrap();
        bg.handle().spawn(std::future::pending::<()>());
        drop(bg);
    }
}
