//! Regions and the endpoints they imply: one table of AWS partitions, used for Kinesis and STS
//! alike.

/// Each partition that is not the commercial one, by region prefix: its name (as ARNs spell it)
/// and its DNS suffix.
const PARTITIONS: &[(&str, &str, &str)] = &[
    ("cn-", "aws-cn", "amazonaws.com.cn"),
    ("us-gov-", "aws-us-gov", "amazonaws.com"),
    ("us-isob-", "aws-iso-b", "sc2s.sgov.gov"),
    ("us-isof-", "aws-iso-f", "csp.hci.ic.gov"),
    ("us-iso-", "aws-iso", "c2s.ic.gov"),
    ("eu-isoe-", "aws-iso-e", "cloud.adc-e.uk"),
];
/// The commercial partition.
const DEFAULT_PARTITION: (&str, &str) = ("aws", "amazonaws.com");

fn partition_of(region: &str) -> (&'static str, &'static str) {
    PARTITIONS
        .iter()
        .find(|(prefix, _, _)| region.starts_with(prefix))
        .map_or(DEFAULT_PARTITION, |(_, name, suffix)| (name, suffix))
}

/// The DNS suffix of the partition `region` belongs to.
pub fn dns_suffix(region: &str) -> &'static str {
    partition_of(region).1
}

/// The name of the partition `region` belongs to (`aws`, `aws-cn`, `aws-us-gov`, …).
pub fn partition(region: &str) -> &'static str {
    partition_of(region).0
}

/// The account-specific data-plane endpoint AWS's endpoint rules give PutRecords by stream ARN
/// (`https://<account>.data-kinesis.<region>.<suffix>`); the isolated partitions have none and
/// use the regional endpoint.
pub fn kinesis_account_endpoint(account: &str, region: &str) -> String {
    match partition(region) {
        "aws" | "aws-cn" | "aws-us-gov" => {
            format!("https://{account}.data-kinesis.{region}.{}", dns_suffix(region))
        }
        _ => kinesis_endpoint(region),
    }
}

/// The public endpoint of Kinesis in `region`.
pub fn kinesis_endpoint(region: &str) -> String {
    format!("https://kinesis.{region}.{}", dns_suffix(region))
}

/// The public endpoint of Firehose in `region`.
pub fn firehose_endpoint(region: &str) -> String {
    format!("https://firehose.{region}.{}", dns_suffix(region))
}

/// The regional endpoint of STS in `region`.
pub fn sts_endpoint(region: &str) -> String {
    format!("https://sts.{region}.{}", dns_suffix(region))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_partition_gets_its_suffix_for_kinesis_and_sts_alike() {
        for (region, suffix) in [
            ("us-east-1", "amazonaws.com"),
            ("us-gov-west-1", "amazonaws.com"),
            ("cn-north-1", "amazonaws.com.cn"),
            ("us-iso-east-1", "c2s.ic.gov"),
            ("us-isob-east-1", "sc2s.sgov.gov"),
            ("us-isof-south-1", "csp.hci.ic.gov"),
            ("eu-isoe-west-1", "cloud.adc-e.uk"),
        ] {
            assert_eq!(
                kinesis_endpoint(region),
                format!("https://kinesis.{region}.{suffix}")
            );
            assert_eq!(sts_endpoint(region), format!("https://sts.{region}.{suffix}"));
        }
    }

    /// The account endpoints of AWS's own endpoint rules for Kinesis (its test cases: "Account
    /// endpoint targeting data operation type", and the same in cn and the ADC regions).
    #[test]
    fn stream_arns_get_the_account_endpoint_where_the_partition_has_one() {
        for (region, partition_name, endpoint) in [
            (
                "us-east-1",
                "aws",
                "https://123456789012.data-kinesis.us-east-1.amazonaws.com",
            ),
            (
                "cn-northwest-1",
                "aws-cn",
                "https://123456789012.data-kinesis.cn-northwest-1.amazonaws.com.cn",
            ),
            (
                "us-gov-west-1",
                "aws-us-gov",
                "https://123456789012.data-kinesis.us-gov-west-1.amazonaws.com",
            ),
            (
                "us-isob-east-1",
                "aws-iso-b",
                "https://kinesis.us-isob-east-1.sc2s.sgov.gov",
            ),
            (
                "us-iso-east-1",
                "aws-iso",
                "https://kinesis.us-iso-east-1.c2s.ic.gov",
            ),
        ] {
            assert_eq!(partition(region), partition_name);
            assert_eq!(kinesis_account_endpoint("123456789012", region), endpoint);
        }
    }
}
