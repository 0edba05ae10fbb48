//! Egress policy: the host refuses every authority it was not told about.

use super::credentials::{chain_config, count, ship_with};
use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn the_egress_policy_refuses_other_authorities_with_a_clear_failure() {
    let fake = fake();
    let allowed = vec!["kinesis.test:4567".to_string()];
    let events = records(5);

    // The configured endpoint is allowed: everything ships.
    let options = InstanceOptions::new(Upstream::Fake(fake.clone())).egress(allowed.clone());
    let report = ship_with(options, &config(json!({})), &events).await;
    assert_exactly_delivered(&fake, &events, &report);

    // An endpoint the policy does not name: refused by the host, never reached.
    let requests_before = fake.seen().len();
    let options = InstanceOptions::new(Upstream::Fake(fake.clone())).egress(allowed.clone());
    let mut inst = Runtime::shared().instantiate_with(options).await.unwrap();
    let sink = inst
        .open(&config(
            json!({"endpoint": "http://elsewhere.test:4567", "retries_on_batch_request": 1}),
        ))
        .await
        .unwrap()
        .unwrap();
    let report = inst.put(sink, &events).await.unwrap();
    for o in &report.outcomes {
        let Outcome::Failed(f) = o else {
            panic!("expected a refusal, got {o:?}")
        };
        assert_eq!(f.code, "HttpRequestDenied", "{}", f.message);
        assert!(
            f.message.contains("http://elsewhere.test:4567") && f.message.contains("egress policy"),
            "{}",
            f.message
        );
    }
    assert_eq!(fake.seen().len(), requests_before, "nothing reached Kinesis");
    assert!(inst.refused().iter().all(|r| r == "http://elsewhere.test:4567"));
    assert!(!inst.refused().is_empty());

    // A credential endpoint outside the policy: the credential error says so.
    let agent_calls = Arc::new(AtomicUsize::new(0));
    let calls = agent_calls.clone();
    let agent: Endpoint = Arc::new(move |_, _, _, _| {
        calls.fetch_add(1, Ordering::SeqCst);
        (200, b"{}".to_vec())
    });
    let options = InstanceOptions::new(Upstream::Fake(fake.clone()))
        .env(&[(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "http://169.254.170.23/v1/credentials",
        )])
        .endpoint("169.254.170.23", agent)
        .egress(allowed);
    let report = ship_with(options, &chain_config(), &records(2)).await;
    for o in &report.outcomes {
        let Outcome::Failed(f) = o else {
            panic!("expected a credential failure, got {o:?}")
        };
        assert!(
            f.message.contains("http://169.254.170.23") && f.message.contains("egress policy"),
            "{}",
            f.message
        );
    }
    assert_eq!(
        count(&agent_calls),
        0,
        "the credential endpoint was never reached"
    );
}
