//! How many copies JetStream keeps of every stream, key-value bucket and object store the
//! planes create: one rule for both planes, so a cluster never ends up with some state
//! replicated and some not.

/// The variable (and `--nats-replicas` flag, in both planes) that sets the replica count.
pub const NATS_REPLICAS_ENV: &str = "SWITCHYARD_NATS_REPLICAS";

use std::sync::OnceLock;

/// The process's setting, made once at start-up by the plane's configuration.
static SETTING: OnceLock<Option<usize>> = OnceLock::new();

/// Records the process's `--nats-replicas` (first call wins; `None`: follow the server).
pub fn set_replicas_setting(setting: Option<usize>) {
    let _ = SETTING.set(setting);
}

/// [`replicas`] with the process's setting.
pub fn process_replicas(cluster: bool, servers: usize) -> usize {
    replicas(SETTING.get().copied().flatten(), cluster, servers)
}

/// Most replicas JetStream allows.
pub const MAX_REPLICAS: usize = 5;

/// The replica count: the setting if there is one (1 to [`MAX_REPLICAS`]), else what the
/// server reports: 3 when it is part of a cluster of at least 3 nodes (`cluster` named in its
/// `INFO`, `servers` the client URLs it announces), else 1.
///
/// Only applies when a plane creates something: an existing stream keeps its replicas (an
/// operator may have changed them).
pub fn replicas(setting: Option<usize>, cluster: bool, servers: usize) -> usize {
    match setting {
        Some(n) => n.clamp(1, MAX_REPLICAS),
        None if cluster && servers >= 3 => 3,
        None => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setting_wins_else_the_cluster_decides() {
        assert_eq!(replicas(None, false, 0), 1);
        assert_eq!(
            replicas(None, true, 2),
            1,
            "two nodes cannot keep a quorum of 3"
        );
        assert_eq!(replicas(None, true, 3), 3);
        assert_eq!(replicas(None, true, 7), 3);
        assert_eq!(replicas(Some(1), true, 3), 1);
        assert_eq!(replicas(Some(9), false, 0), MAX_REPLICAS);
        assert_eq!(replicas(Some(0), false, 0), 1);
    }
}
