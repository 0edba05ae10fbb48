//! Regions and the endpoints they imply: one table of AWS partitions, used for Kinesis and STS
//! alike.

/// The DNS suffix of each partition that is not the commercial one, by region prefix.
const PARTITIONS: &[(&str, &str)] = &[
    ("cn-", "amazonaws.com.cn"),
    ("us-isob-", "sc2s.sgov.gov"),
    ("us-isof-", "csp.hci.ic.gov"),
    ("us-iso-", "c2s.ic.gov"),
    ("eu-isoe-", "cloud.adc-e.uk"),
];
/// The commercial partition's DNS suffix (and GovCloud's).
const DEFAULT_SUFFIX: &str = "amazonaws.com";

/// The DNS suffix of the partition `region` belongs to.
pub fn dns_suffix(region: &str) -> &'static str {
    PARTITIONS
        .iter()
        .find(|(prefix, _)| region.starts_with(prefix))
        .map_or(DEFAULT_SUFFIX, |(_, suffix)| suffix)
}

/// The public endpoint of Kinesis in `region`.
pub fn kinesis_endpoint(region: &str) -> String {
    format!("https://kinesis.{region}.{}", dns_suffix(region))
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
}
