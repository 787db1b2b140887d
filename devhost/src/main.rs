//! `devhost up --listen 127.0.0.1:3000 [--from spin.toml] [--runtime-config-file F]
//! [--variable NAME=VALUE]… [--fault KIND@N[:COMPONENT]]…`: serves a Spin app
//! like `spin up`.
//!
//! `--fault` (the dev host's own) makes every request, or every request a
//! component handles, fail at one step, to watch by hand what a client sees
//! and what the store keeps: `store-error@N` (the N-th key-value operation
//! fails without effect), `crash@N` (the instance dies right after it),
//! `http-error@N` (the N-th outbound HTTP request is refused unsent),
//! `http-timeout@N` (it is sent and answered, and the guest gets a read
//! timeout). Unlike the one-shot faults tests arm (`App::inject`), these
//! apply to every matching request; each that fires is reported on stderr.

use anyhow::{anyhow, bail, Context, Result};
use devhost::{App, Options};

const USAGE: &str = "usage: devhost up [--listen ADDR] [--from|-f spin.toml] [--runtime-config-file FILE] [--variable NAME=VALUE]... [--fault SPEC]...
  --fault KIND@N[:COMPONENT]  make EVERY request (to COMPONENT) fail at step N:
      store-error@N   the N-th key-value operation fails, without effect
      crash@N         the instance dies right after the N-th key-value operation
      http-error@N    the N-th outbound HTTP request is refused, unsent
      http-timeout@N  the N-th outbound HTTP request is sent and answered; the guest gets a timeout";

fn parse(args: &[String]) -> Result<(String, Options)> {
    let mut args = args.iter();
    match args.next().map(String::as_str) {
        Some("up") => {}
        _ => bail!("{USAGE}"),
    }
    let mut listen =
        std::env::var("SPIN_HTTP_LISTEN_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let mut options = Options::new("spin.toml");
    options.runtime_config = std::env::var_os("RUNTIME_CONFIG_FILE").map(Into::into);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .cloned()
                .with_context(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--listen" => listen = value()?,
            "--from" | "-f" => options.manifest = value()?.into(),
            "--runtime-config-file" => options.runtime_config = Some(value()?.into()),
            "--variable" => {
                let pair = value()?;
                let Some((name, val)) = pair.split_once('=') else {
                    bail!("--variable takes NAME=VALUE, got {pair:?}");
                };
                options.variables.insert(name.to_owned(), val.to_owned());
            }
            "--fault" => options
                .faults
                .push(value()?.parse().map_err(|e| anyhow!("{e:#}\n{USAGE}"))?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    if options.manifest.is_dir() {
        options.manifest = options.manifest.join("spin.toml");
    }
    Ok((listen, options))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(error) = run(&args).await {
        eprintln!("devhost: error: {error:#}");
        std::process::exit(1);
    }
}

async fn run(args: &[String]) -> Result<()> {
    let (listen, options) = parse(args)?;
    let faults = options.faults.clone();
    let app = App::load(options).await?;
    for fault in faults {
        eprintln!("devhost: fault {fault} armed for every matching request");
    }
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    eprintln!("devhost: serving http://{}", listener.local_addr()?);
    app.serve(listener).await
}
