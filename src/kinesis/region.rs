//! Regions and the endpoints they imply: one table of AWS partitions, used for Kinesis, Firehose
//! and STS alike, and AWS's endpoint rules for FIPS and dual-stack endpoints (checked against
//! the rules' own test cases, `tests/fixtures/endpoint-rules.json`).

use super::Service;

/// A partition: its name (as ARNs spell it), its DNS suffix and its dual-stack DNS suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Partition {
    name: &'static str,
    dns_suffix: &'static str,
    dual_stack_suffix: &'static str,
}

/// Each partition that is not the commercial one, by region prefix (AWS's partitions data).
const PARTITIONS: &[(&str, Partition)] = &[
    (
        "cn-",
        Partition {
            name: "aws-cn",
            dns_suffix: "amazonaws.com.cn",
            dual_stack_suffix: "api.amazonwebservices.com.cn",
        },
    ),
    (
        "us-gov-",
        Partition {
            name: "aws-us-gov",
            dns_suffix: "amazonaws.com",
            dual_stack_suffix: "api.aws",
        },
    ),
    (
        "us-isob-",
        Partition {
            name: "aws-iso-b",
            dns_suffix: "sc2s.sgov.gov",
            dual_stack_suffix: "api.aws.scloud",
        },
    ),
    (
        "us-isof-",
        Partition {
            name: "aws-iso-f",
            dns_suffix: "csp.hci.ic.gov",
            dual_stack_suffix: "api.aws.hci.ic.gov",
        },
    ),
    (
        "us-iso-",
        Partition {
            name: "aws-iso",
            dns_suffix: "c2s.ic.gov",
            dual_stack_suffix: "api.aws.ic.gov",
        },
    ),
    (
        "eu-isoe-",
        Partition {
            name: "aws-iso-e",
            dns_suffix: "cloud.adc-e.uk",
            dual_stack_suffix: "api.cloud-aws.adc-e.uk",
        },
    ),
    (
        "eusc-",
        Partition {
            name: "aws-eusc",
            dns_suffix: "amazonaws.eu",
            dual_stack_suffix: "api.amazonwebservices.eu",
        },
    ),
];
/// The commercial partition.
const DEFAULT_PARTITION: Partition = Partition {
    name: "aws",
    dns_suffix: "amazonaws.com",
    dual_stack_suffix: "api.aws",
};

fn partition_of(region: &str) -> Partition {
    PARTITIONS
        .iter()
        .find(|(prefix, _)| region.starts_with(prefix))
        .map_or(DEFAULT_PARTITION, |(_, p)| *p)
}

/// The DNS suffix of the partition `region` belongs to.
pub fn dns_suffix(region: &str) -> &'static str {
    partition_of(region).dns_suffix
}

/// The name of the partition `region` belongs to (`aws`, `aws-cn`, `aws-us-gov`, …).
pub fn partition(region: &str) -> &'static str {
    partition_of(region).name
}

/// Which variant of a service's endpoint: FIPS (`use_fips_endpoint`) and dual-stack
/// (`use_dualstack_endpoint`, IPv4 and IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Variant {
    pub fips: bool,
    pub dual_stack: bool,
}

/// The endpoint AWS's endpoint rules give `service` in `region` with `variant`: a custom
/// `endpoint` as it is (FIPS and dual-stack cannot apply to it: an error); for Kinesis with a
/// stream ARN's `account`, the account's data endpoint where the partition has one.
pub fn resolve(
    service: Service,
    region: &str,
    variant: Variant,
    endpoint: Option<&str>,
    account: Option<&str>,
) -> Result<String, String> {
    if let Some(url) = endpoint {
        if variant.fips {
            return Err("Invalid Configuration: FIPS and custom endpoint are not supported".into());
        }
        if variant.dual_stack {
            return Err("Invalid Configuration: Dualstack and custom endpoint are not supported".into());
        }
        return Ok(url.to_string());
    }
    let p = partition_of(region);
    let suffix = if variant.dual_stack {
        p.dual_stack_suffix
    } else {
        p.dns_suffix
    };
    let fips = if variant.fips { "-fips" } else { "" };
    let svc = service.signing_name();
    if let (Service::Streams, Some(account)) = (service, account) {
        // The ADC partitions have no account endpoints: the ARN is not used there.
        if !matches!(p.name, "aws-iso" | "aws-iso-b") {
            return Ok(format!("https://{account}.data-kinesis{fips}.{region}.{suffix}"));
        }
    }
    // Kinesis in GovCloud is FIPS on its plain name (unless dual-stack too).
    let fips = if service == Service::Streams && p.name == "aws-us-gov" && !variant.dual_stack {
        ""
    } else {
        fips
    };
    Ok(format!("https://{svc}{fips}.{region}.{suffix}"))
}

/// The account-specific data-plane endpoint AWS's endpoint rules give PutRecords by stream ARN
/// (`https://<account>.data-kinesis.<region>.<suffix>`); the isolated partitions have none and
/// use the regional endpoint.
pub fn kinesis_account_endpoint(account: &str, region: &str) -> String {
    resolve(Service::Streams, region, Variant::default(), None, Some(account)).expect("no custom endpoint")
}

/// The public endpoint of Kinesis in `region`.
pub fn kinesis_endpoint(region: &str) -> String {
    resolve(Service::Streams, region, Variant::default(), None, None).expect("no custom endpoint")
}

/// The public endpoint of Firehose in `region`.
pub fn firehose_endpoint(region: &str) -> String {
    resolve(Service::Firehose, region, Variant::default(), None, None).expect("no custom endpoint")
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

    /// Every test case of AWS's endpoint rules for Kinesis and Firehose whose inputs this
    /// component has (a region, FIPS, dual-stack, a custom endpoint, a stream ARN for the data
    /// operations): the same URL, or the same error.
    #[test]
    fn aws_endpoint_rule_cases_resolve_as_the_rules_say() {
        let cases: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/fixtures/endpoint-rules.json")).unwrap();
        let mut checked = 0;
        for (service, name) in [(Service::Streams, "kinesis"), (Service::Firehose, "firehose")] {
            for case in cases[name].as_array().unwrap() {
                let region = case["region"].as_str().unwrap_or("us-east-1");
                let variant = Variant {
                    fips: case["fips"].as_bool().unwrap_or(false),
                    dual_stack: case["dualstack"].as_bool().unwrap_or(false),
                };
                let account = case["stream_arn"]
                    .as_str()
                    .map(|arn| arn.split(':').nth(4).unwrap().to_string());
                let got = resolve(
                    service,
                    region,
                    variant,
                    case["endpoint"].as_str(),
                    account.as_deref(),
                );
                let want = match (case["url"].as_str(), case["error"].as_str()) {
                    (Some(url), _) => Ok(url.to_string()),
                    (None, Some(e)) => Err(e.to_string()),
                    _ => unreachable!(),
                };
                assert_eq!(got, want, "{}", case["doc"]);
                checked += 1;
            }
        }
        assert_eq!(checked, 103);
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
