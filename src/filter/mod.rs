//! Filters (docs/api.md §15): which of the events a subscription covers it gets. A
//! filter is a JSON document in the syntax webhook users know from Hookdeck and
//! Outpost, matched against an event as the object `{resource, state, changed, data,
//! metadata}`. `parse.rs` checks a document once, when it is given, into a [`Filter`]
//! (every mistake a [`FilterError`] that names its place); `matches.rs` decides an
//! event against it, never failing.

mod matches;
mod parse;

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde_json::Value;

pub use self::matches::event_document;
use crate::model::Event;

/// Longest filter, as the JSON text it arrived as.
pub const MAX_FILTER_BYTES: usize = 4096;
/// Most operators (and plain values, each an `$eq`) in one filter.
pub const MAX_OPERATORS: usize = 64;
/// Deepest nesting of documents and operators.
pub const MAX_DEPTH: usize = 16;

/// A checked filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    root: Vec<Condition>,
    /// The document as given, in a canonical form (keys sorted, no spaces): what the
    /// API shows, and equal for equal filters.
    canonical: String,
}

/// One condition of a document; a document holds when all of its conditions do.
#[derive(Debug, Clone, PartialEq)]
enum Condition {
    /// A field (by path from the document's object) and what it must satisfy.
    Field(Vec<String>, Test),
    Or(Vec<Vec<Condition>>),
    And(Vec<Vec<Condition>>),
    Not(Vec<Condition>),
}

/// What a field's value must satisfy.
#[derive(Debug, Clone, PartialEq)]
enum Test {
    /// A plain value: equal, or for an array value on an array field, every element
    /// contained.
    Equals(Value),
    /// A nested document, matched against the field's object.
    Document(Vec<Condition>),
    /// Operators, all of which must hold.
    Operators(Vec<Operator>),
}

#[derive(Debug, Clone, PartialEq)]
enum Operator {
    Eq(Value),
    Neq(Value),
    Gt(Ordered),
    Gte(Ordered),
    Lt(Ordered),
    Lte(Ordered),
    In(Vec<Value>),
    Nin(Vec<Value>),
    StartsWith(String),
    EndsWith(String),
    Contains(Value),
    Exist(bool),
}

/// An operand of the ordering operators.
#[derive(Debug, Clone, PartialEq)]
enum Ordered {
    Number(f64),
    Text(String),
}

/// A filter that cannot be used, with where in it and why, in words for the person
/// who wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    /// Where: `filter` for the whole, else the keys leading there
    /// (`filter.data.order.$gt`, `filter.$or[1]`).
    pub place: String,
    pub problem: String,
}

impl std::fmt::Display for FilterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid filter at {}: {}", self.place, self.problem)
    }
}

impl std::error::Error for FilterError {}

impl Filter {
    /// A filter from its JSON text (a watch's `params.filter`, a stream's `filter`).
    pub fn from_text(text: &str) -> Result<Filter, FilterError> {
        if text.len() > MAX_FILTER_BYTES {
            return Err(parse::too_large(text.len()));
        }
        let value: Value = serde_json::from_str(text).map_err(|e| FilterError {
            place: "filter".into(),
            problem: format!("it is not JSON ({e})"),
        })?;
        Filter::from_value(&value)
    }

    /// A filter from a JSON value (a watch's or a watcher's `filter` object).
    pub fn from_value(value: &Value) -> Result<Filter, FilterError> {
        parse::filter(value)
    }

    /// The filter as the API shows it: canonical JSON text.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    /// The filter as a JSON value.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.canonical).expect("canonical filters are JSON")
    }

    /// Whether an event, as [`event_document`] makes it, matches.
    pub fn matches(&self, event: &Value) -> bool {
        matches::all(&self.root, event)
    }
}

/// Which filters one event matches, each distinct filter decided once however many
/// channels hold it, and the event's document made only if some filter asks. It keeps
/// the filters it decided, so a subscription's filter need be borrowed only for the
/// question (the router asks under each channel's lock).
pub struct Verdicts<'a> {
    event: &'a Event,
    document: Option<Value>,
    decided: HashMap<Decided, bool>,
}

/// A filter decided, known by its canonical form: equal filters are one.
struct Decided(Arc<Filter>);

impl PartialEq for Decided {
    fn eq(&self, other: &Decided) -> bool {
        self.0.canonical() == other.0.canonical()
    }
}

impl Eq for Decided {}

impl Hash for Decided {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As `str` hashes, so that a lookup by canonical text finds it.
        self.0.canonical().hash(state)
    }
}

impl Borrow<str> for Decided {
    fn borrow(&self) -> &str {
        self.0.canonical()
    }
}

impl<'a> Verdicts<'a> {
    pub fn new(event: &'a Event) -> Verdicts<'a> {
        Verdicts {
            event,
            document: None,
            decided: HashMap::new(),
        }
    }

    /// Whether a subscription with `filter` gets the event (`None`: no filter, it does).
    pub fn admits(&mut self, filter: Option<&Arc<Filter>>) -> bool {
        let Some(filter) = filter else {
            return true;
        };
        if let Some(&verdict) = self.decided.get(filter.canonical()) {
            return verdict;
        }
        let event = self.event;
        let document = self.document.get_or_insert_with(|| event_document(event));
        let verdict = filter.matches(document);
        self.decided.insert(Decided(filter.clone()), verdict);
        verdict
    }
}

/// Whether a subscription with `filter` gets `event`, for one event alone.
pub fn admits(filter: Option<&Filter>, event: &Event) -> bool {
    filter.is_none_or(|f| f.matches(&event_document(event)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::{Event, ResourceState};

    fn order(data: Value) -> Value {
        event_document(&Event {
            seq: 7,
            time_ms: 0,
            resource: "/orders/42".into(),
            state: ResourceState::Exists,
            data: Some(data.to_string().into_bytes().into()),
            changed: vec!["status".into(), "total".into()],
            metadata: Some(r#"{"by":"billing"}"#.into()),
            trace: None,
        })
    }

    fn matches(filter: Value, event: &Value) -> bool {
        Filter::from_value(&filter).unwrap().matches(event)
    }

    /// Every operator and form of docs/api.md §15, each once matching and once not.
    #[test]
    fn each_operator_and_form_matches_as_documented() {
        let paid = order(
            json!({"status": "paid", "total": 120, "tags": ["eu", "vip"],
                                "customer": {"name": "Ada", "tier": 2}}),
        );
        let cases = [
            (json!({"data": {"status": "paid"}}), true),
            (json!({"data": {"status": "open"}}), false),
            (json!({"data.customer.name": "Ada"}), true),
            (json!({"data": {"customer": {"tier": 2.0}}}), true),
            (json!({"data.tags": ["vip"]}), true),
            (json!({"data.tags": ["vip", "us"]}), false),
            (json!({"state": "exists", "resource": "/orders/42"}), true),
            (json!({"changed": ["total"]}), true),
            (json!({"metadata.by": "billing"}), true),
            (json!({"data.total": {"$gt": 100, "$lte": 120}}), true),
            (json!({"data.total": {"$gte": 121}}), false),
            (json!({"data.total": {"$lt": "z"}}), false),
            (json!({"data.customer.name": {"$lt": "B"}}), true),
            (json!({"data.status": {"$in": ["paid", "refunded"]}}), true),
            (json!({"data.status": {"$nin": ["paid"]}}), false),
            (json!({"data.status": {"$neq": "open"}}), true),
            (json!({"data.status": {"$eq": "paid"}}), true),
            (json!({"resource": {"$startsWith": "/orders/"}}), true),
            (json!({"resource": {"$endsWith": "/43"}}), false),
            (json!({"data.customer.name": {"$contains": "d"}}), true),
            (json!({"data.tags": {"$contains": "eu"}}), true),
            (json!({"data.tags": {"$contains": "us"}}), false),
            (json!({"data.coupon": {"$exist": false}}), true),
            (json!({"data.coupon": {"$exist": true}}), false),
            (json!({"data.status": {"$exist": true}}), true),
            (
                json!({"$or": [{"data.status": "open"}, {"data.total": 120}]}),
                true,
            ),
            (
                json!({"$and": [{"data.status": "paid"}, {"data.total": 1}]}),
                false,
            ),
            (json!({"$not": {"data.status": "paid"}}), false),
            (
                json!({"data": {"$or": [{"status": "x"}, {"customer.tier": 2}]}}),
                true,
            ),
            (json!({}), true),
        ];
        for (filter, expected) in cases {
            assert_eq!(matches(filter.clone(), &paid), expected, "{filter}");
        }
    }

    /// A field the event lacks matches nothing but `$exist: false` and `$neq`.
    #[test]
    fn a_missing_field_matches_only_exist_false_and_neq() {
        let bare = event_document(&Event {
            seq: 1,
            time_ms: 0,
            resource: "/r".into(),
            state: ResourceState::NotExists,
            data: None,
            changed: vec![],
            metadata: None,
            trace: None,
        });
        let cases = [
            (json!({"data.x": {"$neq": 1}}), true),
            (json!({"data.x": {"$exist": false}}), true),
            (json!({"data.x": {"$nin": [1]}}), false),
            (json!({"data.x": {"$lt": 1}}), false),
            (json!({"data.x": null}), false),
            (json!({"data": {}}), false),
            (json!({"metadata": {"$exist": true}}), false),
            (json!({"state": "not_exists"}), true),
        ];
        for (filter, expected) in cases {
            assert_eq!(matches(filter.clone(), &bare), expected, "{filter}");
        }
    }

    /// Each mistake is refused, naming its place.
    #[test]
    fn bad_filters_are_refused_with_their_place() {
        let cases = [
            (
                json!({"data": {"$regex": "x"}}),
                "filter.data.$regex",
                "unknown operator",
            ),
            (
                json!({"data.total": {"$gt": true}}),
                "filter.data.total.$gt",
                "a number or a string",
            ),
            (
                json!({"data.x": {"$in": "a"}}),
                "filter.data.x.$in",
                "a list",
            ),
            (
                json!({"data.x": {"$startsWith": 1}}),
                "filter.data.x.$startsWith",
                "a string",
            ),
            (
                json!({"data.x": {"$exist": "yes"}}),
                "filter.data.x.$exist",
                "true or false",
            ),
            (
                json!({"data.x": {"$eq": 1, "y": 2}}),
                "filter.data.x.y",
                "not both",
            ),
            (json!({"$gt": 1}), "filter.$gt", "tests a field"),
            (json!({"$or": []}), "filter.$or", "non-empty list"),
            (json!({"$or": [{"a": 1}, 3]}), "filter.$or[1]", "an object"),
            (json!({"data..x": 1}), "filter.data..x", "empty part"),
            (json!(["not", "an", "object"]), "filter", "an object"),
        ];
        for (filter, place, problem) in cases {
            let error = Filter::from_value(&filter).unwrap_err();
            assert_eq!(error.place, place, "{filter}");
            assert!(error.problem.contains(problem), "{filter}: {error}");
        }
        let error = Filter::from_text("{\"data\": ").unwrap_err();
        assert!(error.problem.contains("not JSON"), "{error}");
    }

    /// Size, operator count and depth are bounded.
    #[test]
    fn filters_are_bounded_in_size_operators_and_depth() {
        let many: serde_json::Map<String, Value> = (0..=MAX_OPERATORS)
            .map(|i| (format!("f{i}"), json!(i)))
            .collect();
        let error = Filter::from_value(&Value::Object(many)).unwrap_err();
        assert!(error.problem.contains("at most 64"), "{error}");

        let mut deep = json!(1);
        for _ in 0..MAX_DEPTH {
            deep = json!({"a": deep});
        }
        let error = Filter::from_value(&deep).unwrap_err();
        assert!(error.problem.contains("nest at most"), "{error}");

        let long = format!("{{\"data.x\": \"{}\"}}", "y".repeat(MAX_FILTER_BYTES));
        let error = Filter::from_text(&long).unwrap_err();
        assert_eq!(error.place, "filter");
        assert!(error.problem.contains("at most 4096"), "{error}");
    }

    /// Equal filters have one canonical form, whatever their spacing and key order.
    #[test]
    fn equal_filters_have_one_canonical_form() {
        let a = Filter::from_text(r#"{ "data": {"b": 1, "a": {"$gt": 2}} }"#).unwrap();
        let b = Filter::from_text(r#"{"data":{"a":{"$gt":2},"b":1}}"#).unwrap();
        assert_eq!(a.canonical(), b.canonical());
        assert_eq!(a.canonical(), r#"{"data":{"a":{"$gt":2},"b":1}}"#);
        assert_eq!(a.to_value(), json!({"data": {"a": {"$gt": 2}, "b": 1}}));
    }
}
