//! The `kinesis-ship` command line, declared with clap: ship (the default), `serve` and `env`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::serve::{self, ServeOptions};
use crate::setup::{parse_max_memory, read_config, Sandbox};
use crate::ship::{self, ShipOptions, UsageError};

/// Exit status: everything delivered.
pub const EXIT_OK: i32 = 0;
/// Exit status: some records were not delivered.
pub const EXIT_NOT_DELIVERED: i32 = 1;
/// Exit status: bad configuration or usage (clap's own status for usage errors).
pub const EXIT_USAGE: i32 = 2;

/// Ships NDJSON log lines to Amazon Kinesis Data Streams through the kinesis-output component.
#[derive(Debug, Parser)]
#[command(
    name = "kinesis-ship",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "Exit status: 0 all delivered, 1 some not delivered, 2 configuration or usage error."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub ship: ShipArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Host the proxy world over HTTP: POST NDJSON or a JSON array to /, GET /health.
    Serve(Box<ServeArgs>),
    /// Print a configuration as the environment variables of the proxy and command worlds.
    Env(EnvArgs),
}

/// What the component may reach and use, for ship and serve alike.
#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// A folder the component may read (repeatable); the folders of AWS token files, shared AWS
    /// files and file secrets are granted by themselves.
    #[arg(long = "allow-dir", value_name = "DIR")]
    pub allow_dirs: Vec<PathBuf>,
    /// Another address the component may connect to (repeatable); by itself it reaches only the
    /// Kinesis endpoint and the credential endpoints its configuration needs.
    #[arg(long = "allow-authority", value_name = "HOST:PORT", value_parser = lowercase)]
    pub allow_authorities: Vec<String>,
    /// The most linear memory the component may use, in MiB (1 to 4096); past it the component
    /// traps: ship sends again in a new instance what the service had not stored, and reports
    /// a chunk that traps twice in a row with nothing stored as failed (ComponentTrap); serve
    /// answers that request 503 and remembers what was stored, so the re-post ships the rest.
    #[arg(long = "max-memory", value_name = "MIB", value_parser = parse_max_memory)]
    pub max_memory_mib: Option<usize>,
    /// Where Kubernetes secrets are mounted, one folder a secret and one file a key: the
    /// folder `valueFrom`/`mountFrom` secrets are read from (the configuration's `secrets_dir`,
    /// over the file's), granted read-only.
    #[arg(long = "secrets-dir", value_name = "DIR")]
    pub secrets_dir: Option<PathBuf>,
    /// More CAs to trust (PEM) for the component's https requests, beside the public ones and
    /// those of $SSL_CERT_FILE: private CAs, VPC endpoints behind an inspecting proxy.
    /// HTTPS_PROXY / HTTP_PROXY / NO_PROXY are honoured too.
    #[arg(long = "ca-file", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Log lines as text (`kinesis-ship: …`) or one JSON object a line.
    #[arg(long = "log-format", value_name = "FORMAT", value_enum, default_value_t)]
    pub log_format: crate::log::Format,
}

#[derive(Debug, Args)]
pub struct ShipArgs {
    /// JSON or YAML configuration (the component's settings plus `buffer`), a logging-operator
    /// Output included.
    #[arg(long, value_name = "FILE", required = true)]
    pub config: Option<PathBuf>,
    /// NDJSON input, one record a line; `-` or none: standard input.
    #[arg(long, value_name = "FILE|-")]
    pub input: Option<PathBuf>,
    /// Write a JSON report: delivered, failed, rejected, counters and every problem.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// The component (default: $KINESIS_OUTPUT_WASM, or kinesis_output.wasm beside this
    /// program).
    #[arg(long, value_name = "FILE")]
    pub component: Option<PathBuf>,
    /// The tag given to every event.
    #[arg(long, default_value = "kinesis-ship")]
    pub tag: String,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    /// No progress or summary on stderr.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where to listen (port 0 picks a free one; the address is printed).
    #[arg(long, value_name = "ADDR", value_parser = socket_addr)]
    pub listen: SocketAddr,
    /// JSON or YAML configuration, a logging-operator Output included; without it the component
    /// reads KINESIS_OUTPUT_CONFIG / KINESIS_OUTPUT_<SETTING> from the environment.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The proxy component (default: $KINESIS_OUTPUT_PROXY_WASM, or kinesis_output_proxy.wasm
    /// beside this program).
    #[arg(long, value_name = "FILE")]
    pub component: Option<PathBuf>,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    /// Requests read or shipped at once; past it a request waits (`buffer.overflow_action
    /// block`) or gets 503 with Retry-After.
    #[arg(long = "max-requests", value_name = "N", default_value_t = crate::room::DEFAULT_MAX_REQUESTS, value_parser = max_requests)]
    pub max_requests: usize,
    /// Connections open at once; past it new ones wait in the listen queue.
    #[arg(long = "max-connections", value_name = "N", default_value_t = crate::serve::DEFAULT_MAX_CONNECTIONS, value_parser = max_requests)]
    pub max_connections: usize,
    /// A folder where what was stored of bodies not finished is kept (a body with records not
    /// yet stored is answered 503; its re-post ships only the rest), so that a restart of serve
    /// re-sends nothing already stored.
    #[arg(long = "state-dir", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Seconds a client may take to send a request head; a keep-alive connection idle that
    /// long is closed.
    #[arg(long = "header-timeout", value_name = "SECONDS", default_value_t = crate::serve::HEADER_TIMEOUT.as_secs(), value_parser = header_timeout)]
    pub header_timeout: u64,
    /// A file holding the bearer token senders must present (`Authorization: Bearer …`; at
    /// least 16 characters).
    #[arg(long = "auth-token-file", value_name = "FILE")]
    pub auth_token_file: Option<PathBuf>,
    /// A file of `user:password` lines: HTTP basic credentials senders may present.
    #[arg(long = "basic-auth-file", value_name = "FILE")]
    pub basic_auth_file: Option<PathBuf>,
    /// The listener's certificate chain (PEM): serve https.
    #[arg(long = "tls-cert", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The listener's private key (PEM).
    #[arg(long = "tls-key", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Ask senders for a client certificate signed by a CA in this file (mutual TLS).
    #[arg(long = "tls-client-ca", value_name = "FILE", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Listen beyond loopback without any authentication (refused otherwise).
    #[arg(long = "insecure-no-auth")]
    pub insecure_no_auth: bool,
    /// A stream records may be routed to (repeatable; default: any the configuration can
    /// produce): a record routed elsewhere is rejected (NoStreamName).
    #[arg(long = "allow-stream", value_name = "NAME")]
    pub allow_streams: Vec<String>,
}

#[derive(Debug, Args)]
pub struct EnvArgs {
    /// JSON or YAML configuration, a logging-operator Output included.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// The whole configuration as one KINESIS_OUTPUT_CONFIG variable.
    #[arg(long)]
    pub single: bool,
    /// `export` lines for a POSIX shell instead of an env file.
    #[arg(long)]
    pub shell: bool,
}

fn lowercase(text: &str) -> Result<String, String> {
    Ok(text.to_ascii_lowercase())
}

fn max_requests(text: &str) -> Result<usize, String> {
    text.parse::<usize>()
        .ok()
        .filter(|n| (1..=10_000).contains(n))
        .ok_or_else(|| format!("{text:?} must be a number from 1 to 10000"))
}

fn header_timeout(text: &str) -> Result<u64, String> {
    text.parse::<u64>()
        .ok()
        .filter(|n| (1..=3600).contains(n))
        .ok_or_else(|| format!("{text:?} must be a number of seconds from 1 to 3600"))
}

fn socket_addr(text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not an address like 127.0.0.1:8080"))
}

impl SandboxArgs {
    fn sandbox(self) -> Sandbox {
        crate::log::set_format(self.log_format);
        Sandbox {
            allow_dirs: self.allow_dirs,
            allow_authorities: self.allow_authorities,
            max_memory_mib: self.max_memory_mib,
            secrets_dir: self.secrets_dir,
            ca_file: self.ca_file,
        }
    }
}

impl ShipArgs {
    fn options(self) -> ShipOptions {
        ShipOptions {
            config: self.config.expect("clap requires --config"),
            input: self.input.filter(|p| p.as_os_str() != "-"),
            report: self.report,
            component: self.component,
            tag: self.tag,
            quiet: self.quiet,
            sandbox: self.sandbox.sandbox(),
        }
    }
}

/// Run the command line `args` (without the program name's handling: clap reads it); the exit
/// status.
pub async fn main(args: impl IntoIterator<Item = std::ffi::OsString>) -> i32 {
    let args: Vec<std::ffi::OsString> = args.into_iter().collect();
    let cli = match parse_args(&args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
        }
    };
    match cli.command {
        Some(Command::Serve(args)) => serve_main(*args).await,
        Some(Command::Env(args)) => env_main(args),
        None => ship_main(cli.ship.options()).await,
    }
}

/// The command line read by clap. `--version` also names the components ship and serve run
/// (built in or which file, with their digests) and the wasmtime that runs them; they are read
/// only when it is asked for.
fn parse_args(args: &[std::ffi::OsString]) -> Result<Cli, clap::Error> {
    use clap::{CommandFactory as _, FromArgMatches as _};
    let mut command = Cli::command();
    if args.iter().skip(1).any(|a| a == "--version" || a == "-V") {
        command = command.long_version(long_version());
    }
    let matches = command.try_get_matches_from(args)?;
    Cli::from_arg_matches(&matches)
}

/// The version, what each world's component is, and wasmtime's version, one a line.
pub fn long_version() -> &'static str {
    let text = format!(
        "{}\nsink component (ship): {}\nproxy component (serve): {}\nwasmtime {}",
        env!("CARGO_PKG_VERSION"),
        crate::engine::sink_component().describe(),
        crate::engine::proxy_component().describe(),
        crate::engine::WASMTIME_VERSION
    );
    // Once per process, for clap, which keeps `'static` text.
    Box::leak(text.into_boxed_str())
}

/// An error's message with every cause, and the exit status it means.
fn failure(what: &str, e: anyhow::Error) -> i32 {
    if e.downcast_ref::<UsageError>().is_some() {
        crate::log::line(crate::log::Level::Error, what, &e.to_string());
        EXIT_USAGE
    } else {
        crate::log::line(crate::log::Level::Error, what, &format!("{e:#}"));
        EXIT_NOT_DELIVERED
    }
}

async fn serve_main(args: ServeArgs) -> i32 {
    let sandbox = args.sandbox.sandbox();
    let auth = match crate::listener_auth::ListenerAuth::load(
        args.auth_token_file.as_deref(),
        args.basic_auth_file.as_deref(),
    ) {
        Ok(auth) => auth,
        Err(e) => return failure("kinesis-ship serve", crate::ship::usage(e)),
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            match crate::listener_auth::server_tls(cert, key, args.tls_client_ca.as_deref()) {
                Ok(tls) => Some(tls),
                Err(e) => return failure("kinesis-ship serve", crate::ship::usage(e)),
            }
        }
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let opts = ServeOptions {
        listen: args.listen,
        config: args.config,
        component: args.component,
        sandbox,
        max_requests: args.max_requests,
        auth: std::sync::Arc::new(auth),
        tls,
        client_certificates: args.tls_client_ca.is_some(),
        insecure_no_auth: args.insecure_no_auth,
        allow_streams: args.allow_streams,
        state_dir: args.state_dir,
        max_connections: args.max_connections,
        header_timeout: std::time::Duration::from_secs(args.header_timeout),
    };
    let served = serve::serve(&opts, |addr| {
        // Tests and scripts read the port from this line.
        println!("listening on {scheme}://{addr}");
    })
    .await;
    match served {
        Ok(stopped) if stopped.abandoned == 0 => EXIT_OK,
        Ok(_) => EXIT_NOT_DELIVERED,
        Err(e) => failure("kinesis-ship serve", e),
    }
}

fn env_main(args: EnvArgs) -> i32 {
    let lines = read_config(&args.config).and_then(|c| {
        let text = crate::envfile::env_lines(&c, args.single, args.shell)?;
        Ok((text, crate::envfile::endpoint_note(&c)))
    });
    match lines {
        Ok((text, note)) => {
            print!("{text}");
            // Where the records will go, as this environment resolves it (on stderr: the
            // lines on stdout are the environment file).
            eprintln!("{note}");
            EXIT_OK
        }
        Err(e) => {
            eprintln!("kinesis-ship env: {e:#}");
            EXIT_USAGE
        }
    }
}

async fn ship_main(opts: ShipOptions) -> i32 {
    let shipped = match ship::run(&opts).await {
        Ok(s) => s,
        Err(e) => return failure("kinesis-ship", e),
    };
    if let Some(path) = &opts.report {
        let text = serde_json::to_string_pretty(&shipped.report()).expect("a report serialises");
        if let Err(e) = std::fs::write(path, text + "\n") {
            crate::log::error(&format!("writing the report {}: {e}", path.display()));
            return EXIT_NOT_DELIVERED;
        }
    }
    if shipped.complete() {
        EXIT_OK
    } else {
        EXIT_NOT_DELIVERED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("kinesis-ship").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_line() {
        let cli = parse(&["--config", "c.json", "--input", "-", "--report", "r.json"]).unwrap();
        let o = cli.ship.options();
        assert_eq!(o.input, None);
        assert_eq!(o.report, Some(PathBuf::from("r.json")));
        assert_eq!(o.tag, "kinesis-ship");
        assert!(parse(&["--input", "x"]).is_err(), "--config is required");
        assert!(parse(&["--config"]).is_err());
        assert!(parse(&["--what"]).is_err());
        let e = parse(&["--config", "c", "--max-memory", "0"]).unwrap_err();
        assert!(e.to_string().contains("from 1 to 4096"), "{e}");
        let cli = parse(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--allow-authority",
            "X.test:443",
        ])
        .unwrap();
        let Some(Command::Serve(s)) = cli.command else {
            panic!("serve")
        };
        assert_eq!(s.sandbox.allow_authorities, vec!["x.test:443"]);
        let e = parse(&["serve", "--listen", "here"]).unwrap_err();
        assert!(
            e.to_string().contains("not an address like 127.0.0.1:8080"),
            "{e}"
        );
        assert!(parse(&["env"]).is_err(), "env needs --config");
        assert_eq!(
            parse(&["--help"]).unwrap_err().kind(),
            clap::error::ErrorKind::DisplayHelp
        );
        assert_eq!(
            parse(&["--version"]).unwrap_err().kind(),
            clap::error::ErrorKind::DisplayVersion
        );
    }
}
