//! Building the executable schema from SDL: the text is parsed by
//! async-graphql-parser, each type becomes an async-graphql `dynamic` type,
//! and each field gets a resolver: an HTTP [`Plan`] (from its `@http`
//! directive or the `resolvers:` block) or a read of its parent's JSON.
//! Root fields must have a plan. async-graphql's own checks (unknown types,
//! interfaces honoured) run last.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    time::Duration,
};

use async_graphql::dynamic::{
    Enum, EnumItem, Field, InputObject, InputValue, Interface, InterfaceField, Object, Scalar, Schema, TypeRef, Union,
};
use async_graphql_parser::{
    types::{
        BaseType, ConstDirective, FieldDefinition, InputValueDefinition, ObjectType, Type, TypeDefinition, TypeKind,
        TypeSystemDefinition,
    },
};

use covet_plugin_api::host::Host;

use crate::{
    config::HttpSpec,
    error::ConfigError,
    exchange::Captures,
    nulls::Nullability,
    plan::{self, FieldContext, Plan, Target},
    resolve::{self, Shape},
    template::Source,
};

/// What the SDL becomes.
pub struct Built {
    /// The executable schema.
    pub schema: Schema,
    /// The metadata keys and headers the templates read.
    pub captures: Captures,
    /// The upstreams the plans call.
    pub upstreams: BTreeSet<String>,
    /// Whether any field caches its answers.
    pub caches: bool,
    /// The output fields' types, for settling field errors.
    pub nulls: Nullability,
}

/// What fields are built with.
pub struct Options<'a> {
    /// The plugin's host services (grants are checked at build).
    pub host: &'a Host,
    /// The default call timeout.
    pub timeout: Duration,
    /// Whether introspection is answered.
    pub introspection: bool,
}

/// What is known of the SDL's types before fields are built.
struct Types<'a> {
    defs: Vec<&'a TypeDefinition>,
    kinds: HashMap<String, Shape>,
    query: String,
    mutation: Option<String>,
}

/// Builds the schema of `sdl`; `resolvers` are the config's specs by `Type.field`.
pub fn build(sdl: &str, resolvers: &BTreeMap<String, HttpSpec>, cx: &Options<'_>) -> Result<Built, ConfigError> {
    let doc = async_graphql_parser::parse_schema(sdl).map_err(|e| ConfigError::Sdl(e.to_string()))?;
    let types = types(&doc.definitions)?;
    check_resolver_keys(resolvers, &types)?;
    let mut out = Builder { built_plans: Vec::new(), captures: Captures::default() };
    let mut schema = Schema::build(&types.query, types.mutation.as_deref(), None);
    let mut nulls = Nullability::new(&types.query, types.mutation.as_deref());
    for def in &types.defs {
        let fields = match &def.kind {
            TypeKind::Object(o) => &o.fields,
            TypeKind::Interface(i) => &i.fields,
            _ => &Vec::new(),
        };
        for f in fields {
            nulls.add(def.name.node.as_str(), f.node.name.node.as_str(), f.node.ty.node.clone());
        }
        schema = match &def.kind {
            TypeKind::Scalar => schema.register(Scalar::new(def.name.node.as_str())),
            TypeKind::Enum(e) => schema.register(
                Enum::new(def.name.node.as_str()).items(e.values.iter().map(|v| EnumItem::new(v.node.value.node.as_str()))),
            ),
            TypeKind::InputObject(i) => {
                let mut object = InputObject::new(def.name.node.as_str());
                for field in &i.fields {
                    object = object.field(input_value(&field.node));
                }
                schema.register(object)
            }
            TypeKind::Union(u) => {
                let mut union = Union::new(def.name.node.as_str());
                for member in &u.members {
                    nulls.add_possible(def.name.node.as_str(), member.node.as_str());
                    union = union.possible_type(member.node.as_str());
                }
                schema.register(union)
            }
            TypeKind::Interface(i) => {
                let mut interface = Interface::new(def.name.node.as_str());
                for f in &i.fields {
                    let mut field = InterfaceField::new(f.node.name.node.as_str(), type_ref(&f.node.ty.node));
                    for arg in &f.node.arguments {
                        field = field.argument(input_value(&arg.node));
                    }
                    interface = interface.field(field);
                }
                schema.register(interface)
            }
            TypeKind::Object(o) => {
                for interface in &o.implements {
                    nulls.add_possible(interface.node.as_str(), def.name.node.as_str());
                }
                schema.register(out.object(def, o, resolvers, &types, cx)?)
            }
        };
    }
    if !cx.introspection {
        schema = schema.disable_introspection();
    }
    // Validation once per document (`validated.rs`).
    schema = schema.extension(crate::validated::SkipKnown::new());
    let schema = schema.finish().map_err(|e| ConfigError::Schema(e.0))?;
    let upstreams = out
        .built_plans
        .iter()
        .filter_map(|p| match &p.0 {
            Target::Upstream(name) => Some(name.to_string()),
            Target::Url => None,
        })
        .collect();
    let caches = out.built_plans.iter().any(|p| p.1);
    Ok(Built { schema, captures: out.captures, upstreams, caches, nulls })
}

/// Sorts the definitions: the roots, each type's kind; refuses what is not served.
fn types(defs: &[TypeSystemDefinition]) -> Result<Types<'_>, ConfigError> {
    let mut types = Types { defs: Vec::new(), kinds: HashMap::new(), query: "Query".into(), mutation: None };
    for name in ["Int", "Float", "String", "Boolean", "ID"] {
        types.kinds.insert(name.into(), Shape::Leaf);
    }
    let mut mutation_named = false;
    for def in defs {
        match def {
            TypeSystemDefinition::Schema(s) => {
                if let Some(q) = &s.node.query {
                    types.query = q.node.to_string();
                }
                if let Some(m) = &s.node.mutation {
                    types.mutation = Some(m.node.to_string());
                    mutation_named = true;
                }
                if s.node.subscription.is_some() {
                    return Err(ConfigError::Unsupported("subscriptions are not served".into()));
                }
            }
            TypeSystemDefinition::Type(t) => {
                if t.node.extend {
                    return Err(ConfigError::Unsupported(format!(
                        "'extend type {}': write the fields into the type itself",
                        t.node.name.node
                    )));
                }
                let shape = match &t.node.kind {
                    TypeKind::Object(_) => Shape::Object,
                    TypeKind::Interface(_) | TypeKind::Union(_) => Shape::Abstract,
                    _ => Shape::Leaf,
                };
                types.kinds.insert(t.node.name.node.to_string(), shape);
                types.defs.push(&t.node);
            }
            TypeSystemDefinition::Directive(_) => {}
        }
    }
    if !mutation_named && types.kinds.get("Mutation") == Some(&Shape::Object) {
        types.mutation = Some("Mutation".into());
    }
    if types.kinds.get(&types.query) != Some(&Shape::Object) {
        return Err(ConfigError::Sdl(format!("the query root type '{}' is not defined as an object type", types.query)));
    }
    Ok(types)
}

/// Every `resolvers:` key names an object type's field.
fn check_resolver_keys(resolvers: &BTreeMap<String, HttpSpec>, types: &Types<'_>) -> Result<(), ConfigError> {
    for key in resolvers.keys() {
        let bad = |reason: String| ConfigError::Field { field: format!("resolvers: '{key}'"), reason };
        let (ty, field) = key.split_once('.').ok_or_else(|| bad("keys are Type.field".into()))?;
        let def = types.defs.iter().find(|d| d.name.node == ty).ok_or_else(|| bad(format!("no type '{ty}'")))?;
        let TypeKind::Object(o) = &def.kind else { return Err(bad(format!("'{ty}' is not an object type"))) };
        if !o.fields.iter().any(|f| f.node.name.node == field) {
            return Err(bad(format!("type '{ty}' has no field '{field}'")));
        }
    }
    Ok(())
}

/// Collects what the plans need while objects are built.
struct Builder {
    built_plans: Vec<(Target, bool)>,
    captures: Captures,
}

impl Builder {
    fn object(
        &mut self,
        def: &TypeDefinition,
        o: &ObjectType,
        resolvers: &BTreeMap<String, HttpSpec>,
        types: &Types<'_>,
        cx: &Options<'_>,
    ) -> Result<Object, ConfigError> {
        let ty = def.name.node.as_str();
        let is_root = ty == types.query || types.mutation.as_deref() == Some(ty);
        let mut object = Object::new(ty);
        if let Some(d) = &def.description {
            object = object.description(d.node.as_str());
        }
        for interface in &o.implements {
            object = object.implement(interface.node.as_str());
        }
        let parent_fields: Vec<&str> = o.fields.iter().map(|f| f.node.name.node.as_str()).collect();
        for f in &o.fields {
            let f = &f.node;
            let name = f.name.node.as_str();
            let shape = shape(&f.ty.node, types).ok_or_else(|| {
                ConfigError::field(ty, name, format!("type '{}' is not defined", base_name(&f.ty.node)))
            })?;
            let spec = spec(ty, f, resolvers.get(&format!("{ty}.{name}")))?;
            let resolver = match spec {
                Some(spec) => {
                    let fcx = FieldContext {
                        type_name: ty,
                        field_name: name,
                        args: f.arguments.iter().map(|a| a.node.name.node.as_str()).collect(),
                        parent_fields: (!is_root).then(|| parent_fields.clone()),
                        host: cx.host,
                        default_timeout: cx.timeout,
                    };
                    let plan = plan::compile(&spec, &fcx, self.built_plans.len())?;
                    self.note(&plan);
                    resolve::http_field(plan, shape)
                }
                None if is_root => {
                    return Err(ConfigError::field(
                        ty,
                        name,
                        "a root field needs @http(...) or an entry in `resolvers:` (it has no parent to read)",
                    ));
                }
                None => resolve::json_field(name.to_owned(), shape),
            };
            let mut field = Field::new(name, type_ref(&f.ty.node), resolver);
            if let Some(d) = &f.description {
                field = field.description(d.node.as_str());
            }
            for arg in &f.arguments {
                field = field.argument(input_value(&arg.node));
            }
            object = object.field(field);
        }
        Ok(object)
    }

    /// Records the plan's target, cache use and captured metadata and headers.
    fn note(&mut self, plan: &Plan) {
        self.built_plans.push((plan.target.clone(), plan.cache_ttl.is_some()));
        let templates = std::iter::once(&plan.path)
            .chain(plan.headers.iter().map(|(_, t)| t))
            .chain(plan.body.iter())
            .chain(plan.batch.iter().map(|b| &b.key));
        for source in templates.flat_map(|t| t.sources()) {
            match source {
                Source::Meta(k) if !self.captures.meta.contains(k) => self.captures.meta.push(k.clone()),
                Source::Header(h) if !self.captures.headers.contains(h) => self.captures.headers.push(h.clone()),
                _ => {}
            }
        }
    }
}

/// The field's spec: its `@http` directive or its `resolvers:` entry (not both).
fn spec(ty: &str, f: &FieldDefinition, configured: Option<&HttpSpec>) -> Result<Option<HttpSpec>, ConfigError> {
    let name = f.name.node.as_str();
    let mut directive = None;
    for d in &f.directives {
        match d.node.name.node.as_str() {
            "http" => directive = Some(directive_spec(&d.node).map_err(|e| ConfigError::field(ty, name, e))?),
            "deprecated" => {}
            other => {
                return Err(ConfigError::field(ty, name, format!("unknown directive @{other} (known: @http, @deprecated)")));
            }
        }
    }
    match (directive, configured) {
        (Some(_), Some(_)) => Err(ConfigError::field(ty, name, "has both @http and a `resolvers:` entry: keep one")),
        (d, c) => Ok(d.or_else(|| c.cloned())),
    }
}

/// The `@http(...)` arguments as an [`HttpSpec`].
fn directive_spec(d: &ConstDirective) -> Result<HttpSpec, String> {
    let mut map = serde_json::Map::new();
    for (name, value) in &d.arguments {
        let json = value.node.clone().into_json().map_err(|e| format!("@http({}): {e}", name.node))?;
        map.insert(name.node.to_string(), json);
    }
    serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| format!("@http: {e}"))
}

/// The resolver's shape of `ty`; `None` for an undefined type.
fn shape(ty: &Type, types: &Types<'_>) -> Option<Shape> {
    match &ty.base {
        BaseType::Named(name) => types.kinds.get(name.as_str()).cloned(),
        BaseType::List(inner) => Some(Shape::List(Box::new(shape(inner, types)?))),
    }
}

/// The dynamic type reference of `ty`.
fn type_ref(ty: &Type) -> TypeRef {
    let inner = match &ty.base {
        BaseType::Named(name) => TypeRef::Named(name.to_string().into()),
        BaseType::List(inner) => TypeRef::List(Box::new(type_ref(inner))),
    };
    if ty.nullable { inner } else { TypeRef::NonNull(Box::new(inner)) }
}

/// An argument or input field.
fn input_value(v: &InputValueDefinition) -> InputValue {
    let mut input = InputValue::new(v.name.node.as_str(), type_ref(&v.ty.node));
    if let Some(d) = &v.description {
        input = input.description(d.node.as_str());
    }
    if let Some(default) = &v.default_value {
        input = input.default_value(default.node.clone());
    }
    input
}

/// The named type at the bottom of `ty`'s lists.
fn base_name(ty: &Type) -> &str {
    match &ty.base {
        BaseType::Named(name) => name.as_str(),
        BaseType::List(inner) => base_name(inner),
    }
}

#[cfg(test)]
#[path = "sdl_tests.rs"]
mod tests;
