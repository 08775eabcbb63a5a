//! The API listener served by one single-threaded runtime per core.
//!
//! Each worker is an OS thread with its own current-thread tokio runtime, its own listening
//! socket on the shared address (`SO_REUSEPORT`: the kernel spreads new connections over the
//! sockets) and its own upstream HTTP client, so a request is read, forwarded upstream, answered
//! and relayed on one thread, with no hand-over between threads on its way (a multi-threaded
//! runtime woke another thread for the upstream connection's task and again for the answer:
//! futex wake-ups and context switches that cost more CPU than the proxying itself). Everything
//! else the handlers use (snapshots, admission, sinks, caches) is shared through `Parts`.
//! Background work (usage publishing, NATS, probes, the ops listener) stays on the main runtime.

use std::net::SocketAddr;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{api_router, App, Parts};

/// Binds `count` listening sockets to `addr` with `SO_REUSEPORT`; a port of 0 is resolved by the
/// first and shared by the rest.
pub fn bind(addr: SocketAddr, count: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    let first = bind_one(addr)?;
    let resolved = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..count.max(1) {
        listeners.push(bind_one(resolved)?);
    }
    Ok(listeners)
}

fn bind_one(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// The running workers: each reports once, when its listener stops serving.
pub struct Workers {
    done: mpsc::Receiver<std::io::Result<()>>,
    running: usize,
}

/// How a worker is started: its share of the state and how it stops.
pub struct Start<'a> {
    pub parts: &'a Parts,
    /// Builds each worker's upstream client (a pool lives on the runtime that made it).
    pub http: &'a dyn Fn() -> reqwest::Result<reqwest::Client>,
    pub cancel: &'a CancellationToken,
    pub tasks: &'a TaskTracker,
    /// How long open requests may run once `cancel` fires.
    pub grace: Duration,
}

impl Workers {
    /// Starts one worker thread per listener.
    pub fn start(
        listeners: Vec<std::net::TcpListener>,
        start: &Start<'_>,
    ) -> Result<Self, crate::StartError> {
        let (tx, done) = mpsc::channel(listeners.len().max(1));
        let mut running = 0;
        for (i, listener) in listeners.into_iter().enumerate() {
            let mut parts = start.parts.clone();
            parts.http = (start.http)()?;
            let app = App::new(parts);
            let (cancel, tasks, grace, tx) = (
                start.cancel.clone(),
                start.tasks.clone(),
                start.grace,
                tx.clone(),
            );
            // Detached: the worker reports on `done` when it stops serving.
            std::thread::Builder::new()
                .name(format!("sy-worker-{i}"))
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .thread_name(format!("sy-worker-{i}:b"))
                        .build();
                    let result = match runtime {
                        Ok(runtime) => {
                            runtime.block_on(serve(listener, app, cancel, tasks, grace, tx.clone()))
                        }
                        Err(e) => Err(e),
                    };
                    if let Err(e) = result {
                        let _ = tx.try_send(Err(e));
                    }
                })
                .map_err(crate::StartError::Serve)?;
            running += 1;
        }
        Ok(Self { done, running })
    }

    /// Waits until a worker stops serving (all of them stop on `cancel`; one that stops before
    /// is an error).
    pub async fn first(&mut self) -> std::io::Result<()> {
        match self.done.recv().await {
            Some(result) => {
                self.running -= 1;
                result
            }
            None => Ok(()),
        }
    }

    /// Waits for the rest to stop serving, for at most `limit`; the first error is returned.
    pub async fn all(mut self, limit: Duration) -> std::io::Result<()> {
        let mut result = Ok(());
        let deadline = tokio::time::Instant::now() + limit;
        while self.running > 0 {
            match tokio::time::timeout_at(deadline, self.done.recv()).await {
                Ok(Some(r)) => {
                    self.running -= 1;
                    if result.is_ok() {
                        result = r;
                    }
                }
                Ok(None) | Err(_) => break,
            }
        }
        result
    }
}

/// One worker: serves its listener until `cancel` (then open requests get `grace`), reports,
/// and keeps its runtime turning until the relays it runs have ended (the tracker closes once
/// every worker has reported).
async fn serve(
    listener: std::net::TcpListener,
    app: App,
    cancel: CancellationToken,
    tasks: TaskTracker,
    grace: Duration,
    done: mpsc::Sender<std::io::Result<()>>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    // Without TCP_NODELAY, an SSE event written after the response head waits for the
    // client's delayed ACK (~40 ms): streams would not be forwarded as they arrive.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let served = axum::serve(listener, api_router(app))
        .with_graceful_shutdown(cancel.clone().cancelled_owned());
    let served = tokio::select! {
        r = served => r,
        () = async { cancel.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!("grace period over; closing remaining connections");
            Ok(())
        }
    };
    let _ = done.send(served).await;
    let _ = tokio::time::timeout(grace, tasks.wait()).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_worker_listens_on_the_one_resolved_port() {
        let listeners = bind("127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")), 3)
            .unwrap_or_else(|e| panic!("{e}"));
        let ports: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()).unwrap_or(0))
            .collect();
        assert_eq!(ports.len(), 3);
        assert!(
            ports[0] != 0 && ports.iter().all(|p| *p == ports[0]),
            "{ports:?}"
        );
        // The kernel hands every connection to one of them.
        let addr = listeners[0].local_addr().unwrap_or_else(|e| panic!("{e}"));
        let _conns: Vec<_> = (0..6)
            .map(|_| std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("{e}")))
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        let accepted: usize = listeners
            .iter()
            .map(|l| std::iter::from_fn(|| l.accept().ok()).count())
            .sum();
        assert_eq!(accepted, 6);
    }
}
