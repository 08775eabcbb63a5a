//! Declarative configuration: make the store match a snapshot-shaped file.
//!
//! `apply` validates the whole file first, reads the projections, computes the changes with the
//! pure [`plan()`], and issues only those commands, in an order that never leaves a route
//! pointing at a missing provider or a key at a missing budget: providers created/updated →
//! routes created/updated → team limits set, teams created → cache policies put/deleted →
//! price overrides set/removed → budgets created/updated → keys revoked, updated, created →
//! guardrail policies put, deleted → budgets deleted → routes deleted → providers deleted.
//! Anything in the store that the file does not mention (providers, routes, keys, budgets,
//! price overrides, cache policies, guardrail policies, the limits and log policy of teams its
//! `teams` list leaves out) is removed. A cache policy keeps its stored purge `epoch` whatever
//! the file says. Budgets are matched by name (see [`DesiredBudget`]); a price equal
//! to the built-in one, for a model with no override, is not made an override. Applying the
//! same file twice records no events: the plan is empty, and every command decides nothing
//! when nothing changes anyway.
//!
//! Each command is its own transaction: if one fails midway, the earlier ones stay applied and
//! applying the file again converges.

mod plan;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};

use proto::Snapshot;
use serde::de::DeserializeOwned;
use uuid::Uuid;

pub use plan::{
    budget_target, guardrail_reference_errors, plan, reference_errors, resolve_team, revoked_names,
    sealed_errors, tally, ApplyReport, BudgetTarget, Change, Counts, Current, CurrentBudget,
    CurrentKey, Desired, DesiredBudget, DesiredKey, TeamLimits, TeamRef, DEFAULT_TEAM,
};

use crate::api::ApiError;
use crate::domain::budget::{Budget, BudgetSpec};
use crate::domain::cache_policy::CachePolicy;
use crate::domain::guardrail::{Guardrail, GuardrailSpec};
use crate::domain::key::{KeyCommand, KeyPatch, KeySettings, Secret, VirtualKey};
use crate::domain::pricing::Price;
use crate::domain::provider::Provider;
use crate::domain::resource::{Resource, ResourceCommand, Spec};
use crate::domain::route::Route;
use crate::domain::team::{NewTeam, Team, TeamCommand, TeamPatch};
use crate::domain::Aggregate;
use crate::domain::FieldError;
use crate::seal::SealKey;
use crate::store::{Project, Store, StoreError};
use crate::usage::pricing::{spec_from_row, PRICE_COLUMNS};

/// Prefix recorded for secrets imported by hash (the real prefix is unknown).
const IMPORTED_PREFIX: &str = "imported";

/// Makes the store match `desired`; see the module docs. With `prune` false, what the store
/// holds beyond the file is kept (only creations and updates are applied).
pub async fn apply(
    store: &Store,
    seal: Option<&SealKey>,
    actor: &str,
    desired: &Snapshot,
    prune: bool,
) -> Result<ApplyReport, ApiError> {
    let mut errors: Vec<FieldError> = desired
        .validate()
        .err()
        .unwrap_or_default()
        .into_iter()
        .map(|e| FieldError::new(e.path, e.reason))
        .collect();
    errors.extend(sealed_errors(seal, desired));
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let wanted = Desired::from_snapshot(desired).map_err(ApiError::Invalid)?;
    let current = load_current(store).await?;
    // Found before anything runs, so such a file changes nothing rather than half of it.
    let mut refused = revoked_names(&current, &wanted);
    refused.extend(reference_errors(&current, &wanted, prune));
    refused.extend(guardrail_reference_errors(&current, &wanted));
    if !refused.is_empty() {
        return Err(ApiError::Invalid(refused));
    }
    let mut changes = plan(&current, &wanted);
    if !prune {
        changes.retain(|c| {
            !matches!(
                c,
                Change::RevokeKey { .. }
                    | Change::SetTeamLimits { unlisted: true, .. }
                    | Change::RemovePrice { .. }
                    | Change::DeleteBudget {
                        replaced: false,
                        ..
                    }
                    | Change::DeleteRoute { .. }
                    | Change::DeleteProvider { .. }
                    | Change::DeleteCachePolicy { .. }
                    | Change::DeleteGuardrail { .. }
            )
        });
    }
    let mut report = tally(&changes);
    let mut runner = Runner {
        store,
        actor,
        new_teams: HashMap::new(),
        new_keys: HashMap::new(),
        events: 0,
        position: None,
    };
    for change in changes {
        if let Err(e) = runner.run(change).await {
            tracing::warn!(
                actor,
                events = runner.events,
                "declarative apply stopped midway"
            );
            return Err(e);
        }
    }
    report.events = runner.events;
    report.position = runner.position;
    tracing::info!(actor, events = report.events, "declarative config applied");
    Ok(report)
}

/// Runs changes in order and counts the events they append.
struct Runner<'a> {
    store: &'a Store,
    actor: &'a str,
    /// Teams created so far, by name.
    new_teams: HashMap<String, Uuid>,
    /// Ids of keys to create, drawn when a budget for the key or the key itself needs one
    /// first (budgets are created before keys).
    new_keys: HashMap<(TeamRef, String), Uuid>,
    events: u32,
    position: Option<i64>,
}

impl Runner<'_> {
    /// One command; a command that changes nothing appends nothing.
    async fn exec<A: Project>(
        &mut self,
        id: &str,
        expected: Option<i32>,
        command: A::Command,
    ) -> Result<(), ApiError> {
        if let Some(position) = self
            .store
            .execute::<A>(id, expected, self.actor, command)
            .await?
            .position
        {
            self.events += 1;
            self.position = Some(position);
        }
        Ok(())
    }

    /// Puts a global (team-less) spec resource, whatever its version.
    async fn put<S: Spec>(&mut self, id: String, spec: S) -> Result<(), ApiError>
    where
        Resource<S>: Project + Aggregate<Command = ResourceCommand<S>>,
    {
        let command = ResourceCommand::Put {
            id: id.clone(),
            team_id: None,
            spec,
        };
        self.exec::<Resource<S>>(&id, None, command).await
    }

    async fn run(&mut self, change: Change) -> Result<(), ApiError> {
        match change {
            Change::PutProvider { id, spec, .. } => self.put(id, spec).await,
            Change::PutCachePolicy { id, mut spec, .. } => {
                // Teams this apply created are known by name only now.
                for team in &mut spec.applies_to.teams {
                    if let Some(created) = self.new_teams.get(team.as_str()) {
                        *team = created.to_string();
                    }
                }
                self.put(id, spec).await
            }
            Change::DeleteCachePolicy { id } => {
                self.exec::<CachePolicy>(&id, None, ResourceCommand::Delete)
                    .await
            }
            Change::PutRoute { alias, spec, .. } => self.put(alias, spec).await,
            Change::CreateTeam { name, limits } => {
                let id = Uuid::now_v7();
                let command = TeamCommand::Create(NewTeam {
                    id,
                    name: name.clone(),
                    metadata: BTreeMap::new(),
                    rpm: limits.rpm,
                    tpm: limits.tpm,
                    log_payloads: limits.log_payloads,
                });
                self.exec::<Team>(&id.to_string(), Some(0), command).await?;
                self.new_teams.insert(name, id);
                Ok(())
            }
            Change::SetTeamLimits { id, limits, .. } => {
                let command = TeamCommand::Update(TeamPatch {
                    rpm: Some(limits.rpm),
                    tpm: Some(limits.tpm),
                    log_payloads: Some(limits.log_payloads),
                    ..TeamPatch::default()
                });
                self.exec::<Team>(&id.to_string(), None, command).await
            }
            Change::RevokeKey { id } => {
                self.exec::<VirtualKey>(&id.to_string(), None, KeyCommand::Revoke)
                    .await
            }
            Change::UpdateKey { id, patch, rotate } => self.update_key(id, patch, rotate).await,
            Change::CreateKey {
                team,
                settings,
                sha256,
            } => self.create_key(team, settings, sha256).await,
            Change::SetPrice { model, spec, .. } => {
                let command = ResourceCommand::Put {
                    id: model.clone(),
                    team_id: None,
                    spec,
                };
                self.exec::<Price>(&model, None, command).await
            }
            Change::RemovePrice { model } => {
                self.exec::<Price>(&model, None, ResourceCommand::Delete)
                    .await
            }
            Change::CreateBudget {
                id, spec, target, ..
            } => self.create_budget(id, spec, target).await,
            Change::UpdateBudget { id, spec } => {
                self.exec::<Budget>(&id.to_string(), None, ResourceCommand::Update(spec))
                    .await
            }
            Change::DeleteBudget { id, .. } => {
                self.exec::<Budget>(&id.to_string(), None, ResourceCommand::Delete)
                    .await
            }
            Change::DeleteRoute { alias } => {
                self.exec::<Route>(&alias, None, ResourceCommand::Delete)
                    .await
            }
            Change::DeleteProvider { id } => {
                self.exec::<Provider>(&id, None, ResourceCommand::Delete)
                    .await
            }
            Change::PutGuardrail {
                id, spec, pending, ..
            } => self.put_guardrail(id, spec, pending).await,
            Change::DeleteGuardrail { id } => {
                self.exec::<Guardrail>(&id.to_string(), None, ResourceCommand::Delete)
                    .await
            }
        }
    }

    /// A global policy, with the teams and keys created earlier in this apply added to what
    /// it applies to.
    async fn put_guardrail(
        &mut self,
        id: Uuid,
        mut spec: GuardrailSpec,
        pending: Vec<plan::Pending>,
    ) -> Result<(), ApiError> {
        for p in pending {
            match p {
                plan::Pending::Team(name) => {
                    let team = self.team_id(&TeamRef::New(name))?;
                    spec.applies_to.teams.push(team.to_string());
                }
                plan::Pending::Key(team, name) => {
                    let key = self.new_key_id(&team, &name);
                    spec.applies_to.keys.push(key.to_string());
                }
            }
        }
        spec.applies_to.teams.sort();
        spec.applies_to.keys.sort();
        let command = ResourceCommand::Put {
            id: id.to_string(),
            team_id: None,
            spec,
        };
        self.exec::<Guardrail>(&id.to_string(), None, command).await
    }

    async fn update_key(
        &mut self,
        id: Uuid,
        patch: Option<KeyPatch>,
        rotate: Option<String>,
    ) -> Result<(), ApiError> {
        if let Some(patch) = patch {
            self.exec::<VirtualKey>(&id.to_string(), None, KeyCommand::Update(patch))
                .await?;
        }
        if let Some(sha256) = rotate {
            // No grace period: the file says which secret is valid, and only that one is.
            let command = KeyCommand::Rotate {
                secret: imported(sha256),
                grace_seconds: 0,
            };
            self.exec::<VirtualKey>(&id.to_string(), None, command)
                .await?;
        }
        Ok(())
    }

    /// The id of a team that exists or was created earlier in this apply.
    fn team_id(&self, team: &TeamRef) -> Result<Uuid, ApiError> {
        match team {
            TeamRef::Existing(id) => Ok(*id),
            TeamRef::New(name) => self
                .new_teams
                .get(name)
                .copied()
                .ok_or_else(|| ApiError::Conflict(format!("team `{name}` was not created"))),
        }
    }

    fn new_key_id(&mut self, team: &TeamRef, name: &str) -> Uuid {
        *self
            .new_keys
            .entry((team.clone(), name.to_owned()))
            .or_insert_with(Uuid::now_v7)
    }

    /// A budget owned, like the API's, by the team it limits or the team of the key it limits.
    async fn create_budget(
        &mut self,
        id: Uuid,
        mut spec: BudgetSpec,
        target: BudgetTarget,
    ) -> Result<(), ApiError> {
        let team_id = match &target {
            BudgetTarget::Team(team) => {
                let team = self.team_id(team)?;
                spec.target = team.to_string();
                Some(team)
            }
            BudgetTarget::Key { id: key, team } => {
                spec.target = key.to_string();
                Some(*team)
            }
            BudgetTarget::NewKey { team, name } => {
                spec.target = self.new_key_id(team, name).to_string();
                Some(self.team_id(team)?)
            }
            BudgetTarget::Tag(tag) => {
                spec.target.clone_from(tag);
                None
            }
        };
        let command = ResourceCommand::Create {
            id: id.to_string(),
            team_id,
            spec,
        };
        self.exec::<Budget>(&id.to_string(), Some(0), command).await
    }

    async fn create_key(
        &mut self,
        team: TeamRef,
        settings: KeySettings,
        sha256: String,
    ) -> Result<(), ApiError> {
        let team_id = self.team_id(&team)?;
        let id = self.new_key_id(&team, &settings.name);
        let command = KeyCommand::Create {
            id,
            team_id,
            settings,
            secret: imported(sha256),
        };
        self.exec::<VirtualKey>(&id.to_string(), Some(0), command)
            .await
    }
}

/// A secret known only by its hash.
fn imported(sha256: String) -> Secret {
    Secret {
        sha256,
        prefix: IMPORTED_PREFIX.to_owned(),
        valid_until: None,
    }
}

fn parse<T: DeserializeOwned>(
    value: serde_json::Value,
    what: &str,
    id: &str,
) -> Result<T, ApiError> {
    serde_json::from_value(value)
        .map_err(|e| StoreError::Corrupt(format!("{what} {id}: {e}")).into())
}

/// Reads the projections as of one point of the log.
pub async fn load_current(store: &Store) -> Result<Current, ApiError> {
    let mut client = store.pool().get().await?;
    let tx = crate::store::consistent_read(&mut client).await?;
    let mut current = Current::default();
    for r in tx.query("SELECT id, spec FROM providers", &[]).await? {
        let id: String = r.get(0);
        let spec = parse(r.get(1), "provider", &id)?;
        current.providers.insert(id, spec);
    }
    for r in tx.query("SELECT alias, spec FROM routes", &[]).await? {
        let alias: String = r.get(0);
        let spec = parse(r.get(1), "route", &alias)?;
        current.routes.insert(alias, spec);
    }
    for r in tx
        .query("SELECT id, name, rpm, tpm, log_payloads FROM teams", &[])
        .await?
    {
        let id: Uuid = r.get(0);
        current.teams.insert(r.get(1), id);
        let limit = |i: usize| {
            r.get::<_, Option<i64>>(i)
                .and_then(|v| u64::try_from(v).ok())
        };
        let limits = TeamLimits {
            rpm: limit(2),
            tpm: limit(3),
            log_payloads: crate::store::admin::log_payloads(r.get(4))?,
        };
        if limits != TeamLimits::default() {
            current.team_limits.insert(id, limits);
        }
    }
    let keys = tx
        .query(
            "SELECT k.id, k.team_id, k.spec, s.sha256 FROM virtual_keys k
             LEFT JOIN key_secrets s ON s.key_id = k.id AND s.valid_until IS NULL
             WHERE k.revoked_at IS NULL ORDER BY k.id",
            &[],
        )
        .await?;
    for r in keys {
        let id: Uuid = r.get(0);
        current.keys.push(CurrentKey {
            id,
            team_id: r.get(1),
            settings: parse(r.get(2), "key", &id.to_string())?,
            sha256: r.get(3),
        });
    }
    for r in tx
        .query(
            "SELECT team_id, name FROM virtual_keys WHERE revoked_at IS NOT NULL",
            &[],
        )
        .await?
    {
        current.revoked.insert((r.get(0), r.get(1)));
    }
    for r in tx
        .query("SELECT id, team_id, spec FROM budgets ORDER BY id", &[])
        .await?
    {
        let id: Uuid = r.get(0);
        current.budgets.push(CurrentBudget {
            id,
            team_id: r.get(1),
            spec: parse(r.get(2), "budget", &id.to_string())?,
        });
    }
    for r in tx.query("SELECT id, spec FROM cache_policies", &[]).await? {
        let id: String = r.get(0);
        let spec = parse(r.get(1), "cache policy", &id)?;
        current.cache_policies.insert(id, spec);
    }
    for r in tx
        .query("SELECT id, spec FROM guardrails ORDER BY id", &[])
        .await?
    {
        let id: Uuid = r.get(0);
        current.guardrails.push(plan::CurrentGuardrail {
            id,
            spec: parse(r.get(1), "guardrail", &id.to_string())?,
        });
    }
    let prices = tx
        .query(&format!("SELECT model, {PRICE_COLUMNS} FROM pricing"), &[])
        .await?;
    for r in prices {
        // Values as they were written (see spec_from_row).
        if let Some(spec) = spec_from_row(&r, 1) {
            current.prices.insert(r.get(0), spec);
        }
    }
    tx.commit().await?;
    Ok(current)
}
