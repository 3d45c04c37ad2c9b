//! The HTTP server under the router: one hyper HTTP/1 connection per client, with
//! timeouts, a cap on open connections, and a shutdown that ends within the grace period
//! whatever the clients do.
//!
//! `axum::serve` offers none of these (no header or idle timeout, no cap, and its graceful
//! shutdown waits for every connection, forever for one that never finishes its request),
//! so the accept loop is ours and each connection is hyper's own:
//!
//! - **header read timeout**: hyper's `header_read_timeout`, which runs from the moment a
//!   connection waits for a request head (when it opened, or after an answer): a client
//!   that sends nothing or half a header is closed;
//! - **body timeout**: a deadline for the whole delivery body, in the handler
//!   ([`crate::http`]);
//! - **keep-alive idle timeout**: a connection that has been answered and has no request in
//!   flight for `keep_alive_timeout` is shut down (hyper's `graceful_shutdown` closes an
//!   idle connection at once);
//! - **connection cap**: a semaphore permit per connection, taken *before* `accept`, so
//!   beyond the cap clients wait in the kernel's accept queue and cost us no file
//!   descriptor (running out of them fails the database and the API clients too);
//! - **shutdown**: stop accepting, ask every connection to finish the request in flight
//!   and close, and after `grace` drop whatever is left.
//!
//! hyper has no idle timeout for HTTP/1 server connections, and no crate caps accepted
//! connections; hyper-util's `GracefulShutdown` would own each connection, which the idle
//! watchdog needs too, so one `select!` per connection does both.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::metrics::gauge::Gauge;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The connection limits of [`run`] (from `[serve]`, see [`crate::ServeConfig`]).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest wait for a complete request head.
    pub header_read_timeout: Duration,
    /// Longest idle time of an answered connection between requests.
    pub keep_alive_timeout: Duration,
    /// Most connections served at once.
    pub max_connections: usize,
    /// After `shutdown` fired, how long open connections may finish.
    pub grace: Duration,
}

/// Serves `router` on `listener` until `shutdown` fires, then for at most `limits.grace`.
/// `open` counts the connections being served (the `connections_open` gauge).
pub async fn run(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    open: Gauge,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let mut conns = JoinSet::new();
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = shutdown.cancelled() => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // EMFILE and the like: nothing to do but wait for descriptors to free up,
                    // without spinning on the error.
                    tracing::error!(error = %e, "accepting a connection failed");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                        _ = shutdown.cancelled() => break,
                    }
                }
            },
            _ = shutdown.cancelled() => break,
        };
        while conns.try_join_next().is_some() {}
        let _ = stream.set_nodelay(true);
        conns.spawn(connection(
            http.clone(),
            stream,
            router.clone(),
            limits.keep_alive_timeout,
            shutdown.clone(),
            Slot::take(permit, open.clone()),
        ));
    }
    drop(listener);
    let drained = tokio::time::timeout(limits.grace, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = conns.len(),
            "shutdown: closing connections still open after the grace period"
        );
        conns.abort_all();
        while conns.join_next().await.is_some() {}
    }
    Ok(())
}

/// Errors of one incoming connection (the client gave up before we accepted it), not of
/// the listener.
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// One client connection, until it ends, idles out or shutdown closes it.
async fn connection(
    http: http1::Builder,
    stream: TcpStream,
    router: Router,
    keep_alive: Duration,
    shutdown: CancellationToken,
    _slot: Slot,
) {
    let activity = Arc::new(Activity::default());
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let in_flight = activity.begin();
            let mut router = router.clone();
            async move {
                // Router is always ready; its error type is `Infallible`.
                let resp = tower::Service::call(&mut router, req).await;
                drop(in_flight);
                resp
            }
        })
    };
    let conn = http.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = shutdown.cancelled(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = activity.idle_for(keep_alive), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// One connection's place under the cap, given back (and counted out of the gauge) when
/// the connection ends or is aborted.
struct Slot {
    _permit: OwnedSemaphorePermit,
    open: Gauge,
}

impl Slot {
    fn take(permit: OwnedSemaphorePermit, open: Gauge) -> Slot {
        open.inc();
        Slot {
            _permit: permit,
            open,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.dec();
    }
}

/// Whether a connection has a request in flight, and since when it has been idle after
/// its last answer (`None` before the first one: the header timeout covers that).
#[derive(Default)]
struct Activity {
    state: Mutex<(usize, Option<Instant>)>,
    changed: Notify,
}

/// One request in flight; dropping it (the answer is ready) may start the idle clock.
struct InFlight(Arc<Activity>);

impl Activity {
    fn begin(self: &Arc<Self>) -> InFlight {
        {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            s.0 += 1;
            s.1 = None;
        }
        self.changed.notify_waiters();
        InFlight(self.clone())
    }

    /// Returns once the connection has been idle (answered, nothing in flight) for `d`.
    async fn idle_for(&self, d: Duration) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let since = {
                let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
                if s.0 == 0 {
                    s.1
                } else {
                    None
                }
            };
            match since {
                Some(t) => tokio::select! {
                    _ = tokio::time::sleep_until(t + d) => return,
                    _ = &mut changed => {}
                },
                None => changed.await,
            }
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        {
            let mut s = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
            s.0 = s.0.saturating_sub(1);
            if s.0 == 0 {
                s.1 = Some(Instant::now());
            }
        }
        self.0.changed.notify_waiters();
    }
}
