//! Every code an outcome can carry, spelled one way in every report, reply and log, and what
//! each means for a retry. This is the one place that classifies errors: the delivery loop asks
//! a [`Verdict`], it never compares code strings itself.

use std::fmt;

use serde::Deserialize;

/// Why a record was never sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectionKind {
    NotJson,
    NotAnObject,
    NoPartitionKey,
    TooLarge,
    /// The `data_key` field is missing or null.
    NoDataKey,
    /// A `stream_name` placeholder could not be filled, or filled to an invalid name.
    NoStreamName,
}

impl RejectionKind {
    /// Every kind, in the WIT enum's order.
    pub const ALL: [RejectionKind; 6] = [
        RejectionKind::NotJson,
        RejectionKind::NotAnObject,
        RejectionKind::NoPartitionKey,
        RejectionKind::TooLarge,
        RejectionKind::NoDataKey,
        RejectionKind::NoStreamName,
    ];

    /// The code reports print for this rejection.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectionKind::NotJson => "NotJson",
            RejectionKind::NotAnObject => "NotAnObject",
            RejectionKind::NoPartitionKey => "NoPartitionKey",
            RejectionKind::TooLarge => "TooLarge",
            RejectionKind::NoDataKey => "NoDataKey",
            RejectionKind::NoStreamName => "NoStreamName",
        }
    }
}

/// Why a record was not delivered: a rejection (never sent) or a failure (sent, not stored).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Code {
    /// Never sent.
    Rejected(RejectionKind),
    /// The service's own error code, for the record or its whole request
    /// (`ProvisionedThroughputExceededException`, `AccessDeniedException`, …; `HTTP503` when an
    /// error answer named none).
    Service(String),
    /// No complete response: a refused connection, a timeout, a broken body. The message names
    /// wasi:http's code.
    Network,
    /// The host's egress policy refused the address (wasi:http's `HttpRequestDenied`).
    EgressDenied,
    /// A 200 answer that could not be read. Its records may have been stored; they are sent
    /// again, the one way a second copy can arise.
    MalformedResponse,
    /// The request could not be signed.
    SigningError,
    /// No credentials could be had.
    CredentialsUnavailable,
    /// The component trapped and its host could not finish the records (reported by hosts).
    ComponentTrap,
}

impl Code {
    /// Our own failure codes (the rest are rejections or the service's).
    pub const OURS: [Code; 6] = [
        Code::Network,
        Code::EgressDenied,
        Code::MalformedResponse,
        Code::SigningError,
        Code::CredentialsUnavailable,
        Code::ComponentTrap,
    ];

    /// The code as every report, reply and log spells it.
    pub fn as_str(&self) -> &str {
        match self {
            Code::Rejected(kind) => kind.as_str(),
            Code::Service(code) => code,
            Code::Network => "NetworkError",
            Code::EgressDenied => "HttpRequestDenied",
            Code::MalformedResponse => "MalformedResponse",
            Code::SigningError => "SigningError",
            Code::CredentialsUnavailable => "CredentialsUnavailable",
            Code::ComponentTrap => "ComponentTrap",
        }
    }

    /// The code a report spelled (a host reading the component's `failed.code`): the inverse of
    /// [`Code::as_str`]; anything not ours is the service's.
    pub fn parse(text: &str) -> Code {
        if let Some(kind) = RejectionKind::ALL.into_iter().find(|k| k.as_str() == text) {
            return Code::Rejected(kind);
        }
        Code::OURS
            .into_iter()
            .find(|c| c.as_str() == text)
            .unwrap_or_else(|| Code::Service(text.to_string()))
    }

    /// What a per-record error code of a PutRecords answer means.
    pub fn record_verdict(&self) -> Verdict {
        match self {
            Code::Service(code) if is_throttling(code) => Verdict::Throttled,
            Code::Service(code) if matches!(code.as_str(), "InternalFailure" | "ServiceUnavailable") => {
                Verdict::Retry
            }
            Code::Service(_) => Verdict::Final,
            Code::Network | Code::MalformedResponse | Code::CredentialsUnavailable => Verdict::Retry,
            Code::Rejected(_) | Code::EgressDenied | Code::SigningError | Code::ComponentTrap => {
                Verdict::Final
            }
        }
    }
}

impl Code {
    /// Whether a record that failed with this code can never be stored by sending it again,
    /// whatever the operator or the service does: the record itself is at fault (rejected,
    /// refused by the service's validation, unsignable). Every other failure (throttling, 5xx,
    /// the network, credentials, a refusal the operator can fix such as `AccessDeniedException`
    /// or a missing stream) may still be stored, so a door keeps it and asks its sender to retry
    /// (see [`crate::front::ledger`]).
    pub fn is_final(&self) -> bool {
        match self {
            Code::Rejected(_) | Code::SigningError => true,
            Code::Service(code) => is_about_the_record(code),
            Code::Network
            | Code::EgressDenied
            | Code::MalformedResponse
            | Code::CredentialsUnavailable
            | Code::ComponentTrap => false,
        }
    }
}

/// Service codes that say the records themselves are not acceptable: the same bytes will be
/// refused again.
fn is_about_the_record(code: &str) -> bool {
    matches!(
        code,
        "ValidationException"
            | "InvalidArgumentException"
            | "SerializationException"
            | "HTTP413"
            | "RequestEntityTooLargeException"
    )
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No retry can help: the records fail now.
    Final,
    /// Send again after the backoff.
    Retry,
    /// The service says we send too fast: send again after the backoff, and count it.
    Throttled,
    /// The credentials expired: refresh them, then send again.
    RefreshCredentials,
}

impl Verdict {
    pub fn is_retryable(self) -> bool {
        self != Verdict::Final
    }
}

/// Service codes that mean the caller is sending too fast.
fn is_throttling(code: &str) -> bool {
    matches!(
        code,
        "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "LimitExceededException"
            | "KMSThrottlingException"
            | "SlowDown"
            | "Throttling"
            | "TooManyRequests"
            // Firehose's throttling, per record and for a whole call.
            | "ServiceUnavailableException"
    )
}

/// How a whole request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    pub code: Code,
    pub message: String,
    pub verdict: Verdict,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "__type")]
    kind: Option<String>,
    message: Option<String>,
    #[serde(rename = "Message")]
    message_upper: Option<String>,
}

/// Classify a non-200 response from its status and AWS JSON error body.
pub fn classify_error_response(status: u16, body: &[u8]) -> RequestError {
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let (code, message) = match parsed {
        Some(b) => (
            b.kind
                .map(|k| k.rsplit('#').next().unwrap_or_default().to_string()),
            b.message.or(b.message_upper),
        ),
        None => (None, None),
    };
    let code = code
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| format!("HTTP{status}"));
    let message = message.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        let text: String = text.chars().take(200).collect();
        if text.trim().is_empty() {
            format!("HTTP status {status}")
        } else {
            format!("HTTP status {status}: {}", text.trim())
        }
    });
    let verdict = if status == 429 || is_throttling(&code) {
        Verdict::Throttled
    } else if matches!(code.as_str(), "ExpiredTokenException" | "ExpiredToken") {
        Verdict::RefreshCredentials
    } else if status >= 500
        || matches!(
            code.as_str(),
            "RequestExpired"
                | "InternalFailure"
                | "ServiceUnavailable"
                | "RequestTimeout"
                | "RequestTimeoutException"
        )
    {
        Verdict::Retry
    } else {
        Verdict::Final
    };
    RequestError {
        code: Code::Service(code),
        message,
        verdict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_reads_back_as_itself() {
        let mut codes: Vec<Code> = RejectionKind::ALL.into_iter().map(Code::Rejected).collect();
        codes.extend(Code::OURS);
        codes.push(Code::Service("AccessDeniedException".into()));
        for code in codes {
            assert_eq!(Code::parse(code.as_str()), code, "{code}");
        }
        assert_eq!(Code::Rejected(RejectionKind::TooLarge).to_string(), "TooLarge");
    }

    #[test]
    fn whole_request_errors_are_classified() {
        let service = |s: &str| Code::Service(s.to_string());
        let e = classify_error_response(
            400,
            br#"{"__type":"ResourceNotFoundException","message":"Stream s under account 1 not found."}"#,
        );
        assert_eq!(e.code, service("ResourceNotFoundException"));
        assert_eq!(e.verdict, Verdict::Final);
        assert!(e.message.contains("not found"));
        let e = classify_error_response(
            400,
            br#"{"__type":"com.amazonaws.kinesis.v20131202#AccessDeniedException","Message":"no"}"#,
        );
        assert_eq!(e.code, service("AccessDeniedException"));
        assert_eq!(e.message, "no");
        assert_eq!(e.verdict, Verdict::Final);
        for code in [
            "ValidationException",
            "InvalidArgumentException",
            "KMSAccessDeniedException",
            "InvalidSignatureException",
        ] {
            let body = format!(r#"{{"__type":"{code}","message":"m"}}"#);
            assert_eq!(
                classify_error_response(400, body.as_bytes()).verdict,
                Verdict::Final,
                "{code}"
            );
        }
        let e = classify_error_response(
            400,
            br#"{"__type":"LimitExceededException","message":"Rate exceeded"}"#,
        );
        assert_eq!(e.verdict, Verdict::Throttled);
        let e = classify_error_response(403, br#"{"__type":"ExpiredTokenException","message":"expired"}"#);
        assert_eq!(e.verdict, Verdict::RefreshCredentials);
        let e = classify_error_response(400, br#"{"__type":"RequestExpired","message":"old"}"#);
        assert_eq!(e.verdict, Verdict::Retry);
        let e = classify_error_response(503, b"<html>Service Unavailable</html>");
        assert_eq!(e.code, service("HTTP503"));
        assert_eq!(e.verdict, Verdict::Retry);
        assert!(e.message.contains("Service Unavailable"));
        let e = classify_error_response(500, b"");
        assert_eq!(e.message, "HTTP status 500");
        assert_eq!(classify_error_response(429, b"").verdict, Verdict::Throttled);
    }

    #[test]
    fn final_codes_are_the_ones_about_the_record() {
        let service = |s: &str| Code::Service(s.to_string());
        for code in [
            Code::Rejected(RejectionKind::TooLarge),
            Code::SigningError,
            service("ValidationException"),
            service("InvalidArgumentException"),
            service("HTTP413"),
        ] {
            assert!(code.is_final(), "{code}");
        }
        for code in [
            service("ProvisionedThroughputExceededException"),
            service("AccessDeniedException"),
            service("ResourceNotFoundException"),
            service("KMSDisabledException"),
            service("HTTP503"),
            Code::Network,
            Code::EgressDenied,
            Code::CredentialsUnavailable,
            Code::MalformedResponse,
            Code::ComponentTrap,
        ] {
            assert!(!code.is_final(), "{code}");
        }
    }

    #[test]
    fn record_error_codes() {
        let verdict = |s: &str| Code::Service(s.to_string()).record_verdict();
        assert_eq!(
            verdict("ProvisionedThroughputExceededException"),
            Verdict::Throttled
        );
        assert_eq!(verdict("KMSThrottlingException"), Verdict::Throttled);
        assert_eq!(verdict("ServiceUnavailableException"), Verdict::Throttled);
        assert_eq!(verdict("InternalFailure"), Verdict::Retry);
        assert_eq!(verdict("KMSAccessDeniedException"), Verdict::Final);
        assert_eq!(verdict("KMSNotFoundException"), Verdict::Final);
    }
}
