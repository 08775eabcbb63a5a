//! Free TCP ports for services that cannot bind port 0 themselves and report it (Postgres).
//!
//! The port is free when this returns, not necessarily when the service binds it: another test
//! process may take it in between, so callers retry on "address in use".

use std::net::TcpListener;

use anyhow::Context as _;

/// A port on 127.0.0.1 that the kernel just handed out and that nothing listens on now.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener
        .local_addr()
        .context("reading bound address")?
        .port())
}

/// Whether something accepts TCP connections on 127.0.0.1:`port` right now.
pub fn is_listening(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        std::time::Duration::from_millis(500),
    )
    .is_ok()
}
