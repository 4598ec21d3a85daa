//! The data Kamal's config is made of: what Ruby's Psych hands over after ERB + YAML.
//!
//! Arrays and hashes sit behind `Arc`, so that two YAML aliases of one node stay one node (cheap to
//! share, and a node that contains itself is caught where Ruby hands it over). `kamal config` prints
//! them as separate copies: Kamal prints `Kamal::Utils.redacted(config.to_h)`, which rebuilds them.

use std::fmt;
use std::sync::Arc;

#[derive(Clone, Debug)]
pub enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// A Ruby Symbol (`:fatal`, or `:verbose` written in the YAML).
    Sym(String),
    Seq(Arc<Vec<Value>>),
    Map(Arc<Map>),
    /// A Ruby object that YAML shows as `!ruby/object:<class>` with its instance variables
    /// (Kamal's `ssh.proxy` is a `Net::SSH::Proxy::Jump`).
    Object(Arc<Object>),
    /// Any other Ruby object (a `Date` from an unquoted date, say): not interpreted, handed back as it came.
    Foreign(u32),
}

#[derive(Clone, Debug, Default)]
pub struct Map {
    entries: Vec<(Value, Value)>,
}

#[derive(Clone, Debug)]
pub struct Object {
    pub class: String,
    pub ivars: Map,
}

impl Map {
    pub fn new() -> Self {
        Map::default()
    }

    pub fn with_capacity(n: usize) -> Self {
        Map {
            entries: Vec::with_capacity(n),
        }
    }

    /// Inserts or replaces, keeping the first position of a key (Ruby's `Hash#[]=`).
    pub fn insert(&mut self, key: Value, value: Value) {
        if let Some(slot) = self.entries.iter_mut().find(|(k, _)| k.same_key(&key)) {
            slot.1 = value;
        } else {
            self.entries.push((key, value));
        }
    }

    /// `insert` with a String key.
    pub fn set(&mut self, key: &str, value: Value) {
        self.insert(Value::Str(key.to_string()), value);
    }

    /// `insert` with a Symbol key, as Kamal's own hashes (`to_h`) have.
    pub fn set_sym(&mut self, key: &str, value: Value) {
        self.insert(Value::Sym(key.to_string()), value);
    }

    /// Lookup by String key, as Kamal's `config["key"]`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries
            .iter()
            .find(|(k, _)| matches!(k, Value::Str(s) if s == key))
            .map(|(_, v)| v)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn iter(&self) -> impl Iterator<Item = &(Value, Value)> {
        self.entries.iter()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Keys as Ruby's `to_s` shows them.
    pub fn key_names(&self) -> Vec<String> {
        self.entries.iter().map(|(k, _)| k.to_ruby_s()).collect()
    }

    /// A copy without the given String keys (`Hash#except`).
    pub fn except(&self, keys: &[&str]) -> Map {
        Map {
            entries: self
                .entries
                .iter()
                .filter(|(k, _)| !matches!(k, Value::Str(s) if keys.contains(&s.as_str())))
                .cloned()
                .collect(),
        }
    }
}

impl FromIterator<(Value, Value)> for Map {
    fn from_iter<T: IntoIterator<Item = (Value, Value)>>(iter: T) -> Self {
        let mut map = Map::new();
        for (k, v) in iter {
            map.insert(k, v);
        }
        map
    }
}

impl Value {
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    pub fn sym(s: impl Into<String>) -> Value {
        Value::Sym(s.into())
    }

    pub fn seq(items: Vec<Value>) -> Value {
        Value::Seq(Arc::new(items))
    }

    pub fn strs<S: AsRef<str>>(items: &[S]) -> Value {
        Value::seq(items.iter().map(|s| Value::str(s.as_ref())).collect())
    }

    pub fn map(map: Map) -> Value {
        Value::Map(Arc::new(map))
    }

    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }

    pub fn as_map(&self) -> Option<&Map> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Value]> {
        match self {
            Value::Seq(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// Ruby truthiness: only nil and false are false.
    pub fn truthy(&self) -> bool {
        !matches!(self, Value::Nil | Value::Bool(false))
    }

    /// ActiveSupport's `blank?`: nil, false, whitespace-only strings, empty arrays and hashes.
    pub fn is_blank(&self) -> bool {
        match self {
            Value::Nil | Value::Bool(false) => true,
            Value::Str(s) => s.trim().is_empty(),
            Value::Sym(s) => s.is_empty(),
            Value::Seq(s) => s.is_empty(),
            Value::Map(m) => m.is_empty(),
            _ => false,
        }
    }

    pub fn is_present(&self) -> bool {
        !self.is_blank()
    }

    /// What Kamal's validator accepts where it wants a String: strings, symbols, numbers and booleans.
    pub fn is_stringish(&self) -> bool {
        matches!(
            self,
            Value::Str(_) | Value::Sym(_) | Value::Int(_) | Value::Float(_) | Value::Bool(_)
        )
    }

    /// Ruby's `to_s` of a scalar (how Kamal interpolates a value into a string).
    pub fn to_ruby_s(&self) -> String {
        match self {
            Value::Nil => String::new(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => ruby_float_to_s(*f),
            Value::Str(s) | Value::Sym(s) => s.clone(),
            Value::Seq(_) | Value::Map(_) => format!("{self}"),
            Value::Object(o) => format!("#<{}>", o.class),
            Value::Foreign(_) => "#<Object>".to_string(),
        }
    }

    /// Two values are the same Hash key (Ruby's `eql?` for the scalars configs use).
    fn same_key(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Nil, Value::Nil) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a == b,
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Sym(a), Value::Sym(b)) => a == b,
            (Value::Seq(a), Value::Seq(b)) => Arc::ptr_eq(a, b),
            (Value::Map(a), Value::Map(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// ActiveSupport's `deep_merge`: hashes merge key by key (recursively), anything else from `other` wins.
    pub fn deep_merge(&self, other: &Value) -> Value {
        match (self, other) {
            (Value::Map(a), Value::Map(b)) => {
                let mut merged = (**a).clone();
                for (k, v) in b.iter() {
                    let new = match merged.entries.iter().find(|(mk, _)| mk.same_key(k)) {
                        Some((_, old @ Value::Map(_))) if matches!(v, Value::Map(_)) => {
                            old.deep_merge(v)
                        }
                        _ => v.clone(),
                    };
                    merged.insert(k.clone(), new);
                }
                Value::map(merged)
            }
            _ => other.clone(),
        }
    }
}

/// Ruby's `Float#to_s` for the values that appear in configs.
fn ruby_float_to_s(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else if f.fract() == 0.0 && f.abs() < 1e16 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

/// A Ruby-`inspect`-like rendering, used only in messages.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => write!(f, "nil"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Sym(s) => write!(f, ":{s}"),
            Value::Seq(items) => {
                write!(f, "[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{v}")?;
                }
                write!(f, "]")
            }
            Value::Map(m) => {
                write!(f, "{{")?;
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{k}=>{v}")?;
                }
                write!(f, "}}")
            }
            other => write!(f, "{}", other.to_ruby_s()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pairs: &[(&str, Value)]) -> Value {
        let mut map = Map::new();
        for (k, v) in pairs {
            map.set(k, v.clone());
        }
        Value::map(map)
    }

    #[test]
    fn deep_merge_merges_hashes_and_replaces_the_rest() {
        let base = m(&[
            ("a", m(&[("x", Value::Int(1)), ("y", Value::Int(2))])),
            ("list", Value::strs(&["a", "b"])),
        ]);
        let dest = m(&[
            ("a", m(&[("y", Value::Int(3))])),
            ("list", Value::strs(&["c"])),
        ]);
        let merged = base.deep_merge(&dest);
        let a = merged.as_map().unwrap().get("a").unwrap().as_map().unwrap();
        assert_eq!(a.get("x").unwrap().as_int(), Some(1));
        assert_eq!(a.get("y").unwrap().as_int(), Some(3));
        assert_eq!(
            merged
                .as_map()
                .unwrap()
                .get("list")
                .unwrap()
                .as_seq()
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn blank_follows_active_support() {
        assert!(Value::Nil.is_blank());
        assert!(Value::str("  ").is_blank());
        assert!(Value::seq(vec![]).is_blank());
        assert!(!Value::Int(0).is_blank());
        assert!(Value::Bool(false).is_blank());
    }
}
