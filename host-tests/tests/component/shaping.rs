//! Record shaping inside the component: formats, inject, compression.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn record_shaping_runs_inside_the_component() {
    use std::io::Read as _;
    // ltsv with inject, gzip-compressed, keyed by a nested path.
    let fake = fake();
    let cfg = config(json!({
        "partition_key": "$.kubernetes.pod_name",
        "format": {"type": "ltsv"},
        "inject": {"tag_key": "tag", "time_key": "time", "time_type": "unixtime"},
        "compression": "gzip",
    }));
    let events = vec![event(
        r#"{"log":"hello","kubernetes":{"pod_name":"web-1"}}"#,
        1_700_000_000,
    )];
    let (report, _) = ship(&fake, &cfg, &events).await;
    assert!(matches!(report.outcomes[0], Outcome::Delivered(_)), "{report:?}");
    let stored = &fake.stored()[0];
    assert_eq!(stored.partition_key, "web-1");
    let mut text = String::new();
    flate2_gunzip(&stored.data).read_to_string(&mut text).unwrap();
    assert_eq!(
        text,
        "log:hello\tkubernetes:{\"pod_name\"=>\"web-1\"}\ttag:kube.var.log.containers\ttime:1700000000\n"
    );

    // data_key: the field's text as it is; a record without it is rejected, the rest ship.
    let fake = self::fake();
    let cfg = config(json!({"data_key": "log", "partition_key": null}));
    let events = vec![event(r#"{"log":"raw line"}"#, 1), event(r#"{"other":1}"#, 2)];
    let (report, _) = ship(&fake, &cfg, &events).await;
    assert!(matches!(report.outcomes[0], Outcome::Delivered(_)));
    let Outcome::Rejected(r) = &report.outcomes[1] else {
        panic!("{report:?}")
    };
    assert_eq!(r.kind, RejectionKind::NoDataKey);
    assert_eq!(fake.stored()[0].data, b"raw line");
}

/// A gzip reader (the fake stores what the component sent).
fn flate2_gunzip(data: &[u8]) -> impl std::io::Read + '_ {
    flate2::read::GzDecoder::new(data)
}
