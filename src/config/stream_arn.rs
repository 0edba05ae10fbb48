//! `stream_arn`: PutRecords by stream ARN, as AWS recommends and as cross-account streams need.
//! The ARN names the partition, region, account and stream; the configuration's region and
//! endpoint are checked against it.

use crate::kinesis::region;
use crate::shaping::stream_name::StreamName;

/// A parsed `arn:<partition>:kinesis:<region>:<account>:stream/<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamArn {
    /// The ARN as given.
    pub arn: String,
    pub region: String,
    pub account: String,
    pub name: String,
}

impl StreamArn {
    pub fn parse(text: &str) -> Result<StreamArn, String> {
        let shape = "is not a stream ARN like arn:aws:kinesis:us-east-1:123456789012:stream/name";
        let parts: Vec<&str> = text.splitn(6, ':').collect();
        let [prefix, partition, service, region, account, resource] = parts[..] else {
            return Err(format!("{text:?} {shape}"));
        };
        if prefix != "arn" || service != "kinesis" {
            return Err(format!("{text:?} {shape}"));
        }
        if region.is_empty() || region::partition(region) != partition {
            return Err(format!(
                "{text:?}: region {region:?} is not in partition {partition:?}"
            ));
        }
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{text:?}: the account id must be 12 digits"));
        }
        let Some(name) = resource.strip_prefix("stream/") else {
            return Err(format!("{text:?}: only stream ARNs are accepted (stream/NAME)"));
        };
        match StreamName::parse(name) {
            Ok(n) if n.is_fixed() => {}
            _ => return Err(format!("{text:?}: {name:?} is not a stream name")),
        }
        Ok(StreamArn {
            arn: text.to_string(),
            region: region.to_string(),
            account: account.to_string(),
            name: name.to_string(),
        })
    }

    /// The endpoint PutRecords by this ARN goes to by default.
    pub fn endpoint(&self) -> String {
        region::kinesis_account_endpoint(&self.account, &self.region)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_arns_are_parsed_and_checked() {
        let a = StreamArn::parse("arn:aws-cn:kinesis:cn-north-1:123456789012:stream/logs.prod").unwrap();
        assert_eq!(
            (a.region.as_str(), a.account.as_str(), a.name.as_str()),
            ("cn-north-1", "123456789012", "logs.prod")
        );
        assert_eq!(
            a.endpoint(),
            "https://123456789012.data-kinesis.cn-north-1.amazonaws.com.cn"
        );
        for (bad, rule) in [
            ("logs", "is not a stream ARN"),
            (
                "arn:aws:s3:us-east-1:123456789012:stream/logs",
                "is not a stream ARN",
            ),
            (
                "arn:aws:kinesis:us-east-1:123456789012:accesspoint/logs",
                "only stream ARNs",
            ),
            ("arn:aws:kinesis:us-east-1::stream/logs", "12 digits"),
            ("arn:aws:kinesis::123456789012:stream/logs", "not in partition"),
            (
                "arn:aws:kinesis:us-gov-west-1:123456789012:stream/logs",
                "not in partition",
            ),
            (
                "arn:aws:kinesis:us-east-1:123456789012:stream/a b",
                "not a stream name",
            ),
            (
                "arn:aws:kinesis:us-east-1:123456789012:stream/${tag}",
                "not a stream name",
            ),
        ] {
            let e = StreamArn::parse(bad).unwrap_err();
            assert!(e.contains(rule), "{bad}: {e}");
        }
    }
}
