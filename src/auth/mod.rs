//! Credentials and signing: the credentials themselves ([`credentials`]), fetching and
//! refreshing them from their source ([`provider`]), and SigV4 with `aws-sigv4` ([`sign`]).
//! Where the credentials come from is the configuration's to say (`crate::config::credentials`).

pub mod credentials;
pub mod provider;
pub mod sign;

pub use credentials::{CredentialError, Credentials, Secret};
pub use provider::Provider;
pub use sign::Signer;
