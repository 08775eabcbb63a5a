//! A TCP listener whose connections a handler can kill, for the `reset` fault.
//!
//! axum handlers never see their socket, so each accepted stream carries a [`KillSwitch`] that
//! reaches the handler as connect info. Once tripped, the stream sets `SO_LINGER` to zero and
//! fails every read and write, so hyper drops the connection without writing the response and
//! the kernel sends a TCP reset. The check is one relaxed atomic load per I/O call. Over
//! HTTP/2 the reset takes down every stream sharing the connection, as a real one would.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Trips the connection it was handed out with.
#[derive(Debug, Clone, Default)]
pub(crate) struct KillSwitch(Arc<AtomicBool>);

impl KillSwitch {
    pub(crate) fn kill(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn killed(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl Connected<IncomingStream<'_, MockListener>> for KillSwitch {
    fn connect_info(stream: IncomingStream<'_, MockListener>) -> Self {
        stream.io().kill.clone()
    }
}

/// Accepts TCP connections with `TCP_NODELAY` (SSE events must not wait for Nagle).
#[derive(Debug)]
pub(crate) struct MockListener(pub(crate) TcpListener);

impl Listener for MockListener {
    type Io = KillableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((stream, addr)) => {
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!("set_nodelay failed: {e}");
                    }
                    let io = KillableStream {
                        inner: stream,
                        kill: KillSwitch::default(),
                    };
                    return (io, addr);
                }
                Err(e) if is_connection_error(&e) => {}
                Err(e) => {
                    // Likely out of file descriptors: back off instead of spinning.
                    tracing::error!("accept error: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// A TCP stream that fails all I/O once its [`KillSwitch`] is tripped.
#[derive(Debug)]
pub(crate) struct KillableStream {
    inner: TcpStream,
    kill: KillSwitch,
}

impl KillableStream {
    fn check(&self) -> io::Result<()> {
        if self.kill.killed() {
            // Zero linger turns the close into a reset, as a crashed upstream would look.
            let _ = self.inner.set_zero_linger();
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "mock fault: reset",
            ));
        }
        Ok(())
    }
}

impl AsyncRead for KillableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
