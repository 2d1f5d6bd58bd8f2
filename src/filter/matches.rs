//! Whether an event matches a filter. Never fails: a field the event lacks, or of
//! another type than an operator wants, simply does not match (but for `$exist:
//! false` and `$neq`, which a missing field satisfies).

use serde_json::{Map, Value};

use super::{Condition, Operator, Ordered, Test};
use crate::model::Event;

/// The object a filter is matched against: `{resource, state, changed, data,
/// metadata}` (absent `data` and `metadata` are missing fields). Made once per event,
/// whatever the number of filters.
pub fn event_document(event: &Event) -> Value {
    let mut object = Map::with_capacity(5);
    object.insert("resource".into(), Value::String(event.resource.clone()));
    object.insert("state".into(), Value::String(event.state.as_str().into()));
    let changed = event.changed.iter().cloned().map(Value::String).collect();
    object.insert("changed".into(), Value::Array(changed));
    let parsed = |bytes: &[u8]| serde_json::from_slice::<Value>(bytes).ok();
    if let Some(data) = event.data.as_deref().and_then(parsed) {
        object.insert("data".into(), data);
    }
    if let Some(metadata) = event
        .metadata
        .as_deref()
        .map(str::as_bytes)
        .and_then(parsed)
    {
        object.insert("metadata".into(), metadata);
    }
    Value::Object(object)
}

/// Every condition of a document holds for `object`.
pub fn all(conditions: &[Condition], object: &Value) -> bool {
    conditions.iter().all(|c| holds(c, object))
}

fn holds(condition: &Condition, object: &Value) -> bool {
    match condition {
        Condition::Field(path, test) => passes(test, field(object, path)),
        Condition::Or(documents) => documents.iter().any(|d| all(d, object)),
        Condition::And(documents) => documents.iter().all(|d| all(d, object)),
        Condition::Not(document) => !all(document, object),
    }
}

fn field<'a>(object: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(object, |value, key| value.as_object()?.get(key))
}

fn passes(test: &Test, value: Option<&Value>) -> bool {
    match test {
        Test::Equals(expected) => value.is_some_and(|v| equals_or_contains_all(v, expected)),
        Test::Document(conditions) => value.is_some_and(|v| v.is_object() && all(conditions, v)),
        Test::Operators(operators) => operators.iter().all(|o| satisfies(o, value)),
    }
}

/// A plain value: equal, or for a list on a list field, every element in it.
fn equals_or_contains_all(value: &Value, expected: &Value) -> bool {
    match (value, expected) {
        (Value::Array(items), Value::Array(wanted)) => {
            wanted.iter().all(|w| items.iter().any(|i| same(i, w)))
        }
        _ => same(value, expected),
    }
}

fn satisfies(operator: &Operator, value: Option<&Value>) -> bool {
    let Some(value) = value else {
        return matches!(operator, Operator::Neq(_) | Operator::Exist(false));
    };
    match operator {
        Operator::Eq(expected) => same(value, expected),
        Operator::Neq(expected) => !same(value, expected),
        Operator::Gt(bound) => compare(value, bound).is_some_and(|o| o.is_gt()),
        Operator::Gte(bound) => compare(value, bound).is_some_and(|o| o.is_ge()),
        Operator::Lt(bound) => compare(value, bound).is_some_and(|o| o.is_lt()),
        Operator::Lte(bound) => compare(value, bound).is_some_and(|o| o.is_le()),
        Operator::In(list) => list.iter().any(|item| same(value, item)),
        Operator::Nin(list) => !list.iter().any(|item| same(value, item)),
        Operator::StartsWith(prefix) => value
            .as_str()
            .is_some_and(|s| s.starts_with(prefix.as_str())),
        Operator::EndsWith(suffix) => value.as_str().is_some_and(|s| s.ends_with(suffix.as_str())),
        Operator::Contains(needle) => match (value, needle) {
            (Value::String(s), Value::String(part)) => s.contains(part.as_str()),
            (Value::Array(items), needle) => items.iter().any(|i| same(i, needle)),
            _ => false,
        },
        Operator::Exist(wanted) => *wanted,
    }
}

/// JSON equality, numbers by value (`1` equals `1.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// Numbers with numbers, strings with strings by code point; anything else is not
/// ordered.
fn compare(value: &Value, bound: &Ordered) -> Option<std::cmp::Ordering> {
    match (value, bound) {
        (Value::Number(n), Ordered::Number(b)) => n.as_f64()?.partial_cmp(b),
        (Value::String(s), Ordered::Text(b)) => Some(s.as_str().cmp(b.as_str())),
        _ => None,
    }
}
