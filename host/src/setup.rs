//! What a host derives from a configuration before it runs the component: the file read (JSON
//! or YAML, a logging-operator `Output` unwrapped), the settings read once natively, the
//! environment the component sees, the folders it may read, and the egress policy.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context as _, Result};
use serde_json::Value;

use crate::sink::{InstanceOptions, Upstream};
use kinesis_output::config::env as envconfig;
use kinesis_output::config::SECRET_SETTINGS;
use kinesis_output::delivery::egress;
use kinesis_output::{Config, Environment, Settings};

/// What the component may reach and use: the same for every command that runs it.
#[derive(Debug, Clone, Default)]
pub struct Sandbox {
    /// Extra folders the component may read (`--allow-dir`).
    pub allow_dirs: Vec<PathBuf>,
    /// Extra authorities the component may reach (`--allow-authority`), beyond the ones its
    /// configuration needs.
    pub allow_authorities: Vec<String>,
    /// The most linear memory the component may use (`--max-memory`, MiB).
    pub max_memory_mib: Option<usize>,
    /// Where Kubernetes secrets are mounted (`--secrets-dir`): the configuration's `secrets_dir`
    /// (over the file's), granted read-only.
    pub secrets_dir: Option<PathBuf>,
    /// More CAs to trust for the component's https requests (`--ca-file`), beside the public
    /// ones and `SSL_CERT_FILE`'s.
    pub ca_file: Option<PathBuf>,
}

impl Sandbox {
    /// Options for instances on the network with `env`: the folders `config` needs and the
    /// `--allow-dir` ones granted read-only at their own paths, `egress` as the only
    /// authorities (the `--allow-authority` ones added), and the memory limit.
    pub fn options(
        &self,
        env: Vec<(String, String)>,
        config: &Value,
        egress: Vec<String>,
    ) -> InstanceOptions {
        let mut options = InstanceOptions::new(Upstream::Network);
        let mut allowed = egress;
        for a in &self.allow_authorities {
            if !allowed.contains(a) {
                allowed.push(a.clone());
            }
        }
        options.egress = Some(allowed);
        options.max_memory = self.max_memory_mib.map(|m| m * 1024 * 1024);
        for dir in granted_dirs(config, &env, &self.allow_dirs) {
            let guest = dir.to_string_lossy().into_owned();
            options = options.dir(dir, &guest);
        }
        options.env = env;
        options
    }

    /// The host's network settings from `--ca-file` and this process's environment
    /// (`SSL_CERT_FILE`, `HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`), set into `options`. Without
    /// any, the component's requests trust the public CAs and go out directly.
    pub fn network(&self, options: &mut InstanceOptions) -> Result<()> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let mut ca_files: Vec<PathBuf> = self.ca_file.iter().cloned().collect();
        ca_files.extend(var("SSL_CERT_FILE").map(PathBuf::from));
        if !ca_files.is_empty() {
            options.tls = Some(crate::transport::tls_config_files(&ca_files)?);
        }
        options.proxies = crate::network::Proxies::from_process_env()?;
        Ok(())
    }

    /// `--secrets-dir` written into a configuration document, over its own `secrets_dir`.
    pub fn configure(&self, config: &mut Value) {
        if let (Some(dir), Value::Object(map)) = (&self.secrets_dir, config) {
            map.insert(
                "secrets_dir".to_string(),
                Value::String(dir.to_string_lossy().into_owned()),
            );
        }
    }
}

/// Read a config file (JSON, or YAML by extension or content). A logging-operator output spec
/// (`spec: kinesisStream: …` or `spec: kinesisFirehose: …`) is unwrapped to that section.
pub fn read_config(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let is_yaml = matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
    let mut value: Value = if is_yaml {
        serde_yaml::from_str(&text).map_err(|e| anyhow!("{}: not valid YAML: {e}", path.display()))?
    } else {
        match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(json_err) => serde_yaml::from_str(&text)
                .map_err(|_| anyhow!("{}: not valid JSON: {json_err}", path.display()))?,
        }
    };
    if let Some(inner) = value.get("spec").filter(|v| v.is_object()) {
        value = inner.clone();
    }
    match (value.get("kinesisStream"), value.get("kinesisFirehose")) {
        (Some(_), Some(_)) => anyhow::bail!(
            "{}: the spec names both kinesisStream and kinesisFirehose; an Output has one",
            path.display()
        ),
        (Some(inner), None) | (None, Some(inner)) if inner.is_object() => value = inner.clone(),
        _ => {}
    }
    if !value.is_object() {
        anyhow::bail!("{}: the configuration must be an object", path.display());
    }
    Ok(value)
}

/// The environment handed to the component: every `AWS_*` variable (region, credentials, web
/// identity, container credentials, profiles) and `HOME` (for `~/.aws`).
pub fn component_env() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("AWS_") || k == "HOME")
        .collect()
}

/// The proxy world's environment: [`component_env`], every `KINESIS_OUTPUT_*` variable, and
/// the configuration file's content (if any) as `KINESIS_OUTPUT_CONFIG`.
pub fn proxy_env(config: Option<&Value>) -> Vec<(String, String)> {
    let mut env = component_env();
    env.extend(std::env::vars().filter(|(k, _)| k.starts_with(envconfig::PREFIX)));
    if let Some(config) = config {
        env.retain(|(k, _)| k != envconfig::CONFIG_VAR);
        env.push((envconfig::CONFIG_VAR.to_string(), config.to_string()));
    }
    env
}

/// The component's environment seen natively: its variables, and files at the same paths (the
/// component is granted their folders at those paths).
pub struct NativeEnv<'a>(pub &'a [(String, String)]);

impl Environment for NativeEnv<'_> {
    fn var(&mut self, name: &str) -> Option<String> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }
    fn read_file(&mut self, path: &str) -> Result<Vec<u8>, String> {
        std::fs::read(path).map_err(|e| format!("{path}: {e}"))
    }
}

/// Read `config_json` natively, in the environment the component will see, exactly as the
/// component reads it.
pub fn settings(
    config_json: &str,
    env: &[(String, String)],
) -> Result<Settings, kinesis_output::ConfigError> {
    Settings::from_json(config_json, &mut NativeEnv(env))
}

/// Files the component may need to read: token files, shared AWS files, `{"file": …}` secrets.
/// Their folders are granted read-only, at the same paths, with `secrets_dir` and the folders
/// given by `--allow-dir`.
pub fn granted_dirs(config: &Value, env: &[(String, String)], extra: &[PathBuf]) -> Vec<PathBuf> {
    let get = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| PathBuf::from(v));
    let mut files: Vec<PathBuf> = [
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_CONFIG_FILE",
    ]
    .iter()
    .filter_map(|k| get(k))
    .collect();
    if let Some(home) = get("HOME") {
        files.push(home.join(".aws").join("credentials"));
    }
    for key in SECRET_SETTINGS {
        if let Some(path) = config
            .get(key)
            .and_then(|v| v.get("file"))
            .and_then(Value::as_str)
        {
            files.push(PathBuf::from(path));
        }
    }
    let mut dirs: Vec<PathBuf> = files
        .iter()
        .filter_map(|f| f.parent().map(Path::to_path_buf))
        .chain(
            config
                .get("secrets_dir")
                .and_then(Value::as_str)
                .map(PathBuf::from),
        )
        .chain(extra.iter().cloned())
        .filter(|d| d.is_absolute() && d.is_dir())
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// The egress policy: the Kinesis endpoint and the credential endpoints `config` needs
/// (resolved natively the way the component resolves them, from the same environment and
/// files). Without a configuration (it did not parse), nothing: the component reports the
/// configuration error before it sends anything.
pub fn egress_policy(config: Option<&Config>, env: &[(String, String)]) -> Vec<String> {
    config
        .and_then(|config| egress::authorities(config, &mut NativeEnv(env)).ok())
        .unwrap_or_default()
}

/// The configuration document the proxy world reads from `env` (`KINESIS_OUTPUT_CONFIG` with
/// the per-setting variables over it); `None` when there is none or it does not parse.
pub fn proxy_document(env: &[(String, String)]) -> Option<String> {
    envconfig::from_env(&mut NativeEnv(env)).ok().flatten()
}

/// The proxy world's settings of `document`, read in `env` as the component reads them; `None`
/// when they do not parse.
pub fn proxy_settings(document: &str, env: &[(String, String)]) -> Option<Settings> {
    proxy_settings_checked(document, env).ok()
}

/// [`proxy_settings`] with the configuration's error.
pub fn proxy_settings_checked(
    document: &str,
    env: &[(String, String)],
) -> Result<Settings, kinesis_output::ConfigError> {
    Settings::for_proxy(document, &mut NativeEnv(env))
}

/// The startup line naming the endpoint and why it was chosen (its settings, the region's
/// source, FIPS and dual-stack and where they came from).
pub fn endpoint_line(sink: &kinesis_output::Config) -> String {
    format!("endpoint {} ({})", sink.endpoint, sink.endpoint_reason)
}

/// `--max-memory`'s value: MiB from 1 to 4096.
pub fn parse_max_memory(text: &str) -> Result<usize, String> {
    text.parse::<usize>()
        .ok()
        .filter(|m| (1..=4096).contains(m))
        .ok_or_else(|| format!("{text:?} must be a number of MiB from 1 to 4096"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(config: &Value, env: &[(String, String)], extra: &[String]) -> Vec<String> {
        let settings = settings(&config.to_string(), env).ok();
        let sandbox = Sandbox {
            allow_authorities: extra.to_vec(),
            ..Sandbox::default()
        };
        let egress = egress_policy(settings.as_ref().map(|s| &s.sink), env);
        sandbox.options(env.to_vec(), config, egress).egress.unwrap()
    }

    #[test]
    fn kinesis_ship_allows_what_its_configuration_needs_and_nothing_else() {
        let cfg = json!({"stream_name": "logs", "region": "eu-west-1", "endpoint": "http://127.0.0.1:4567"});
        let env = vec![(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI".to_string(),
            "http://169.254.170.23/v1/credentials".to_string(),
        )];
        assert_eq!(policy(&cfg, &env, &[]), ["127.0.0.1:4567", "169.254.170.23:80"]);
        let with_keys =
            json!({"stream_name": "logs", "region": "eu-west-1", "aws_key_id": "AKID", "aws_sec_key": "x"});
        assert_eq!(
            policy(&with_keys, &env, &["proxy.internal:3128".to_string()]),
            ["kinesis.eu-west-1.amazonaws.com:443", "proxy.internal:3128"]
        );
        assert_eq!(
            policy(&json!({"region": 5}), &env, &[]),
            Vec::<String>::new(),
            "a broken configuration reaches nothing"
        );
    }

    #[test]
    fn logging_operator_specs_are_unwrapped() {
        let dir = std::env::temp_dir().join(format!("kinesis-ship-setup-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let yaml = dir.join("output.yaml");
        std::fs::write(
            &yaml,
            "spec:\n  kinesisStream:\n    stream_name: example-stream-name\n    region: us-east-1\n    format:\n      type: json\n",
        )
        .unwrap();
        let v = read_config(&yaml).unwrap();
        assert_eq!(
            v,
            json!({"stream_name": "example-stream-name", "region": "us-east-1", "format": {"type": "json"}})
        );
        // The operator's Firehose output, as its reference shows it.
        std::fs::write(
            &yaml,
            "spec:\n  kinesisFirehose:\n    delivery_stream_name: example-stream-name\n    region: us-east-1\n    format:\n      type: json\n",
        )
        .unwrap();
        assert_eq!(
            read_config(&yaml).unwrap(),
            json!({"delivery_stream_name": "example-stream-name", "region": "us-east-1", "format": {"type": "json"}})
        );
        std::fs::write(
            &yaml,
            "spec:\n  kinesisStream: {stream_name: a}\n  kinesisFirehose: {delivery_stream_name: b}\n",
        )
        .unwrap();
        assert!(read_config(&yaml)
            .unwrap_err()
            .to_string()
            .contains("both kinesisStream and kinesisFirehose"));
        let bad = dir.join("bad.json");
        std::fs::write(&bad, "{ nope").unwrap();
        assert!(read_config(&bad)
            .unwrap_err()
            .to_string()
            .contains("not valid JSON"));
        let missing = read_config(&dir.join("missing.json")).unwrap_err();
        assert!(
            format!("{missing:#}").contains("No such file or directory"),
            "the whole cause: {missing:#}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
