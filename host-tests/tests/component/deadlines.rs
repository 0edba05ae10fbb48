//! Deadlines the component keeps itself.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_endpoint_or_a_stalled_body_never_hangs_the_put() {
    // The fake ignores every timeout the component asks of the host: only the component's own
    // deadline (request_timeout from the start of each request) ends the wait.
    let fake = fake();
    fake.script([Fault::Hang, Fault::StallBody]);
    let events = records(6);
    let started = std::time::Instant::now();
    let (report, _) = ship(&fake, &config(json!({"request_timeout": 0.3})), &events).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_exactly_delivered(&fake, &events, &report);
    assert_eq!(fake.seen().len(), 3, "hang, stall, then a normal answer");
    assert_eq!(report.counters.retries, 12);

    // Without retries the records fail, saying why.
    let fake = self::fake();
    fake.script([Fault::Hang]);
    let (report, _) = ship(
        &fake,
        &config(json!({"request_timeout": 0.2, "retries_on_batch_request": 0})),
        &records(2),
    )
    .await;
    for o in &report.outcomes {
        let Outcome::Failed(f) = o else {
            panic!("expected a timeout, got {o:?}")
        };
        assert!(
            f.message.contains("RequestTimeout")
                && f.message.contains("http://kinesis.test:4567")
                && f.message.contains("request_timeout of 200ms"),
            "{}",
            f.message
        );
    }
}

/// `put_deadline` bounds the whole put, not only the waits between rounds: with a
/// `request_timeout` of a minute, a hung request and a stalled body are cut at the deadline.
#[tokio::test(flavor = "multi_thread")]
async fn put_deadline_cuts_hung_requests_and_stalled_bodies() {
    for fault in [Fault::Hang, Fault::StallBody] {
        let fake = fake();
        fake.script([fault.clone(), fault.clone(), fault.clone(), fault]);
        let events = records(4);
        let started = std::time::Instant::now();
        let cfg = config(json!({"request_timeout": 60, "put_deadline": 1.5}));
        let (report, _) = ship(&fake, &cfg, &events).await;
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(1400) && took < Duration::from_secs(4),
            "took {took:?}"
        );
        for o in &report.outcomes {
            match o {
                Outcome::Failed(f) => assert!(f.message.contains("put_deadline"), "{}", f.message),
                // A stalled body was stored before it stalled: the records may be there.
                Outcome::Delivered(_) => {}
                other => panic!("{other:?}"),
            }
        }
    }
}
