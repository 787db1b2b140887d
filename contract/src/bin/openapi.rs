//! Prints the API's OpenAPI document, or with `--power-automate` the Power
//! Automate connector's Swagger 2.0 definition; `scripts/openapi.sh` writes
//! them to `docs/openapi.json` (which the console serves) and
//! `connectors/power-automate/apiDefinition.swagger.json`.

fn main() {
    match std::env::args().nth(1).as_deref() {
        None => print!("{}", switchboard_contract::json()),
        Some("--power-automate") => print!("{}", switchboard_contract::power_automate::json()),
        Some(other) => {
            eprintln!("unknown argument {other}; the only one is --power-automate");
            std::process::exit(2);
        }
    }
}
