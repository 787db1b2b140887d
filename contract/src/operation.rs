//! How the areas describe an operation, and what every operation shares.
//!
//! An area says an operation's method, path, who may call it, what it takes
//! and what it answers when it succeeds. The failures that follow from how
//! it is called are added here, once: a credential refused (401/403) from
//! its [`Access`], a body that cannot be read (400/413/422) from its body,
//! an id that names nothing (404) from its path, the store failing (503
//! with `Retry-After`) from touching the store. So an area cannot forget
//! one, and the error shape (SPEC.md R-CFG-8) is written once.

use std::collections::BTreeMap;
use switchboard_core::auth::Role;
use switchboard_core::input::Word;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{
    AnyOfBuilder, Discriminator, ObjectBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{Ref, RefOr, Required, ResponseBuilder, ResponsesBuilder};
use utoipa::ToSchema;

/// Who may call an operation, as the core checks it.
#[derive(Clone, Copy)]
pub enum Access {
    /// Anyone: the route shows no tenant's data.
    Public,
    /// An API key of one of these roles; the slices are the core's own
    /// (e.g. a resource's `READERS`), so the contract says what is enforced.
    Key(&'static [Role]),
    /// The operator's token (Spin variable `operator_token`).
    Operator,
    /// An admin key, or the operator's token.
    AdminOrOperator,
    /// The scheduler's token (Spin variable `dispatch_token`).
    Dispatcher,
    /// A provider, proven by a signature: the name of its security scheme.
    Signed(&'static str),
}

/// The security schemes [`Access`] refers to.
pub const API_KEY: &str = "api_key";
pub const OPERATOR_TOKEN: &str = "operator_token";
pub const DISPATCH_TOKEN: &str = "dispatch_token";

/// One operation, built up by an area and added to the [`Api`].
pub struct Op {
    method: HttpMethod,
    path: String,
    operation_id: String,
    summary: String,
    description: String,
    tag: &'static str,
    access: Access,
    params: Vec<Param>,
    body: Option<(RefOr<Schema>, &'static str)>,
    answers: Vec<Answer>,
    stateless: bool,
}

struct Param {
    name: String,
    location: ParameterIn,
    required: bool,
    description: &'static str,
    schema: RefOr<Schema>,
}

struct Answer {
    status: u16,
    shown: Shown,
}

/// A response as the document shows it.
struct Shown {
    description: String,
    /// The body in each media type it may come as; none for `204`.
    bodies: Vec<(RefOr<Schema>, &'static str)>,
    headers: Vec<(&'static str, &'static str)>,
}

impl Shown {
    fn new(description: &str, body: Option<(RefOr<Schema>, &'static str)>) -> Shown {
        Shown {
            description: description.into(),
            bodies: body.into_iter().collect(),
            headers: Vec::new(),
        }
    }
}

impl Op {
    fn new(method: HttpMethod, path: &str, operation_id: &str, summary: &str) -> Op {
        let params = path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| Param {
                name: name.to_owned(),
                location: ParameterIn::Path,
                required: true,
                description: "",
                schema: string(),
            })
            .collect();
        Op {
            method,
            path: path.into(),
            operation_id: operation_id.into(),
            summary: summary.into(),
            description: String::new(),
            tag: "",
            access: Access::Public,
            params,
            body: None,
            answers: Vec::new(),
            stateless: false,
        }
    }

    pub fn get(path: &str, operation_id: &str, summary: &str) -> Op {
        Op::new(HttpMethod::Get, path, operation_id, summary)
    }

    pub fn post(path: &str, operation_id: &str, summary: &str) -> Op {
        Op::new(HttpMethod::Post, path, operation_id, summary)
    }

    pub fn patch(path: &str, operation_id: &str, summary: &str) -> Op {
        Op::new(HttpMethod::Patch, path, operation_id, summary)
    }

    pub fn delete(path: &str, operation_id: &str, summary: &str) -> Op {
        Op::new(HttpMethod::Delete, path, operation_id, summary)
    }

    pub fn tag(mut self, tag: &'static str) -> Op {
        self.tag = tag;
        self
    }

    /// Adds a paragraph to the description.
    pub fn describe(mut self, description: &str) -> Op {
        if !self.description.is_empty() {
            self.description.push_str("\n\n");
        }
        self.description.push_str(description);
        self
    }

    pub fn access(mut self, access: Access) -> Op {
        self.access = access;
        self
    }

    /// Describes a path parameter the path names (`{id}`).
    pub fn path_param(mut self, name: &str, description: &'static str) -> Op {
        let param = self
            .params
            .iter_mut()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("{} has no {{{name}}}", self.path));
        param.description = description;
        self
    }

    pub fn query(
        mut self,
        name: &'static str,
        schema: RefOr<Schema>,
        description: &'static str,
    ) -> Op {
        self.params.push(Param {
            name: name.into(),
            location: ParameterIn::Query,
            required: false,
            description,
            schema,
        });
        self
    }

    pub fn header(mut self, name: &'static str, description: &'static str) -> Op {
        self.params.push(Param {
            name: name.into(),
            location: ParameterIn::Header,
            required: false,
            description,
            schema: string(),
        });
        self
    }

    /// `cursor` and `limit`, as every list pages.
    pub fn paged(self) -> Op {
        let limit = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(1))
            .maximum(Some(switchboard_core::store::MAX_PAGE_SIZE as f64))
            .default(Some(switchboard_core::store::DEFAULT_PAGE_SIZE.into()));
        let cursor = ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[0-9]+$"));
        self.query(
            "cursor",
            RefOr::T(cursor.into()),
            "The `next_cursor` of the previous page; leave out for the first.",
        )
        .query("limit", RefOr::T(limit.into()), "Items per page.")
    }

    /// A JSON request body.
    pub fn body(mut self, schema: RefOr<Schema>) -> Op {
        self.body = Some((schema, "application/json"));
        self
    }

    /// A request body of another media type (a provider's form post).
    pub fn body_as(mut self, schema: RefOr<Schema>, media_type: &'static str) -> Op {
        self.body = Some((schema, media_type));
        self
    }

    /// A success with a JSON body.
    pub fn answers(self, status: u16, description: &str, body: RefOr<Schema>) -> Op {
        self.answer(status, description, Some((body, "application/json")))
    }

    /// A success with a body of another media type; given again for a
    /// status, another media type that status may come as.
    pub fn answers_as(
        mut self,
        status: u16,
        description: &str,
        body: RefOr<Schema>,
        media_type: &'static str,
    ) -> Op {
        if let Some(answer) = self.answers.iter_mut().find(|a| a.status == status) {
            answer.shown.description = format!("{} {description}", answer.shown.description);
            answer.shown.bodies.push((body, media_type));
            return self;
        }
        self.answer(status, description, Some((body, media_type)))
    }

    /// A success with no body (`204` for a delete).
    pub fn answers_empty(self, status: u16, description: &str) -> Op {
        self.answer(status, description, None)
    }

    /// The operation reads no store (so it never answers 503 for one).
    pub fn stateless(mut self) -> Op {
        self.stateless = true;
        self
    }

    /// A failure this operation has beyond those [`Api::add`] derives.
    pub fn fails(self, status: u16, description: &str) -> Op {
        self.answer(status, description, Some((error(), "application/json")))
    }

    fn answer(
        mut self,
        status: u16,
        description: &str,
        body: Option<(RefOr<Schema>, &'static str)>,
    ) -> Op {
        self.answers.push(Answer {
            status,
            shown: Shown::new(description, body),
        });
        self
    }

    /// A header on the answers with this status.
    pub fn answer_header(
        mut self,
        status: u16,
        name: &'static str,
        description: &'static str,
    ) -> Op {
        for answer in self.answers.iter_mut().filter(|a| a.status == status) {
            answer.shown.headers.push((name, description));
        }
        self
    }

    fn has(&self, status: u16) -> bool {
        self.answers.iter().any(|a| a.status == status)
    }

    /// The failures that follow from how the operation is called and that
    /// it does not describe itself: `(status, shared response)`.
    fn derived_failures(&self) -> Vec<(u16, &'static str)> {
        let mut derived = Vec::new();
        match self.access {
            Access::Public => {}
            Access::Key(_) | Access::AdminOrOperator => {
                derived.extend([(401, "Unauthorized"), (403, "Forbidden")])
            }
            Access::Operator | Access::Dispatcher => {
                derived.extend([(401, "Unauthorized"), (403, "TokenUnset")])
            }
            Access::Signed(_) => derived.push((403, "BadSignature")),
        }
        if self.body.is_some() {
            derived.extend([(400, "Malformed"), (413, "TooLarge"), (422, "Invalid")]);
        }
        if self.params.iter().any(|p| p.location == ParameterIn::Path) {
            derived.push((404, "NotFound"));
        }
        if self.params.iter().any(|p| p.location == ParameterIn::Query) {
            derived.push((422, "Invalid"));
        }
        if !self.stateless {
            derived.push((503, "StoreUnavailable"));
        }
        derived.retain(|(status, _)| !self.has(*status));
        derived.dedup();
        derived
    }
}

/// The responses [`Op::derived_failures`] names, shared by reference.
const SHARED_FAILURES: &[(&str, &str)] = &[
    (
        "Malformed",
        "The body is not what this operation reads (not JSON, or not a JSON object).",
    ),
    (
        "Unauthorized",
        "No credential, or one that was revoked or mistyped.",
    ),
    ("Forbidden", "The key's role may not call this operation."),
    (
        "TokenUnset",
        "The token's Spin variable is not set: the route is closed.",
    ),
    (
        "BadSignature",
        "The provider's signature is missing or does not verify; nothing was stored.",
    ),
    (
        "NotFound",
        "Nothing with this id in the organisation (another organisation's ids too).",
    ),
    (
        "TooLarge",
        "The body is over 1 MiB; nothing of it was used.",
    ),
    (
        "Invalid",
        "A field or query parameter is missing or wrong; `error.field` names it.",
    ),
    (
        "StoreUnavailable",
        "The store failed; nothing was changed. Retry after `Retry-After` seconds.",
    ),
];

/// The operations and the schemas they refer to.
#[derive(Default)]
pub struct Api {
    pub(crate) paths: BTreeMap<String, PathItem>,
    pub(crate) schemas: BTreeMap<String, RefOr<Schema>>,
}

impl Api {
    /// A reference to `T`'s schema, registering it and what it refers to.
    /// A schema registered stays as it was registered, so that an area may
    /// refine one (see [`Api::discriminate`]).
    pub fn schema<T: ToSchema>(&mut self) -> RefOr<Schema> {
        let mut found = vec![(T::name().into_owned(), T::schema())];
        T::schemas(&mut found);
        for (name, schema) in found {
            self.schemas.entry(name).or_insert(schema);
        }
        RefOr::Ref(Ref::from_schema_name(T::name()))
    }

    /// Registers `T`, an enum tagged by `property` whose variants are
    /// schemas of their own, with a discriminator: each variant's schema
    /// takes its tag (a `const`), and the `oneOf` maps each tag to it, so a
    /// generated client picks the variant by `property`.
    pub fn discriminate<T: ToSchema>(&mut self, property: &str) -> RefOr<Schema> {
        let reference = self.schema::<T>();
        let name = T::name();
        let Some(RefOr::T(Schema::OneOf(mut one))) = self.schemas.get(name.as_ref()).cloned()
        else {
            panic!("{name} is not a oneOf");
        };
        let mut mapping = Vec::new();
        for item in &mut one.items {
            let RefOr::T(Schema::AllOf(all)) = item else {
                panic!("{name}'s variants are not tagged schemas");
            };
            let [RefOr::Ref(variant), RefOr::T(Schema::Object(tag))] = all.items.as_slice() else {
                panic!("{name}'s variants are not tagged schemas");
            };
            let value = tag.properties[property].clone();
            let word = match &value {
                RefOr::T(Schema::Object(word)) => word.enum_values.clone().unwrap_or_default(),
                _ => Vec::new(),
            };
            let [serde_json::Value::String(word)] = word.as_slice() else {
                panic!("{name}'s tag is not one word");
            };
            let variant_name = variant
                .ref_location
                .trim_start_matches("#/components/schemas/")
                .to_owned();
            if let Some(RefOr::T(Schema::Object(object))) = self.schemas.get_mut(&variant_name) {
                object.properties.insert(property.to_owned(), value);
                object.required.insert(0, property.to_owned());
            }
            mapping.push((word.clone(), variant.ref_location.clone()));
            *item = RefOr::Ref(variant.clone());
        }
        one.discriminator = Some(Discriminator::with_mapping(property, mapping));
        self.schemas
            .insert(name.into_owned(), RefOr::T(Schema::OneOf(one)));
        reference
    }

    /// `T`'s schema with no property required, as a PATCH takes it;
    /// registered as `{T}Update`.
    pub fn all_optional<T: ToSchema>(&mut self) -> RefOr<Schema> {
        self.schema::<T>();
        self.optional_form(&T::name())
    }

    /// `{name}Update`: the registered schema `name` with no property
    /// required, through the objects it is composed of (a flattened field,
    /// a variant of a tagged enum). One of several such variants may match
    /// a PATCH, so `oneOf` becomes `anyOf`.
    fn optional_form(&mut self, name: &str) -> RefOr<Schema> {
        let update = format!("{name}Update");
        if !self.schemas.contains_key(&update) {
            let schema = self.schemas[name].clone();
            let optional = self.without_required(schema);
            self.schemas.insert(update.clone(), optional);
        }
        RefOr::Ref(Ref::from_schema_name(update))
    }

    fn without_required(&mut self, schema: RefOr<Schema>) -> RefOr<Schema> {
        match schema {
            RefOr::Ref(reference) => {
                let name = reference
                    .ref_location
                    .trim_start_matches("#/components/schemas/")
                    .to_owned();
                match self.schemas.get(&name) {
                    Some(RefOr::T(Schema::Object(_) | Schema::AllOf(_) | Schema::OneOf(_))) => {
                        self.optional_form(&name)
                    }
                    _ => RefOr::Ref(reference),
                }
            }
            RefOr::T(Schema::Object(mut object)) => {
                object.required.clear();
                RefOr::T(Schema::Object(object))
            }
            RefOr::T(Schema::AllOf(mut all)) => {
                all.items = all
                    .items
                    .into_iter()
                    .map(|item| self.without_required(item))
                    .collect();
                RefOr::T(Schema::AllOf(all))
            }
            RefOr::T(Schema::OneOf(one)) => {
                let any = one.items.into_iter().fold(
                    AnyOfBuilder::new().description(one.description),
                    |any, item| any.item(self.without_required(item)),
                );
                RefOr::T(Schema::AnyOf(any.build()))
            }
            other => other,
        }
    }

    pub fn add(&mut self, op: Op) {
        let derived = op.derived_failures();
        let mut operation = OperationBuilder::new()
            .operation_id(Some(op.operation_id))
            .summary(Some(op.summary))
            .description((!op.description.is_empty()).then_some(op.description))
            .tag(op.tag);
        operation = match op.access {
            Access::Public => operation.securities(Some(Vec::<SecurityRequirement>::new())),
            Access::Key(roles) => operation.security(SecurityRequirement::new(
                API_KEY,
                roles.iter().map(|role| role.word()),
            )),
            Access::Operator => {
                operation.security(SecurityRequirement::new(OPERATOR_TOKEN, [""; 0]))
            }
            Access::AdminOrOperator => operation
                .security(SecurityRequirement::new(API_KEY, ["admin"]))
                .security(SecurityRequirement::new(OPERATOR_TOKEN, [""; 0])),
            Access::Dispatcher => {
                operation.security(SecurityRequirement::new(DISPATCH_TOKEN, [""; 0]))
            }
            Access::Signed(scheme) => operation.security(SecurityRequirement::new(scheme, [""; 0])),
        };
        for param in op.params {
            operation = operation.parameter(
                ParameterBuilder::new()
                    .name(param.name)
                    .parameter_in(param.location)
                    .required(if param.required {
                        Required::True
                    } else {
                        Required::False
                    })
                    .description((!param.description.is_empty()).then_some(param.description))
                    .schema(Some(param.schema)),
            );
        }
        if let Some((schema, media_type)) = op.body {
            operation = operation.request_body(Some(
                RequestBodyBuilder::new()
                    .content(
                        media_type,
                        ContentBuilder::new().schema(Some(schema)).build(),
                    )
                    .required(Some(Required::True))
                    .build(),
            ));
        }
        let mut responses: Vec<(u16, RefOr<utoipa::openapi::Response>)> = op
            .answers
            .into_iter()
            .map(|answer| (answer.status, RefOr::T(response(answer.shown))))
            .collect();
        responses.extend(derived.into_iter().map(|(status, name)| {
            (
                status,
                RefOr::Ref(Ref::new(format!("#/components/responses/{name}"))),
            )
        }));
        responses.sort_by_key(|(status, _)| *status);
        let responses = responses
            .into_iter()
            .fold(ResponsesBuilder::new(), |builder, (status, response)| {
                builder.response(status.to_string(), response)
            });
        operation = operation.responses(responses.build());
        let item = self.paths.entry(op.path).or_default();
        let item_with = PathItem::new(op.method, operation.build());
        merge_path_item(item, item_with);
    }
}

fn response(shown: Shown) -> utoipa::openapi::Response {
    let mut builder = ResponseBuilder::new()
        .description(shown.description)
        .header(
            "x-request-id",
            HeaderBuilder::new()
                .schema(string())
                .description(Some(
                    "The request's id: the caller's `x-request-id`, or a new one. Logs carry it.",
                ))
                .build(),
        );
    for (name, description) in shown.headers {
        builder = builder.header(
            name,
            HeaderBuilder::new()
                .schema(string())
                .description(Some(description))
                .build(),
        );
    }
    for (schema, media_type) in shown.bodies {
        builder = builder.content(
            media_type,
            ContentBuilder::new().schema(Some(schema)).build(),
        );
    }
    builder.build()
}

/// The failures every operation may refer to, by name.
pub fn shared_failures() -> Vec<(String, utoipa::openapi::Response)> {
    SHARED_FAILURES
        .iter()
        .map(|(name, description)| {
            let mut shown = Shown::new(description, Some((error(), "application/json")));
            if *name == "StoreUnavailable" {
                shown
                    .headers
                    .push(("retry-after", "Seconds to wait before retrying."));
            }
            ((*name).to_owned(), response(shown))
        })
        .collect()
}

/// Two operations on one path share its item.
fn merge_path_item(into: &mut PathItem, from: PathItem) {
    macro_rules! take {
        ($($method:ident),*) => {$(
            if from.$method.is_some() {
                into.$method = from.$method;
            }
        )*};
    }
    take!(get, post, patch, delete, put, head, options);
}

/// The error body every failure has (SPEC.md R-CFG-8).
pub fn error() -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name("Error"))
}

pub fn string() -> RefOr<Schema> {
    RefOr::T(ObjectBuilder::new().schema_type(Type::String).into())
}

/// `{"items": [item…], "next_cursor": string | null}`.
pub fn page(item: RefOr<Schema>) -> RefOr<Schema> {
    let items = utoipa::openapi::schema::ArrayBuilder::new().items(item);
    let cursor = ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .description(Some(
            "Pass as `cursor` for the next page; `null` on the last page.",
        ));
    RefOr::T(
        ObjectBuilder::new()
            .property("items", items)
            .required("items")
            .property("next_cursor", cursor)
            .required("next_cursor")
            .into(),
    )
}

/// A configuration resource's five operations (R-CFG): list, create, read,
/// update, delete, with the roles its [`core::Resource`] impl enforces and
/// its [`core::Resource::Input`] as the create and update bodies.
///
/// [`core::Resource`]: switchboard_core::config::Resource
/// [`core::Resource::Input`]: switchboard_core::config::Resource::Input
pub struct Resource<R> {
    collection: &'static str,
    tag: &'static str,
    one: &'static str,
    /// What the resource's create and update add to the shared rules.
    saves: fn(Op) -> Op,
    /// What its delete adds.
    deletes: fn(Op) -> Op,
    /// What its list adds (filters).
    lists: fn(Op) -> Op,
    resource: std::marker::PhantomData<R>,
}

impl<R> Resource<R>
where
    R: switchboard_core::config::Resource + ToSchema,
    R::Input: ToSchema,
{
    /// The resource as the API shows it.
    pub fn describe(self, api: &mut Api) {
        let shown = api.schema::<R>();
        self.describe_showing(api, shown);
    }
}

impl<R> Resource<R>
where
    R: switchboard_core::config::Resource,
    R::Input: ToSchema,
{
    pub fn new(collection: &'static str, tag: &'static str, one: &'static str) -> Self {
        Resource {
            collection,
            tag,
            one,
            saves: |op| op,
            deletes: |op| op,
            lists: |op| op,
            resource: std::marker::PhantomData,
        }
    }

    /// The resource's own rules for a create and an update (a description,
    /// failures of its own).
    pub fn saves(self, saves: fn(Op) -> Op) -> Self {
        Resource { saves, ..self }
    }

    /// The resource's own rules for a delete.
    pub fn deletes(self, deletes: fn(Op) -> Op) -> Self {
        Resource { deletes, ..self }
    }

    /// The resource's own filters of its list.
    pub fn lists(self, lists: fn(Op) -> Op) -> Self {
        Resource { lists, ..self }
    }

    /// The five operations, answering `shown` (a view that masks secrets).
    pub fn describe_showing(self, api: &mut Api, shown: RefOr<Schema>) {
        let Resource {
            collection,
            tag,
            one,
            saves,
            deletes,
            lists,
            ..
        } = self;
        let item = format!("{collection}/{{id}}");
        let name = one.replace(' ', "_");
        let create = api.schema::<R::Input>();
        let update = api.all_optional::<R::Input>();
        let readers = Access::Key(R::READERS);
        let writers = Access::Key(R::WRITERS);
        api.add(lists(
            Op::get(
                collection,
                &format!("list_{name}s"),
                &format!("List the {one}s"),
            )
            .tag(tag)
            .access(readers)
            .paged()
            .answers(
                200,
                &format!("A page of {one}s, oldest first."),
                page(shown.clone()),
            ),
        ));
        api.add(saves(
            Op::post(
                collection,
                &format!("create_{name}"),
                &format!("Create a {one}"),
            )
            .tag(tag)
            .access(writers)
            .body(create)
            .answers(201, &format!("The new {one}."), shown.clone())
            .fails(
                409,
                "The change conflicts with another document; the message says which.",
            ),
        ));
        api.add(
            Op::get(&item, &format!("read_{name}"), &format!("Read a {one}"))
                .tag(tag)
                .access(readers)
                .answers(200, &format!("The {one}."), shown.clone()),
        );
        api.add(saves(
            Op::patch(&item, &format!("update_{name}"), &format!("Change a {one}"))
                .tag(tag)
                .access(writers)
                .describe("Only the fields given change; `null` removes an optional field.")
                .body(update)
                .answers(200, &format!("The {one} as changed."), shown)
                .fails(
                    409,
                    "The change conflicts with another document; the message says which.",
                ),
        ));
        api.add(deletes(
            Op::delete(&item, &format!("delete_{name}"), &format!("Delete a {one}"))
                .tag(tag)
                .access(writers)
                .answers_empty(204, "Deleted.")
                .fails(409, "Something still uses it; the message says what."),
        ));
    }
}
