//! Reading and validating settings, once per `open`: the JSON (or environment variables) with
//! the names of Fluentd's aws-fluent-plugin-kinesis, into typed settings for every stage. Every
//! error names the field and the rule it broke ([`ConfigError`]); none ever quotes a secret.

pub mod buffer;
pub mod chain;
pub mod credentials;
pub mod endpoint;
pub mod env;
pub mod error;
pub mod fields;
pub mod front;
pub mod secret;
pub mod settings;
pub mod stream_arn;

pub use buffer::BufferSettings;
pub use chain::resolve;
pub use credentials::CredentialConfig;
pub use error::ConfigError;
pub use front::FrontSettings;
pub use settings::{Config, Settings, SECRET_SETTINGS, SETTINGS};
