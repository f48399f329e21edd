//! `atlas proxy` under systemd (`Type=notify`): the notify protocol when
//! `NOTIFY_SOCKET` is set, nothing at all otherwise.
//!
//! - `READY=1` once the listeners are bound and the server runs;
//! - `RELOADING=1` (with `MONOTONIC_USEC`) before a SIGHUP's re-read, then
//!   `READY=1` with the outcome as `STATUS=`;
//! - `STOPPING=1` when a SIGTERM or SIGINT starts the graceful stop;
//! - with `WatchdogSec=` (`WATCHDOG_USEC`), `WATCHDOG=1` at half of it,
//!   only after every serving thread answered
//!   ([`ProxyHandle::serving_threads_answer`]): a wedged proxy goes quiet
//!   and systemd restarts it.

use std::time::Duration;

use atlas_cacheproxy::ProxyHandle;
use sd_notify::NotifyState;

/// Sends `states` to the service manager when there is one; a failure is
/// said on stderr, never fatal.
fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        say!("atlas proxy: systemd notify ({}): {e}", states[0]);
    }
}

/// The listeners are bound and serving.
pub(crate) fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A SIGHUP's re-read starts.
pub(crate) fn reloading() {
    let mut states = vec![NotifyState::Reloading];
    states.extend(NotifyState::monotonic_usec_now().ok());
    notify(&states);
}

/// The graceful stop starts.
pub(crate) fn stopping() {
    notify(&[
        NotifyState::Stopping,
        NotifyState::Status("finishing in-flight requests"),
    ]);
}

/// With `WATCHDOG_USEC` set (systemd's `WatchdogSec=`), a task on the
/// caller's runtime (the one the accept loops and the admin API run on)
/// that says `WATCHDOG=1` every half period, each time after every serving
/// thread answered within a quarter period. `None` without a watchdog.
pub(crate) fn spawn_watchdog(handle: ProxyHandle) -> Option<tokio::task::JoinHandle<()>> {
    let period = sd_notify::watchdog_enabled()?;
    let every = (period / 2).max(Duration::from_millis(1));
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut quiet = false;
        loop {
            tick.tick().await;
            match handle.serving_threads_answer(every / 2).await {
                Ok(_) => {
                    if std::mem::take(&mut quiet) {
                        say!("atlas proxy: watchdog: every serving thread answers again");
                    }
                    notify(&[NotifyState::Watchdog]);
                }
                Err(silent) if !quiet => {
                    quiet = true;
                    say!(
                        "atlas proxy: watchdog: {} did not answer within {:?}: no WATCHDOG=1 until they do (systemd restarts the proxy after {period:?})",
                        silent.join(", "),
                        every / 2
                    );
                }
                Err(_) => {}
            }
        }
    }))
}
