//! `kinesis-ship env`: a configuration file as the environment variables that configure the
//! proxy and command worlds.

use anyhow::{bail, Result};
use serde_json::Value;

use kinesis_output::config::env as envconfig;

/// The environment variables that configure the proxy and command worlds like `config` (the
/// component's settings; `buffer` is the hosts' and is left out). One variable per setting, or
/// with `single` the whole document as `KINESIS_OUTPUT_CONFIG`. `shell` quotes each line for
/// `export` in a POSIX shell; otherwise the lines suit an env file (`docker --env-file`,
/// `systemd`'s `EnvironmentFile`).
pub fn env_lines(config: &Value, single: bool, shell: bool) -> Result<String> {
    let mut map = match config {
        Value::Object(m) => m.clone(),
        _ => bail!("the configuration must be a mapping of settings"),
    };
    map.remove("buffer");
    let vars = if single {
        vec![(envconfig::CONFIG_VAR.to_string(), Value::Object(map).to_string())]
    } else {
        envconfig::to_variables(&map).map_err(|e| anyhow::anyhow!("{e}"))?
    };
    let mut out = String::new();
    for (name, value) in vars {
        if shell {
            out.push_str(&format!("export {name}='{}'\n", value.replace('\'', "'\\''")));
        } else {
            if value.contains('\n') {
                bail!("{name}: a value with a line break cannot go in an env file; use --shell");
            }
            out.push_str(&format!("{name}={value}\n"));
        }
    }
    Ok(out)
}

/// Which endpoint `config` resolves to here and why, or why that depends on where it runs: the
/// proxy world reads the region and the `AWS_USE_*_ENDPOINT` variables of its own environment.
pub fn endpoint_note(config: &Value) -> String {
    let env = crate::setup::proxy_env(Some(config));
    match crate::setup::proxy_settings_checked(&config.to_string(), &env) {
        Ok(s) => format!(
            "kinesis-ship env: {} in this environment",
            crate::setup::endpoint_line(&s.sink)
        ),
        Err(e) => format!("kinesis-ship env: the endpoint is decided where the component runs (here: {e})"),
    }
}
