//! Teams: how the file names them (by name or id, existing or new), their limits and log
//! policy, and the commands that create teams and set or remove them.

use std::collections::HashSet;

use uuid::Uuid;

use super::{unique_items, Change, Current, Desired, TeamLimits};
use crate::domain::team::check_limits;
use crate::domain::{Check, FieldError};

/// A team a key goes to: one that exists, or one the plan creates first.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TeamRef {
    Existing(Uuid),
    New(String),
}

/// The file's team limits and log policies, validated like the API's; a team listed twice is
/// an error.
pub(super) fn desired_teams(
    teams: &[proto::TeamPolicy],
    errors: &mut Vec<FieldError>,
) -> Vec<(String, TeamLimits)> {
    let limits = |check: &mut Check, at: &str, t: &proto::TeamPolicy| {
        check_limits(check, &format!("{at}."), t.rpm, t.tpm);
        TeamLimits {
            rpm: t.rpm,
            tpm: t.tpm,
            log_payloads: t.log_payloads,
        }
    };
    unique_items(
        teams,
        ["teams", "id", "team"],
        |t| &t.id,
        Check::name,
        limits,
        errors,
    )
}

/// A team named in the file: by name, else by id (files exported from a control plane carry
/// team ids), else a new team of that name.
pub fn resolve_team(current: &Current, team: &str) -> TeamRef {
    if let Some(id) = current.teams.get(team) {
        return TeamRef::Existing(*id);
    }
    match team.parse::<Uuid>() {
        Ok(id) if current.teams.values().any(|t| *t == id) => TeamRef::Existing(id),
        _ => TeamRef::New(team.to_owned()),
    }
}

/// Whether applying the file creates this team (it lists it, or one of its keys names it).
pub(super) fn creates_team(desired: &Desired, name: &str) -> bool {
    desired.teams.iter().any(|(t, _)| t == name) || desired.keys.iter().any(|k| k.team == name)
}

/// Teams to create (those the file lists with limits or a log policy, then those its keys
/// name), and limits and log policies of existing teams to set or, for teams the file does not
/// list, to remove.
pub(super) fn plan_teams(current: &Current, desired: &Desired, changes: &mut Vec<Change>) {
    let mut new_teams: Vec<(&str, TeamLimits)> = Vec::new();
    let mut listed = HashSet::new();
    for (team, limits) in &desired.teams {
        match resolve_team(current, team) {
            TeamRef::Existing(id) => {
                listed.insert(id);
                if current.team_limits.get(&id).copied().unwrap_or_default() != *limits {
                    changes.push(Change::SetTeamLimits {
                        id,
                        limits: *limits,
                        unlisted: false,
                    });
                }
            }
            TeamRef::New(_) => new_teams.push((team.as_str(), *limits)),
        }
    }
    for k in &desired.keys {
        if let TeamRef::New(name) = resolve_team(current, &k.team) {
            if !new_teams.iter().any(|(n, _)| *n == name) {
                new_teams.push((&k.team, TeamLimits::default()));
            }
        }
    }
    for (id, limits) in &current.team_limits {
        if !listed.contains(id) && *limits != TeamLimits::default() {
            changes.push(Change::SetTeamLimits {
                id: *id,
                limits: TeamLimits::default(),
                unlisted: true,
            });
        }
    }
    changes.extend(
        new_teams
            .into_iter()
            .map(|(name, limits)| Change::CreateTeam {
                name: name.to_owned(),
                limits,
            }),
    );
}
