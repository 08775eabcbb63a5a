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
