//! Where the workspace's own binaries (`data-plane`, `mock-provider`) and the repo live.
//!
//! Tests run the real binaries, built beforehand by `cargo build --workspace --bins` (the test
//! runner does not build other packages' binaries); a missing one is a clear error, not a hang.

use std::path::PathBuf;

use anyhow::Context as _;

/// Overrides the directory holding the workspace binaries.
pub const ENV_BIN_DIR: &str = "SWITCHYARD_BIN_DIR";

/// The repository root (the workspace holding this crate).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(PathBuf::from)
        .unwrap_or(manifest_dir)
}

/// `$SWITCHYARD_BIN_DIR`, else `target/<profile>`: the test executable lives in
/// `target/<profile>/deps/e2e-<hash>`, two levels below.
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os(ENV_BIN_DIR) {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe().context("locating the test executable")?;
    exe.parent()
        .and_then(|deps| deps.parent())
        .map(PathBuf::from)
        .with_context(|| format!("{} has no grandparent directory", exe.display()))
}

/// Full path of a workspace binary, or an error telling how to build it.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let dir = bin_dir()?;
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        anyhow::bail!(
            "binary `{name}` not found at {}: run `cargo build --workspace --bins` first \
             (deploy/local/test.sh does), or point {ENV_BIN_DIR} at the directory holding it",
            path.display()
        )
    }
}

/// Finds a system program on `PATH`, then in the sbin directories that a non-root `PATH`
/// often lacks (Debian installs `nats-server` to `/usr/sbin`).
pub fn system_program(name: &str) -> Option<PathBuf> {
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .into_iter()
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
