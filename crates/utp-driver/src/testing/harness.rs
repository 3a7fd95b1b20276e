//! What every conformance case needs, on any runtime: tasks with join handles that carry
//! panics, timers, an overall deadline, sockets on loopback, and configuration shortcuts.

use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_lite::FutureExt;
use utp_proto::utp::Config;

use crate::{Runtime, SocketConfig, UtpSocket};

/// How long one conformance case may take before it fails as hung.
pub(crate) const CASE_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs one case under [`CASE_TIMEOUT`], failing with the case's name if it hangs.
pub(crate) async fn case<F: Future>(rt: &Arc<dyn Runtime>, name: &str, f: F) -> F::Output {
    match timeout(rt, CASE_TIMEOUT, f).await {
        Some(out) => out,
        None => panic!("conformance case `{name}` did not finish within {CASE_TIMEOUT:?}"),
    }
}

/// Runs `f` for at most `limit`; `None` if the time ran out first.
pub(crate) async fn timeout<F: Future>(
    rt: &Arc<dyn Runtime>,
    limit: Duration,
    f: F,
) -> Option<F::Output> {
    let mut timer = rt.new_timer(rt.now() + limit);
    let mut f = pin!(f);
    poll_fn(|cx| {
        if let Poll::Ready(out) = f.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        timer.as_mut().poll(cx).map(|()| None)
    })
    .await
}

/// Waits `duration` on the runtime's timer.
pub(crate) async fn sleep(rt: &Arc<dyn Runtime>, duration: Duration) {
    let mut timer = rt.new_timer(rt.now() + duration);
    poll_fn(|cx| timer.as_mut().poll(cx)).await;
}

/// Polls `condition` every 10 ms until it holds.
pub(crate) async fn wait_until(rt: &Arc<dyn Runtime>, mut condition: impl FnMut() -> bool) {
    while !condition() {
        sleep(rt, Duration::from_millis(10)).await;
    }
}

/// Spawns `f` on the runtime; the returned [`Task`] resolves to its output and panics
/// with the task's panic message, so a failing server task fails the case with it.
pub(crate) fn spawn<T, F>(rt: &Arc<dyn Runtime>, f: F) -> Task<T>
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    let slot = Arc::new(Mutex::new(Slot { result: None, waker: None, dropped: false }));
    let completion = Completion(slot.clone());
    rt.spawn(Box::pin(async move {
        let completion = completion;
        let result = AssertUnwindSafe(f).catch_unwind().await;
        completion.finish(result);
    }));
    Task(slot)
}

/// A spawned task's output, once it finished.
pub(crate) struct Task<T>(Arc<Mutex<Slot<T>>>);

struct Slot<T> {
    result: Option<std::thread::Result<T>>,
    waker: Option<Waker>,
    /// The runtime dropped the task before it finished.
    dropped: bool,
}

/// Sends the task's result to its [`Task`]; notices when the runtime drops the task.
struct Completion<T>(Arc<Mutex<Slot<T>>>);

impl<T> Completion<T> {
    fn finish(&self, result: std::thread::Result<T>) {
        let mut slot = lock(&self.0);
        slot.result = Some(result);
        if let Some(w) = slot.waker.take() {
            w.wake();
        }
    }
}

impl<T> Drop for Completion<T> {
    fn drop(&mut self) {
        let mut slot = lock(&self.0);
        if slot.result.is_none() {
            slot.dropped = true;
            if let Some(w) = slot.waker.take() {
                w.wake();
            }
        }
    }
}

impl<T> Future for Task<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut slot = lock(&self.0);
        match slot.result.take() {
            Some(Ok(out)) => Poll::Ready(out),
            // Panic again here with the task's message: its own panic ran on a runtime
            // thread, whose output the test harness may not show with this test.
            Some(Err(panic)) => {
                drop(slot);
                let message = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)");
                panic!("a task of this case panicked: {message}")
            }
            None if slot.dropped => panic!("the runtime dropped a spawned task before it ended"),
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The loopback address with an ephemeral port.
pub(crate) fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Binds a socket on loopback.
pub(crate) fn bind(rt: &Arc<dyn Runtime>, config: SocketConfig) -> UtpSocket {
    UtpSocket::bind(rt.clone(), loopback(), config)
        .unwrap_or_else(|e| panic!("binding a uTP socket on 127.0.0.1 failed: {e}"))
}

/// Socket settings around engine settings adjusted by `adjust`.
pub(crate) fn config(adjust: impl FnOnce(&mut Config)) -> SocketConfig {
    let mut utp = Config::default();
    adjust(&mut utp);
    SocketConfig::new(utp)
}

/// Socket settings around `utp` adjusted by `adjust`.
pub(crate) fn config_from(mut utp: Config, adjust: impl FnOnce(&mut Config)) -> SocketConfig {
    adjust(&mut utp);
    SocketConfig::new(utp)
}

/// Unwraps an operation's result, failing with what was being done.
#[track_caller]
pub(crate) fn ok<T>(result: io::Result<T>, what: &str) -> T {
    result.unwrap_or_else(|e| panic!("{what} failed: {e} ({:?})", e.kind()))
}

/// Asserts that `result` failed with `kind`.
#[track_caller]
pub(crate) fn expect_error<T: std::fmt::Debug>(
    result: io::Result<T>,
    kind: io::ErrorKind,
    what: &str,
) {
    match result {
        Ok(v) => panic!("{what}: expected an error of kind {kind:?}, got Ok({v:?})"),
        Err(e) => assert_eq!(e.kind(), kind, "{what}: expected {kind:?}, got {e}"),
    }
}
