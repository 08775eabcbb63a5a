//! Small file helpers: atomic writes and waiting for a file another process writes.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;

use super::process::ChildProcess;

/// How long a freshly spawned process gets to write its address file.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Writes `contents` to a temporary file beside `path` and renames it over `path`, so a reader
/// (a hot-reloading data plane) sees either the old or the new file, never half of one.
pub fn write_atomic(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .with_context(|| format!("{} has no parent directory", path.display()))?;
    let file_name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?
        .to_string_lossy();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, contents).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

/// Waits until `path` exists and is non-empty, returning its contents. Fails early with the
/// child's log tails if the child exits first, and with them too on timeout.
pub async fn wait_for_file(
    path: &Path,
    child: &mut ChildProcess,
    timeout: Duration,
) -> anyhow::Result<String> {
    let waiting = format!("{} did not write {}", child.spec().name, path.display());
    child
        .wait_for(timeout, &waiting, || {
            std::future::ready(match std::fs::read_to_string(path) {
                Ok(text) if !text.trim().is_empty() => Ok(Some(text)),
                Ok(_) => Ok(None),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
            })
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_the_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
