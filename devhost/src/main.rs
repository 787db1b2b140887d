//! `devhost up --listen 127.0.0.1:3000 [--from spin.toml] [--runtime-config-file F]
//! [--variable NAME=VALUE]…`: serves a Spin app like `spin up`.

use anyhow::{bail, Context, Result};
use devhost::{App, Options};

const USAGE: &str = "usage: devhost up [--listen ADDR] [--from|-f spin.toml] [--runtime-config-file FILE] [--variable NAME=VALUE]...";

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
    let app = App::load(options).await?;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    eprintln!("devhost: serving http://{}", listener.local_addr()?);
    app.serve(listener).await
}
