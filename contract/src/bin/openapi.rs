//! Prints the API's OpenAPI document; `scripts/openapi.sh` writes it to
//! `docs/openapi.json`, where the console serves it from.

fn main() {
    print!("{}", switchboard_contract::json());
}
