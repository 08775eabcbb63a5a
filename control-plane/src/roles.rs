//! Which roles this replica holds right now, for `/readyz` and the
//! `switchyard_control_plane_role{role}` gauge (1 held, 0 not).
//!
//! Several replicas run at once. One of them publishes snapshots (`publisher`: the holder of
//! the relay's advisory lock); every replica connected to NATS folds usage (`fold`) and
//! request-log bodies (`request_log`) from the shared durable consumers, and answers lease
//! requests (`leases`) in a queue group. A role is held while its task's session is up: a
//! [`Held`] guard marks it and unmarks it when dropped, whatever ends the session.

use std::sync::atomic::{AtomicBool, Ordering};

/// A replica's roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Publisher,
    Fold,
    RequestLog,
    Leases,
}

const ALL: [Role; 4] = [Role::Publisher, Role::Fold, Role::RequestLog, Role::Leases];

static HELD: [AtomicBool; 4] = [const { AtomicBool::new(false) }; 4];

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Publisher => "publisher",
            Role::Fold => "fold",
            Role::RequestLog => "request_log",
            Role::Leases => "leases",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Marks `role` held until the guard drops.
#[must_use = "the role is held only while the guard lives"]
#[derive(Debug)]
pub struct Held(Role);

pub fn hold(role: Role) -> Held {
    set(role, true);
    Held(role)
}

impl Drop for Held {
    fn drop(&mut self) {
        set(self.0, false);
    }
}

fn set(role: Role, on: bool) {
    HELD[role.index()].store(on, Ordering::Relaxed);
    metrics::gauge!("switchyard_control_plane_role", "role" => role.name()).set(if on {
        1.0
    } else {
        0.0
    });
}

/// Exports every role as not held, so the gauge exists from start-up.
pub fn init() {
    for role in ALL {
        if !HELD[role.index()].load(Ordering::Relaxed) {
            set(role, false);
        }
    }
}

/// The names of the roles held now.
pub fn held() -> Vec<&'static str> {
    ALL.into_iter()
        .filter(|r| HELD[r.index()].load(Ordering::Relaxed))
        .map(Role::name)
        .collect()
}
