//! Waiting for an arrival's due time on the runtime, to the microsecond.
//!
//! tokio's timer has a 1 ms granularity and its driver sleeps in whole
//! milliseconds, so a task waiting for a due time woke up to ~2 ms late
//! (`schedule_lag` p95 1.4-2 ms at any rate). On Linux a `timerfd`
//! registered with the runtime's reactor wakes the worker at the due time
//! itself, and the arrival's request task then starts on the same worker,
//! with no hop between threads (a dedicated timer thread handing arrivals to
//! the runtime was measured 2-6 ms late at 5 000 req/s). Elsewhere, or when
//! no timerfd can be made, the runtime's timer is used.

use tokio::time::Instant;

/// A one-shot timer the scheduler task re-arms for each wake-up.
pub(super) struct DueTimer {
    #[cfg(target_os = "linux")]
    fd: Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>>,
}

impl DueTimer {
    /// A timer on the current runtime: a timerfd on Linux when one can be
    /// made (out of descriptors, the runtime's timer instead).
    pub(super) fn new() -> DueTimer {
        #[cfg(target_os = "linux")]
        {
            use rustix::time::{timerfd_create, TimerfdClockId, TimerfdFlags};
            let fd = timerfd_create(
                TimerfdClockId::Monotonic,
                TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
            )
            .ok()
            .and_then(|fd| {
                // tokio deprecated its safe constructors because a borrowed
                // descriptor could be closed while registered; an OwnedFd
                // moved into the AsyncFd is closed only after it
                // deregisters, on drop
                #[allow(deprecated)]
                let registered =
                    tokio::io::unix::AsyncFd::with_interest(fd, tokio::io::Interest::READABLE);
                registered.ok()
            });
            DueTimer { fd }
        }
        #[cfg(not(target_os = "linux"))]
        DueTimer {}
    }

    /// Returns at `at`, or soon after; at once when it has passed. A
    /// caller that must not run early checks the time again.
    pub(super) async fn sleep_until(&self, at: Instant) {
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.fd {
            if timerfd_sleep_until(fd, at).await.is_ok() {
                return;
            }
        }
        tokio::time::sleep_until(at).await;
    }
}

#[cfg(target_os = "linux")]
async fn timerfd_sleep_until(
    fd: &tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>,
    at: Instant,
) -> std::io::Result<()> {
    use rustix::time::{timerfd_settime, Itimerspec, TimerfdTimerFlags, Timespec};
    let Some(wait) = at
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
    else {
        return Ok(());
    };
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // relative and one-shot; arming also resets the expiry count
    let spec = Itimerspec {
        it_interval: zero,
        it_value: Timespec {
            tv_sec: i64::try_from(wait.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(wait.subsec_nanos()),
        },
    };
    timerfd_settime(fd.get_ref(), TimerfdTimerFlags::empty(), &spec)?;
    // Each expiry wakes the descriptor's waiters, and the runtime's
    // edge-triggered epoll reports each such wake, so the expiry count need
    // not be read: one system call fewer per wake-up. A readiness left
    // from an earlier expiry only makes this return early, and the caller
    // then waits again.
    fd.readable().await?.clear_ready();
    Ok(())
}
