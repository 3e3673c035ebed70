//! The settings file as a YAML tree that remembers where every key and value stood.
//!
//! Typed decoding (`decode.rs`) walks this tree instead of letting serde fill structs
//! directly: that way one run reports *every* problem (unknown keys, wrong types,
//! missing keys) with its line and column, not just the first one serde meets.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;

/// A 1-based line and column in the settings file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Location {
    /// 1-based line; 0 when unknown.
    pub line: u32,
    /// 1-based column; 0 when unknown.
    pub column: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// What kind of scalar the YAML parser saw (YAML 1.2 core schema).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalarKind {
    Str,
    Int,
    Float,
    Bool,
    Null,
}

impl ScalarKind {
    /// How a message names this kind ("a number", "a string", ...).
    pub fn describe(self) -> &'static str {
        match self {
            ScalarKind::Str => "a string",
            ScalarKind::Int => "an integer",
            ScalarKind::Float => "a number",
            ScalarKind::Bool => "a boolean",
            ScalarKind::Null => "nothing (null)",
        }
    }
}

/// One YAML value with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub at: Location,
    pub value: Value,
}

/// The shape of a YAML value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A mapping, in file order, keys with their own positions.
    Map(Vec<(Key, Node)>),
    /// A sequence.
    Seq(Vec<Node>),
    /// A scalar: its text as the parser resolved it, and its kind.
    Scalar(String, ScalarKind),
}

impl Value {
    /// How a message names this shape.
    pub fn describe(&self) -> &'static str {
        match self {
            Value::Map(_) => "a mapping",
            Value::Seq(_) => "a list",
            Value::Scalar(_, kind) => kind.describe(),
        }
    }
}

/// A mapping key with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub at: Location,
}

/// A YAML syntax error, located.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub at: Location,
    pub message: String,
}

/// Parse YAML text into a located tree. An empty document is an empty mapping.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    if text.trim().is_empty() {
        return Ok(Node { at: Location { line: 1, column: 1 }, value: Value::Map(Vec::new()) });
    }
    // YAML 1.2 core schema, as Go's YAML readers on the nodes use: `yes`/`on` and
    // `0755` stay strings instead of turning into a boolean and an octal number.
    let mut options = serde_saphyr::Options::default();
    options.strict_booleans = true;
    options.leading_zero_numbers_as_strings = true;
    match serde_saphyr::from_str_with_options::<Spanned<RawNode>>(text, options) {
        Ok(root) => Ok(root.into()),
        Err(err) => {
            let at = err.location().map(|l| Location { line: l.line() as u32, column: l.column() as u32 }).unwrap_or_default();
            // The library's message carries a source snippet after the first line; we print
            // our own location prefix, so keep only the sentence.
            let message = err.to_string();
            let message = message.lines().next().unwrap_or("invalid YAML").to_string();
            let message = strip_location_prefix(&message);
            Err(SyntaxError { at, message })
        }
    }
}

/// serde-saphyr prefixes messages with "error: line L column C: "; we print
/// `FILE:L:C:` ourselves.
fn strip_location_prefix(message: &str) -> String {
    let m = message.strip_prefix("error: ").unwrap_or(message);
    if let Some(rest) = m.strip_prefix("line ")
        && let Some(idx) = rest.find(": ")
        && rest[..idx].contains("column")
    {
        return rest[idx + 2..].to_string();
    }
    m.to_string()
}

/// What serde-saphyr fills: a tree with `Spanned` on every node.
enum RawNode {
    Map(Vec<(Spanned<RawKey>, Spanned<RawNode>)>),
    Seq(Vec<Spanned<RawNode>>),
    Scalar(String, ScalarKind),
}

/// Keys are kept as text whatever their scalar type (`1: x` has key "1").
struct RawKey(String);

fn loc(s: &serde_saphyr::Location) -> Location {
    Location { line: s.line() as u32, column: s.column() as u32 }
}

impl From<Spanned<RawNode>> for Node {
    fn from(s: Spanned<RawNode>) -> Self {
        let at = loc(&s.referenced);
        let value = match s.value {
            RawNode::Map(entries) => {
                Value::Map(entries.into_iter().map(|(k, v)| (Key { name: k.value.0, at: loc(&k.referenced) }, Node::from(v))).collect())
            }
            RawNode::Seq(items) => Value::Seq(items.into_iter().map(Node::from).collect()),
            RawNode::Scalar(text, kind) => Value::Scalar(text, kind),
        };
        Node { at, value }
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = RawNode;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_str<E>(self, v: &str) -> Result<RawNode, E> {
        Ok(RawNode::Scalar(v.to_string(), ScalarKind::Str))
    }
    fn visit_string<E>(self, v: String) -> Result<RawNode, E> {
        Ok(RawNode::Scalar(v, ScalarKind::Str))
    }
    fn visit_i64<E>(self, v: i64) -> Result<RawNode, E> {
        Ok(RawNode::Scalar(v.to_string(), ScalarKind::Int))
    }
    fn visit_u64<E>(self, v: u64) -> Result<RawNode, E> {
        Ok(RawNode::Scalar(v.to_string(), ScalarKind::Int))
    }
    fn visit_i128<E>(self, v: i128) -> Result<RawNode, E> {
        Ok(RawNode::Scalar(v.to_string(), ScalarKind::Int))
    }
    fn visit_u128<E>(self, v: u128) -> Result<RawNode, E> {
        Ok(RawNode::Scalar(v.to_string(), ScalarKind::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<RawNode, E> {
        Ok(RawNode::Scalar(v.to_string(), ScalarKind::Float))
    }
    fn visit_bool<E>(self, v: bool) -> Result<RawNode, E> {
        Ok(RawNode::Scalar(v.to_string(), ScalarKind::Bool))
    }
    fn visit_unit<E>(self) -> Result<RawNode, E> {
        Ok(RawNode::Scalar(String::new(), ScalarKind::Null))
    }
    fn visit_none<E>(self) -> Result<RawNode, E> {
        Ok(RawNode::Scalar(String::new(), ScalarKind::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<RawNode, D::Error> {
        d.deserialize_any(RawVisitor)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawNode, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(RawNode::Map(entries))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawNode, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(RawNode::Seq(items))
    }
}

impl<'de> Deserialize<'de> for RawNode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

impl<'de> Deserialize<'de> for RawKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match RawNode::deserialize(d)? {
            RawNode::Scalar(text, _) => Ok(RawKey(text)),
            _ => Err(serde::de::Error::custom("mapping keys must be plain names, not lists or mappings")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_positions_of_keys_and_values() {
        let node = parse("cluster:\n  name: demo\nnodes:\n  - name: a\n").unwrap();
        let Value::Map(top) = &node.value else { panic!("not a map") };
        assert_eq!(top[0].0.name, "cluster");
        assert_eq!(top[0].0.at, Location { line: 1, column: 1 });
        let Value::Map(cluster) = &top[0].1.value else { panic!() };
        assert_eq!(cluster[0].1.at, Location { line: 2, column: 9 });
        let Value::Seq(nodes) = &top[1].1.value else { panic!() };
        assert_eq!(nodes[0].at.line, 4);
    }

    #[test]
    fn scalar_kinds_follow_yaml_core_schema() {
        let node = parse("a: 1.30\nb: \"1.30\"\nc: yes\nd: true\ne:\n").unwrap();
        let Value::Map(m) = node.value else { panic!() };
        let kinds: Vec<_> = m
            .iter()
            .map(|(_, n)| match &n.value {
                Value::Scalar(t, k) => (t.clone(), *k),
                _ => panic!(),
            })
            .collect();
        assert_eq!(kinds[0], ("1.3".into(), ScalarKind::Float));
        assert_eq!(kinds[1], ("1.30".into(), ScalarKind::Str));
        assert_eq!(kinds[2].1, ScalarKind::Str, "YAML 1.2: `yes` is a string");
        assert_eq!(kinds[3].1, ScalarKind::Bool);
        assert_eq!(kinds[4].1, ScalarKind::Null);
    }

    #[test]
    fn syntax_errors_are_located() {
        let err = parse("a: 1\na: 2\n").unwrap_err();
        assert_eq!(err.at.line, 2);
        assert!(err.message.contains("duplicate"), "{}", err.message);
        assert!(!err.message.starts_with("error"), "{}", err.message);
    }
}
