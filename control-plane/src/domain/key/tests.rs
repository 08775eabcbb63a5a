//! Decisions and the event round trip of virtual keys.

use super::*;

fn secret(s: &str) -> Secret {
    Secret {
        sha256: s.into(),
        prefix: s.into(),
        valid_until: None,
    }
}

/// Decides a command and folds its events into `key`.
fn run(key: &mut VirtualKey, command: KeyCommand, ctx: &Ctx) {
    for e in key.decide(command, ctx).unwrap() {
        key.evolve(&e, ctx.now);
    }
}

/// A key created with `settings` and the secret `a`.
fn created(settings: KeySettings, ctx: &Ctx) -> VirtualKey {
    let mut key = VirtualKey::default();
    let create = KeyCommand::Create {
        id: Uuid::now_v7(),
        team_id: Uuid::now_v7(),
        settings,
        secret: secret("a"),
    };
    run(&mut key, create, ctx);
    key
}

#[test]
fn rotation_keeps_the_old_secret_for_the_grace_period_only() {
    let ctx = Ctx { now: Utc::now() };
    let settings = KeySettings {
        name: "svc".into(),
        models: vec!["*".into()],
        ..Default::default()
    };
    let mut key = created(settings, &ctx);
    let rotate = |secret, grace_seconds| KeyCommand::Rotate {
        secret,
        grace_seconds,
    };
    run(&mut key, rotate(secret("b"), 60), &ctx);
    assert_eq!(key.secrets.len(), 2);
    assert_eq!(key.secrets[0].sha256, "a");
    assert_eq!(
        key.secrets[0].valid_until,
        Some(ctx.now + Duration::seconds(60))
    );
    run(&mut key, rotate(secret("c"), 0), &ctx);
    assert_eq!(
        key.secrets,
        vec![secret("c")],
        "no grace: the old secret stops at once"
    );
}

#[test]
fn updates_record_only_changes_and_validate_the_result() {
    let ctx = Ctx { now: Utc::now() };
    let settings = KeySettings {
        name: "svc".into(),
        rpm: Some(10),
        ..Default::default()
    };
    let mut key = created(settings, &ctx);
    let same = KeyPatch {
        rpm: Some(Some(10)),
        name: Some("svc".into()),
        ..Default::default()
    };
    assert!(key
        .decide(KeyCommand::Update(same), &ctx)
        .unwrap()
        .is_empty());
    let zero = KeyPatch {
        rpm: Some(Some(0)),
        ..Default::default()
    };
    assert!(matches!(
        key.decide(KeyCommand::Update(zero), &ctx),
        Err(DomainError::Invalid(_))
    ));
    let clear = KeyPatch {
        rpm: Some(None),
        ..Default::default()
    };
    let events = key.decide(KeyCommand::Update(clear), &ctx).unwrap();
    key.evolve(&events[0], ctx.now);
    assert_eq!(key.settings.rpm, None);
}

#[test]
fn cleared_fields_survive_the_trip_through_the_log() {
    let patch = KeyPatch {
        rpm: Some(None),
        expires_at: Some(None),
        max_request_cost_usd: Some(None),
        tpm: Some(Some(7)),
        ..Default::default()
    };
    let event = KeyEvent::Updated { patch };
    let back: KeyEvent = serde_json::from_value(serde_json::to_value(&event).unwrap()).unwrap();
    assert_eq!(back, event);
}

#[test]
fn the_request_cost_cap_must_be_positive() {
    let mut s = KeySettings {
        name: "svc".into(),
        max_request_cost_usd: Some(Decimal::ZERO),
        ..Default::default()
    };
    assert!(check_settings(&s).is_err());
    s.max_request_cost_usd = Some(Decimal::new(25, 2));
    assert!(check_settings(&s).is_ok());
    let old: KeySettings =
        serde_json::from_str(r#"{"name":"n","models":[],"expires_at":null,"tags":{},"rpm":null,"tpm":null,"budget_id":null}"#)
            .unwrap();
    assert_eq!(old.max_request_cost_usd, None);
}

#[test]
fn the_log_policy_is_set_changed_cleared_and_absent_from_old_events() {
    let ctx = Ctx { now: Utc::now() };
    let settings = KeySettings {
        name: "svc".into(),
        log_payloads: Some(LogPayloads::Full),
        ..Default::default()
    };
    let mut key = created(settings, &ctx);
    assert_eq!(key.settings.log_payloads, Some(LogPayloads::Full));
    let patch = |p| KeyPatch {
        log_payloads: Some(p),
        ..Default::default()
    };
    let same = key.decide(KeyCommand::Update(patch(Some(LogPayloads::Full))), &ctx);
    assert!(same.unwrap().is_empty(), "the same policy records nothing");
    run(
        &mut key,
        KeyCommand::Update(patch(Some(LogPayloads::Off))),
        &ctx,
    );
    assert_eq!(key.settings.log_payloads, Some(LogPayloads::Off));
    // Cleared, and through the log as the store keeps it: `null` still means "clear".
    let events = key.decide(KeyCommand::Update(patch(None)), &ctx).unwrap();
    let json = serde_json::to_value(&events[0]).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"type": "key.updated", "patch": {"log_payloads": null}})
    );
    let replayed: KeyEvent = serde_json::from_value(json).unwrap();
    key.evolve(&replayed, ctx.now);
    assert_eq!(key.settings.log_payloads, None);
    // A key created before the policy existed replays with none.
    let old: KeyEvent = serde_json::from_str(
        r#"{"type":"key.created","id":"0190a6a4-0000-7000-8000-000000000000","team_id":"0190a6a4-0000-7000-8000-000000000001",
            "settings":{"name":"n","models":["*"],"expires_at":null,"tags":{},"rpm":null,"tpm":null,"budget_id":null,"max_request_cost_usd":null},
            "sha256":"a","prefix":"a"}"#,
    )
    .unwrap();
    let mut legacy = VirtualKey::default();
    legacy.evolve(&old, ctx.now);
    assert_eq!(legacy.settings.log_payloads, None);
    let stored = serde_json::to_value(&legacy.settings).unwrap();
    assert_eq!(stored["log_payloads"], serde_json::Value::Null);
}
