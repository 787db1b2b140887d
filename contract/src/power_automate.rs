//! The Power Automate custom connector: the outbound operations a flow
//! calls, as Swagger 2.0 (the only format Power Automate imports), converted
//! from the OpenAPI 3.1 document so the two never disagree.
//!
//! Power Automate reads a subset of Swagger 2.0: schemas live under
//! `#/definitions/`, a value that may be `null` says so with `x-nullable`
//! (not a `type` array), and there is no `oneOf`/`anyOf`. The conversion
//! keeps only the connector's operations and the schemas they refer to,
//! and refuses (panics, under the test) a construct it cannot express.
//!
//! `connectors/power-automate/apiDefinition.swagger.json` is this document
//! as committed; `scripts/openapi.sh` rewrites it, and a test fails when it
//! is not what the code generates. The connection's key goes in
//! `apiProperties.json` (hand-written), whose policy sends it as
//! `Authorization: Bearer`.

use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

/// The connector's operations, `(path, method)`, in the order a flow
/// author meets them, and how prominent each is in the designer.
const OPERATIONS: &[(&str, &str, &str)] = &[
    (crate::outbound::SEND, "post", "important"),
    (crate::outbound::JOB, "get", "important"),
    // Described by the admin area; absent until it is, then kept here.
    ("/api/outbound-configs", "get", "advanced"),
];

/// Friendly names the flow designer shows for parameters.
const PARAMETER_NAMES: &[(&str, &str)] = &[
    ("configurationId", "Outbound configuration ID"),
    ("Idempotency-Key", "Idempotency key"),
    ("id", "Job ID"),
    ("cursor", "Next page cursor"),
    ("limit", "Page size"),
];

/// Where an importer puts their own host.
const HOST_PLACEHOLDER: &str = "switchboard.example.com";

/// The connector's `apiDefinition.swagger.json`.
pub fn swagger(openapi: &Value) -> Value {
    let mut paths = Map::new();
    let mut referenced = BTreeSet::new();
    for (path, method, visibility) in OPERATIONS {
        let Some(operation) = openapi["paths"][path].get(method) else {
            continue;
        };
        let converted = operation_of(openapi, operation, visibility, &mut referenced);
        let item = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        item[method] = converted;
    }
    let definitions = definitions(openapi, referenced);
    let info = &openapi["info"];
    json!({
        "swagger": "2.0",
        "info": {
            "title": "Switchboard outbound",
            "description": "Send a contact list from an outbound configuration's localized template, in batches of 100, and follow scheduled sends. Generated from Switchboard's OpenAPI document.",
            "version": info["version"],
        },
        "host": HOST_PLACEHOLDER,
        "basePath": "/",
        "schemes": ["https"],
        "consumes": ["application/json"],
        "produces": ["application/json"],
        "paths": paths,
        "definitions": definitions,
        "securityDefinitions": {
            crate::API_KEY: {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": "A `flow` key of your organisation (`sb_…`), without `Bearer`: the connector's policy adds it.",
            },
        },
        "security": [{crate::API_KEY: []}],
    })
}

/// The connector as the committed file holds it.
pub fn json() -> String {
    let openapi = serde_json::to_value(crate::openapi()).expect("the document is JSON");
    let mut text =
        serde_json::to_string_pretty(&swagger(&openapi)).expect("the connector serializes");
    text.push('\n');
    text
}

fn operation_of(
    openapi: &Value,
    operation: &Value,
    visibility: &str,
    referenced: &mut BTreeSet<String>,
) -> Value {
    let mut parameters: Vec<Value> = operation["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|parameter| parameter_of(parameter, referenced))
        .collect();
    if let Some(body) = operation["requestBody"]["content"]["application/json"].get("schema") {
        parameters.push(json!({
            "name": "body",
            "in": "body",
            "required": true,
            "schema": schema_of(body, referenced),
        }));
    }
    let mut responses = Map::new();
    for (status, response) in operation["responses"].as_object().into_iter().flatten() {
        let response = resolve(openapi, response);
        responses.insert(status.clone(), response_of(response, referenced));
    }
    let mut converted = json!({
        "operationId": operation["operationId"],
        "summary": operation["summary"],
        "tags": operation["tags"],
        "x-ms-visibility": visibility,
        "parameters": parameters,
        "responses": responses,
    });
    if let Some(description) = operation.get("description") {
        converted["description"] = description.clone();
    }
    converted
}

/// A shared response (`#/components/responses/…`) is written out in place.
fn resolve<'a>(openapi: &'a Value, response: &'a Value) -> &'a Value {
    match response["$ref"].as_str() {
        Some(reference) => {
            let name = reference.rsplit('/').next().unwrap_or_default();
            &openapi["components"]["responses"][name]
        }
        None => response,
    }
}

/// A path, query or header parameter: Swagger 2.0 puts the schema's type
/// on the parameter itself.
fn parameter_of(parameter: &Value, referenced: &mut BTreeSet<String>) -> Value {
    let name = parameter["name"].as_str().unwrap_or_default();
    let Value::Object(mut converted) = schema_of(&parameter["schema"], referenced) else {
        unreachable!("a schema converts to an object")
    };
    converted.remove("x-nullable");
    converted.insert("name".into(), name.into());
    converted.insert("in".into(), parameter["in"].clone());
    converted.insert(
        "required".into(),
        parameter["required"].as_bool().unwrap_or(false).into(),
    );
    if let Some(description) = parameter.get("description") {
        converted.insert("description".into(), description.clone());
    }
    if let Some((_, summary)) = PARAMETER_NAMES.iter().find(|(n, _)| *n == name) {
        converted.insert("x-ms-summary".into(), (*summary).into());
    }
    if parameter["in"] == "header" {
        converted.insert("x-ms-visibility".into(), "advanced".into());
    }
    Value::Object(converted)
}

fn response_of(response: &Value, referenced: &mut BTreeSet<String>) -> Value {
    let mut converted = json!({ "description": response["description"] });
    let schema = &response["content"]["application/json"]["schema"];
    // Swagger 2.0 has no union: a response that is one of two shapes keeps
    // its description only.
    if !schema.is_null() && schema.get("anyOf").is_none() {
        converted["schema"] = schema_of(schema, referenced);
    }
    let headers: Map<String, Value> = response["headers"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, header)| {
            let header = json!({"type": "string", "description": header["description"]});
            (name.clone(), header)
        })
        .collect();
    if !headers.is_empty() {
        converted["headers"] = Value::Object(headers);
    }
    converted
}

/// The schemas the operations refer to, and those they refer to in turn.
fn definitions(openapi: &Value, mut pending: BTreeSet<String>) -> Map<String, Value> {
    let schemas = &openapi["components"]["schemas"];
    let mut definitions = Map::new();
    while let Some(name) = pending.pop_first() {
        if definitions.contains_key(&name) {
            continue;
        }
        let mut found = BTreeSet::new();
        let schema = schema_of(&schemas[&name], &mut found);
        definitions.insert(name, schema);
        pending.extend(found.into_iter().filter(|n| !definitions.contains_key(n)));
    }
    definitions
}

/// One OpenAPI 3.1 schema as Swagger 2.0; the names of the schemas it
/// refers to are added to `referenced`.
fn schema_of(schema: &Value, referenced: &mut BTreeSet<String>) -> Value {
    let Value::Object(fields) = schema else {
        panic!("a schema that is not an object: {schema}")
    };
    if let Some(nullable) = nullable_one_of(fields) {
        let Value::Object(mut converted) = schema_of(nullable, referenced) else {
            unreachable!("a schema converts to an object")
        };
        converted.insert("x-nullable".into(), true.into());
        return ref_alone(converted);
    }
    let mut converted = Map::new();
    for (key, value) in fields {
        match key.as_str() {
            "$ref" => {
                let name = value
                    .as_str()
                    .unwrap_or_default()
                    .rsplit('/')
                    .next()
                    .unwrap_or_default();
                referenced.insert(name.to_owned());
                converted.insert(key.clone(), format!("#/definitions/{name}").into());
            }
            "type" => {
                let (kind, nullable) = type_of(value);
                converted.insert("type".into(), kind.into());
                if nullable {
                    converted.insert("x-nullable".into(), true.into());
                }
            }
            "properties" => {
                let properties = value
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, property)| (name.clone(), schema_of(property, referenced)));
                converted.insert(key.clone(), Value::Object(properties.collect()));
            }
            "items" => {
                converted.insert(key.clone(), schema_of(value, referenced));
            }
            "additionalProperties" if value.is_object() => {
                converted.insert(key.clone(), schema_of(value, referenced));
            }
            "examples" => {
                if let Some(first) = value.get(0) {
                    converted.insert("example".into(), first.clone());
                }
            }
            // JSON Schema 2020-12 only; Swagger 2.0 keys are strings anyway.
            "propertyNames" => {}
            "oneOf" | "anyOf" | "const" | "prefixItems" => {
                panic!("Swagger 2.0 cannot express `{key}`: {schema}")
            }
            _ => {
                converted.insert(key.clone(), value.clone());
            }
        }
    }
    ref_alone(converted)
}

/// A `$ref` stands alone in Swagger 2.0: what is said beside it goes on an
/// `allOf` around it.
fn ref_alone(mut schema: Map<String, Value>) -> Value {
    if schema.len() > 1 {
        if let Some(reference) = schema.remove("$ref") {
            schema.insert("allOf".into(), json!([{ "$ref": reference }]));
        }
    }
    Value::Object(schema)
}

/// `{"oneOf": [{"type": "null"}, X]}`, utoipa's nullable reference: X.
fn nullable_one_of(fields: &Map<String, Value>) -> Option<&Value> {
    let [first, second] = fields.get("oneOf")?.as_array()?.as_slice() else {
        return None;
    };
    match (first["type"].as_str(), second["type"].as_str()) {
        (Some("null"), _) => Some(second),
        (_, Some("null")) => Some(first),
        _ => None,
    }
}

/// A `type` (a name, or a list of them with `null`) as Swagger 2.0's one
/// name, and whether `null` was among them.
fn type_of(value: &Value) -> (String, bool) {
    match value {
        Value::Array(kinds) => {
            let named: Vec<&str> = kinds.iter().filter_map(Value::as_str).collect();
            let nullable = named.contains(&"null");
            match named
                .iter()
                .filter(|kind| **kind != "null")
                .collect::<Vec<_>>()[..]
            {
                [one] => (one.to_string(), nullable),
                _ => panic!("Swagger 2.0 has one type per schema: {value}"),
            }
        }
        Value::String(kind) => (kind.clone(), false),
        _ => panic!("a type that is not a name: {value}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_connector_is_what_the_code_generates() {
        let committed = include_str!("../../connectors/power-automate/apiDefinition.swagger.json");
        assert!(
            committed == json(),
            "connectors/power-automate/apiDefinition.swagger.json is not what the code generates: run scripts/openapi.sh and commit the file"
        );
    }

    #[test]
    fn the_send_takes_the_seeds_contact_list_and_nullable_fields_say_so() {
        let connector: Value = serde_json::from_str(&json()).unwrap();
        let send = &connector["paths"][crate::outbound::SEND]["post"];
        let body = send["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["in"] == "body")
            .unwrap();
        assert_eq!(body["schema"]["$ref"], "#/definitions/SendRequest");
        let request = &connector["definitions"]["SendRequest"];
        assert_eq!(
            request["properties"]["ContactList"]["items"]["$ref"],
            "#/definitions/OutboundContact"
        );
        let contact = &connector["definitions"]["OutboundContact"]["properties"];
        assert!(contact["CustomerName"].is_object() && contact["tocontactid"].is_object());
        assert_eq!(contact["locale"]["type"], "string");
        assert_eq!(contact["locale"]["x-nullable"], true);
        let job = &connector["definitions"]["JobView"]["properties"];
        assert_eq!(job["error"]["x-nullable"], true);
        assert_eq!(job["error"]["allOf"][0]["$ref"], "#/definitions/Reason");
        // Nothing refers to a schema the file does not define.
        let text = json();
        for reference in text.split("\"#/definitions/").skip(1) {
            let name = &reference[..reference.find('"').unwrap()];
            assert!(connector["definitions"].get(name).is_some(), "{name}");
        }
        assert!(!text.contains("#/components/"));
    }
}
