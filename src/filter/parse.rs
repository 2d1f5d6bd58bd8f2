//! A filter document checked into a [`Filter`]: every key and operand, the size, the
//! number of operators and the depth, each mistake named with its place.

use serde_json::{Map, Value};

use super::{
    Condition, Filter, FilterError, Operator, Ordered, Test, MAX_DEPTH, MAX_FILTER_BYTES,
    MAX_OPERATORS,
};

/// The operators that test a field's value, as the document spells them.
const FIELD_OPERATORS: [&str; 12] = [
    "$eq",
    "$neq",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$in",
    "$nin",
    "$startsWith",
    "$endsWith",
    "$contains",
    "$exist",
];

pub fn filter(value: &Value) -> Result<Filter, FilterError> {
    // Keys come out sorted (serde_json's map is ordered by key).
    let canonical = value.to_string();
    if canonical.len() > MAX_FILTER_BYTES {
        return Err(too_large(canonical.len()));
    }
    let mut checker = Checker { operators: 0 };
    let root = checker.document(value, "filter", 1)?;
    Ok(Filter { root, canonical })
}

pub fn too_large(bytes: usize) -> FilterError {
    error(
        "filter",
        format!("it is {bytes} bytes; a filter may have at most {MAX_FILTER_BYTES}"),
    )
}

fn error(place: &str, problem: impl Into<String>) -> FilterError {
    FilterError {
        place: place.to_string(),
        problem: problem.into(),
    }
}

struct Checker {
    operators: usize,
}

impl Checker {
    fn count(&mut self, place: &str) -> Result<(), FilterError> {
        self.operators += 1;
        if self.operators > MAX_OPERATORS {
            return Err(error(
                place,
                format!("a filter may hold at most {MAX_OPERATORS} operators and values"),
            ));
        }
        Ok(())
    }

    fn deep(&self, place: &str, depth: usize) -> Result<(), FilterError> {
        if depth > MAX_DEPTH {
            return Err(error(
                place,
                format!("a filter may nest at most {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    /// `{field: test, …, "$or": […], …}`: all of them.
    fn document(
        &mut self,
        value: &Value,
        place: &str,
        depth: usize,
    ) -> Result<Vec<Condition>, FilterError> {
        self.deep(place, depth)?;
        let Value::Object(map) = value else {
            return Err(error(
                place,
                format!(
                    "expected an object of fields and conditions, found {}",
                    kind(value)
                ),
            ));
        };
        let mut conditions = Vec::with_capacity(map.len());
        for (key, value) in map {
            let here = format!("{place}.{key}");
            conditions.push(match key.as_str() {
                "$or" | "$and" => {
                    self.count(&here)?;
                    let documents = self.documents(value, &here, depth + 1)?;
                    match key.as_str() {
                        "$or" => Condition::Or(documents),
                        _ => Condition::And(documents),
                    }
                }
                "$not" => {
                    self.count(&here)?;
                    Condition::Not(self.document(value, &here, depth + 1)?)
                }
                operator if FIELD_OPERATORS.contains(&operator) => {
                    return Err(error(
                        &here,
                        format!("{operator} tests a field: put it under one, as {{\"data.status\": {{\"{operator}\": …}}}}"),
                    ));
                }
                operator if operator.starts_with('$') => return Err(unknown(&here, operator)),
                field => Condition::Field(path(field, &here)?, self.test(value, &here, depth + 1)?),
            });
        }
        Ok(conditions)
    }

    /// The operand of `$or` / `$and`: a non-empty list of documents.
    fn documents(
        &mut self,
        value: &Value,
        place: &str,
        depth: usize,
    ) -> Result<Vec<Vec<Condition>>, FilterError> {
        match value {
            Value::Array(items) if !items.is_empty() => items
                .iter()
                .enumerate()
                .map(|(i, item)| self.document(item, &format!("{place}[{i}]"), depth))
                .collect(),
            _ => Err(error(place, "expected a non-empty list of documents")),
        }
    }

    /// What a field must satisfy: operators, a nested document, or a plain value.
    fn test(&mut self, value: &Value, place: &str, depth: usize) -> Result<Test, FilterError> {
        self.deep(place, depth)?;
        match value {
            Value::Object(map) if map.keys().any(|k| k.starts_with('$')) => {
                if map.keys().any(|k| FIELD_OPERATORS.contains(&k.as_str())) {
                    self.operators_of(map, place).map(Test::Operators)
                } else {
                    self.document(value, place, depth).map(Test::Document)
                }
            }
            Value::Object(_) => self.document(value, place, depth).map(Test::Document),
            plain => {
                self.count(place)?;
                Ok(Test::Equals(plain.clone()))
            }
        }
    }

    fn operators_of(
        &mut self,
        map: &Map<String, Value>,
        place: &str,
    ) -> Result<Vec<Operator>, FilterError> {
        let mut operators = Vec::with_capacity(map.len());
        for (key, operand) in map {
            let here = format!("{place}.{key}");
            self.count(&here)?;
            let wants = |what: &str| {
                error(
                    &here,
                    format!("{key} wants {what}, found {}", kind(operand)),
                )
            };
            let ordered = || match operand {
                Value::Number(n) => n
                    .as_f64()
                    .map(Ordered::Number)
                    .ok_or_else(|| wants("a number or a string")),
                Value::String(s) => Ok(Ordered::Text(s.clone())),
                _ => Err(wants("a number or a string")),
            };
            let list = || match operand {
                Value::Array(items) => Ok(items.clone()),
                _ => Err(wants("a list")),
            };
            let text = || match operand {
                Value::String(s) => Ok(s.clone()),
                _ => Err(wants("a string")),
            };
            operators.push(match key.as_str() {
                "$eq" => Operator::Eq(operand.clone()),
                "$neq" => Operator::Neq(operand.clone()),
                "$gt" => Operator::Gt(ordered()?),
                "$gte" => Operator::Gte(ordered()?),
                "$lt" => Operator::Lt(ordered()?),
                "$lte" => Operator::Lte(ordered()?),
                "$in" => Operator::In(list()?),
                "$nin" => Operator::Nin(list()?),
                "$startsWith" => Operator::StartsWith(text()?),
                "$endsWith" => Operator::EndsWith(text()?),
                "$contains" => Operator::Contains(operand.clone()),
                "$exist" => match operand {
                    Value::Bool(b) => Operator::Exist(*b),
                    _ => return Err(wants("true or false")),
                },
                other if other.starts_with('$') => return Err(unknown(&here, other)),
                field => {
                    return Err(error(
                        &here,
                        format!("\"{field}\" is a field among operators: a condition is either operators or fields, not both"),
                    ))
                }
            });
        }
        Ok(operators)
    }
}

fn unknown(place: &str, operator: &str) -> FilterError {
    error(
        place,
        format!(
            "unknown operator {operator}; the operators are {}, $or, $and and $not",
            FIELD_OPERATORS.join(", ")
        ),
    )
}

/// A key as a path: `data.order.status` is three fields deep.
fn path(key: &str, place: &str) -> Result<Vec<String>, FilterError> {
    if key.split('.').any(str::is_empty) {
        return Err(error(place, "a field name has an empty part"));
    }
    Ok(key.split('.').map(str::to_string).collect())
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
