//! The accept loop: our own instead of `axum::serve`, because a public webhook endpoint needs
//! bounds that `axum::serve` doesn't expose.
//!
//! - **Header read timeout** (`daemon.limits.header_timeout`): a connection must deliver a complete
//!   request head within it, or hyper closes it. hyper arms this timer whenever it waits for a
//!   head, so it also bounds an idle keep-alive connection between two requests.
//! - **Request timeout** (`daemon.limits.request_timeout`, the router's `TimeoutLayer`): from the
//!   end of the head to the response, which covers reading the body; past it the answer is 408.
//! - **Connection cap** (`daemon.limits.max_connections`): at the cap the loop stops accepting;
//!   new connections wait in the kernel's listen backlog and are served as soon as a slot frees,
//!   which the two timeouts above guarantee happens. Waiting rather than refusing means a short
//!   burst of legitimate senders is slowed, not rejected.
//! - `TCP_NODELAY` on every connection: answers are small and must not wait for Nagle.
//!
//! Shutdown: cancelling `stop` closes the listener, asks every open connection to finish the
//! request it is serving and close (idle keep-alive connections close at once), and returns once
//! all have. The caller bounds the wait (`daemon.stop_timeout`).

use std::{sync::Arc, time::Duration};

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_util::sync::CancellationToken;

use crate::config::LimitsConfig;

/// The connection-level bounds, from `[daemon.limits]`.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    pub header_timeout: Duration,
    pub max_connections: usize,
}

impl From<&LimitsConfig> for ServeOptions {
    fn from(l: &LimitsConfig) -> Self {
        ServeOptions {
            header_timeout: l.header_timeout.0,
            max_connections: l.max_connections,
        }
    }
}

/// Serves `app` on `listener` until `stop` is cancelled, then drains open connections.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    options: ServeOptions,
    stop: CancellationToken,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout)
        // A sender that shuts its side after the request (`nc -N`, some proxies) still gets its
        // answer: without this the handler is dropped mid-commit and the 202 is never sent.
        .half_close(true)
        .keep_alive(true);
    let slots = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut saturated = false;
    loop {
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => {
                saturated = false;
                p
            }
            Err(_) => {
                if !saturated {
                    saturated = true;
                    tracing::warn!(
                        max_connections = options.max_connections,
                        "connection cap reached; new connections wait until one closes"
                    );
                }
                metrics::counter!("tandem_http_connection_cap_reached_total").increment(1);
                tokio::select! {
                    biased;
                    _ = stop.cancelled() => break,
                    p = slots.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break, // never closed; here for completeness
                    },
                }
            }
        };
        let stream = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let conn =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let conn = graceful.watch(conn);
        metrics::gauge!("tandem_http_connections").increment(1.0);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                // Header timeouts, resets and half-sent requests: the sender's problem, not ours.
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
            metrics::gauge!("tandem_http_connections").decrement(1.0);
            drop(permit);
        });
    }
    // No new connections from here on; those already open finish their current request.
    drop(listener);
    graceful.shutdown().await;
}

/// Errors on one accepted connection (it was reset before we took it) are skipped; running out of
/// file descriptors or memory is waited out briefly instead of spinning.
async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted | WouldBlock
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed; retrying in 1s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
