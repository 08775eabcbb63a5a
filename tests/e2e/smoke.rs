//! Smoke tests of the harness itself: Postgres and NATS really start, answer, stay apart
//! between environments and are gone after the environment drops.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::PullConsumer};
use futures_util::StreamExt as _;
use switchyard_tests::support::{is_listening, TestEnv};

#[tokio::test]
async fn postgres_answers_queries() {
    let env = TestEnv::builder().postgres().build().await.unwrap();
    let db = env.postgres().client().await.unwrap();

    let version: String = db.query_one("select version()", &[]).await.unwrap().get(0);
    assert!(version.starts_with("PostgreSQL 15"), "{version}");

    db.batch_execute("create table smoke (id bigint primary key, note text not null)")
        .await
        .unwrap();
    db.execute(
        "insert into smoke (id, note) values ($1, $2), ($3, $4)",
        &[&1_i64, &"one", &2_i64, &"two"],
    )
    .await
    .unwrap();
    let rows = db
        .query("select id, note from smoke order by id", &[])
        .await
        .unwrap();
    let got: Vec<(i64, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got, vec![(1, "one".to_owned()), (2, "two".to_owned())]);
}

#[tokio::test]
async fn nats_jetstream_round_trip() {
    let env = TestEnv::builder().nats().build().await.unwrap();
    let js = env.nats().jetstream().await.unwrap();

    let stream = js
        .get_or_create_stream(jetstream::stream::Config {
            name: "SMOKE".to_owned(),
            subjects: vec!["smoke.>".to_owned()],
            ..Default::default()
        })
        .await
        .unwrap();
    let ack = js
        .publish("smoke.hello", "payload-1".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(ack.stream, "SMOKE");

    let mut consumer: PullConsumer = stream
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("smoke".to_owned()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut batch = consumer
        .batch()
        .max_messages(1)
        .expires(Duration::from_secs(5))
        .messages()
        .await
        .unwrap();
    let message = batch.next().await.expect("no message").unwrap();
    assert_eq!(message.subject.as_str(), "smoke.hello");
    assert_eq!(&message.payload[..], b"payload-1");
    message.double_ack().await.unwrap();

    let info = consumer.info().await.unwrap();
    assert_eq!(info.num_ack_pending, 0);
    assert_eq!(info.num_pending, 0);
}

#[tokio::test]
async fn nats_restart_keeps_port_and_streams() {
    let mut env = TestEnv::builder().nats().build().await.unwrap();
    let url = env.nats().url();
    let js = env.nats().jetstream().await.unwrap();
    js.get_or_create_stream(jetstream::stream::Config {
        name: "KEPT".to_owned(),
        subjects: vec!["kept".to_owned()],
        ..Default::default()
    })
    .await
    .unwrap();
    js.publish("kept", "x".into()).await.unwrap().await.unwrap();

    let port = env.nats().port();
    env.nats_mut().stop().await.unwrap();
    assert!(!is_listening(port), "nats still listening after stop");
    env.nats_mut().restart().await.unwrap();
    assert_eq!(env.nats().url(), url);

    let js = env.nats().jetstream().await.unwrap();
    let mut stream = js.get_stream("KEPT").await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 1);
}

#[tokio::test]
async fn environments_are_isolated_and_stop_on_drop() {
    let (a, b) = tokio::join!(
        TestEnv::builder().postgres().nats().build(),
        TestEnv::builder().postgres().nats().build(),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let ports = |env: &TestEnv| {
        [
            env.postgres().port(),
            env.nats().port(),
            env.nats()
                .monitor_url()
                .rsplit(':')
                .next()
                .unwrap()
                .parse()
                .unwrap(),
        ]
    };
    let (ports_a, ports_b) = (ports(&a), ports(&b));
    for port in ports_a {
        assert!(!ports_b.contains(&port), "{ports_a:?} vs {ports_b:?}");
    }
    assert_ne!(a.dir(), b.dir());
    assert_ne!(a.postgres().database_url(), b.postgres().database_url());

    let dir_a = a.dir().to_owned();
    drop(a);
    for port in ports_a {
        assert!(!is_listening(port), "port {port} still open after drop");
    }
    assert!(!dir_a.exists(), "{} survived the drop", dir_a.display());

    // The other environment is untouched.
    let version: String = b
        .postgres()
        .client()
        .await
        .unwrap()
        .query_one("select version()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(version.contains("PostgreSQL"));
    b.nats().client().await.unwrap().flush().await.unwrap();
}

#[tokio::test]
async fn mock_provider_starts_and_answers_its_control_api() {
    let mut env = TestEnv::builder().mock_provider().build().await.unwrap();
    let mock = env.mock();
    assert!(mock.base_url().starts_with("http://127.0.0.1:"));
    assert_eq!(
        mock.requests().await.unwrap(),
        Vec::<serde_json::Value>::new()
    );
    mock.clear().await.unwrap();

    let port = mock.addr().port();
    env.mock_mut(0).kill().unwrap();
    assert!(!is_listening(port), "mock still listening after kill");
}
