//! The YAML document as a tree that remembers where every key and value
//! stands, so validation can report `file:line:column` for each problem.
//!
//! serde-saphyr parses; its `Spanned` wrapper gives us positions. We keep our
//! own small [`Node`] tree instead of typed structs at this stage because
//! typed deserialization stops at the first error, and operators deserve all
//! of them at once.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use super::origin::Origin;

/// One value of the configuration tree and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub value: Value,
    pub origin: Origin,
    /// The value was produced by `${VAR}` interpolation: it may carry a
    /// secret even though its key does not look secret.
    pub interpolated: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

/// A mapping key with its own position (for "unknown key" errors).
#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    pub name: String,
    pub origin: Origin,
}

impl Node {
    pub fn new(value: Value, origin: Origin) -> Self {
        Self {
            value,
            origin,
            interpolated: false,
        }
    }

    /// The child under `key` of a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// A short rendering of a scalar for messages (`[mapping]`, `[list]` otherwise).
    pub fn describe(&self) -> String {
        match &self.value {
            Value::Null => "null".into(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(x) => x.to_string(),
            Value::String(s) => format!("{s:?}"),
            Value::Seq(_) => "a list".into(),
            Value::Map(_) => "a mapping".into(),
        }
    }

    /// The tree as plain JSON, for schema validation and typed decoding.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(x) => serde_json::Number::from_f64(*x).map_or(J::Null, J::Number),
            Value::String(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// The node at a JSON pointer (`/app/build/context`), for mapping schema
    /// errors back to positions.
    pub fn at_pointer(&self, pointer: &str) -> Option<&Node> {
        let mut node = self;
        for raw in pointer.split('/').skip(1) {
            let part = raw.replace("~1", "/").replace("~0", "~");
            node = match &node.value {
                Value::Map(entries) => entries
                    .iter()
                    .find(|(k, _)| k.name == part)
                    .map(|(_, v)| v)?,
                Value::Seq(items) => items.get(part.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// The key node for the last segment of a pointer into a mapping.
    pub fn key_at_pointer(&self, pointer: &str) -> Option<&Key> {
        let (parent, last) = pointer.rsplit_once('/')?;
        let last = last.replace("~1", "/").replace("~0", "~");
        match &self.at_pointer(parent)?.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k.name == last).map(|(k, _)| k),
            _ => None,
        }
    }
}

/// A YAML syntax or structure error with its position.
#[derive(Debug, Clone)]
pub struct ParseError {
    pub message: String,
    pub line: u64,
    pub column: u64,
}

/// Parses YAML text into a [`Node`] tree whose origins name `path`.
/// An empty document is an empty mapping.
pub fn parse(text: &str, path: &Arc<PathBuf>) -> Result<Node, ParseError> {
    if text.trim().is_empty() {
        return Ok(Node::new(
            Value::Map(Vec::new()),
            Origin::Yaml {
                path: path.clone(),
                line: 1,
                column: 1,
            },
        ));
    }
    let spanned: Spanned<RawValue> = serde_saphyr::from_str(text).map_err(|e| {
        let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
        // The library's message may embed a source snippet; keep the first line.
        let full = e.without_snippet().to_string();
        let message = full.lines().next().unwrap_or("invalid YAML").to_string();
        ParseError {
            message,
            line,
            column,
        }
    })?;
    Ok(convert(spanned, path))
}

fn convert(spanned: Spanned<RawValue>, path: &Arc<PathBuf>) -> Node {
    let origin = origin_of(&spanned.referenced, path);
    let value = match spanned.value {
        RawValue::Null => Value::Null,
        RawValue::Bool(b) => Value::Bool(b),
        RawValue::Int(i) => Value::Int(i),
        RawValue::Float(x) => Value::Float(x),
        RawValue::String(s) => Value::String(s),
        RawValue::Seq(items) => Value::Seq(items.into_iter().map(|i| convert(i, path)).collect()),
        RawValue::Map(entries) => Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| {
                    let key = Key {
                        origin: origin_of(&k.referenced, path),
                        name: k.value,
                    };
                    (key, convert(v, path))
                })
                .collect(),
        ),
    };
    Node::new(value, origin)
}

fn origin_of(loc: &serde_saphyr::Location, path: &Arc<PathBuf>) -> Origin {
    Origin::Yaml {
        path: path.clone(),
        line: loc.line(),
        column: loc.column(),
    }
}

/// What serde-saphyr hands us, before positions get their file name.
enum RawValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    Seq(Vec<Spanned<RawValue>>),
    Map(Vec<(Spanned<String>, Spanned<RawValue>)>),
}

impl<'de> Deserialize<'de> for RawValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = RawValue;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<RawValue, E> {
        Ok(RawValue::Null)
    }
    fn visit_none<E>(self) -> Result<RawValue, E> {
        Ok(RawValue::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<RawValue, E> {
        Ok(RawValue::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<RawValue, E> {
        Ok(RawValue::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawValue, E> {
        i64::try_from(v)
            .map(RawValue::Int)
            .map_err(|_| E::custom(format!("the number {v} is too large")))
    }
    fn visit_f64<E>(self, v: f64) -> Result<RawValue, E> {
        Ok(RawValue::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<RawValue, E> {
        Ok(RawValue::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<RawValue, E> {
        Ok(RawValue::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawValue, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<RawValue>>()? {
            items.push(item);
        }
        Ok(RawValue::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawValue, A::Error> {
        let mut entries: Vec<(Spanned<String>, Spanned<RawValue>)> = Vec::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            let value = map.next_value::<Spanned<RawValue>>()?;
            if entries.iter().any(|(k, _)| k.value == key.value) {
                return Err(de::Error::custom(format!("duplicate key `{}`", key.value)));
            }
            entries.push((key, value));
        }
        Ok(RawValue::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> Arc<PathBuf> {
        Arc::new(PathBuf::from("deployment.yml"))
    }

    #[test]
    fn positions_of_keys_and_values() {
        let n = parse("app:\n  name: events\n  port: 8080\n", &p()).unwrap();
        let name = n.at_pointer("/app/name").unwrap();
        assert_eq!(name.value, Value::String("events".into()));
        assert_eq!(name.origin.to_string(), "deployment.yml:2:9");
        let key = n.key_at_pointer("/app/port").unwrap();
        assert_eq!(key.origin.to_string(), "deployment.yml:3:3");
        assert_eq!(n.at_pointer("/app/port").unwrap().value, Value::Int(8080));
    }

    #[test]
    fn malformed_yaml_reports_position() {
        let err = parse("app:\n  name: [unclosed\n  port: 1\n", &p()).unwrap_err();
        assert!(err.line >= 2, "line {}", err.line);
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let err = parse("a: 1\na: 2\n", &p()).unwrap_err();
        assert!(err.message.contains("duplicate"), "{}", err.message);
    }

    #[test]
    fn to_json_round_trip() {
        let n = parse("a: [1, true, x, null]\nb: {c: 1.5}\n", &p()).unwrap();
        assert_eq!(
            n.to_json(),
            serde_json::json!({"a": [1, true, "x", null], "b": {"c": 1.5}})
        );
    }
}
