//! The parsed file as a tree of values that remember where they were written.

use std::ops::Range;

use toml::de::{DeTable, DeValue};

pub type Span = Range<usize>;

#[derive(Debug, Clone)]
pub struct Node {
    pub span: Span,
    pub value: Value,
}

#[derive(Debug, Clone)]
pub enum Value {
    Str(String),
    /// As written in the file's radix: `0o027` stays an octal `27` (for a umask).
    Int {
        value: i128,
        radix: u32,
    },
    Float(String),
    Bool(bool),
    Datetime,
    Array(Vec<Node>),
    Table(Table),
}

/// Entries in the order of the file.
#[derive(Debug, Clone, Default)]
pub struct Table(pub Vec<Entry>);

#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    pub key_span: Span,
    pub node: Node,
}

impl Table {
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.0.iter().find(|e| e.key == key)
    }
}

impl Value {
    /// What a message calls this kind of value.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Str(_) => "a string",
            Value::Int { .. } => "an integer",
            Value::Float(_) => "a number",
            Value::Bool(_) => "a boolean",
            Value::Datetime => "a date",
            Value::Array(_) => "an array",
            Value::Table(_) => "a table",
        }
    }

    /// A scalar as command-line text (`None` for arrays, tables and dates).
    pub fn as_text(&self) -> Option<String> {
        Some(match self {
            Value::Str(s) => s.clone(),
            Value::Int { value, radix: 8 } => format!("0{value:o}"),
            Value::Int { value, .. } => value.to_string(),
            Value::Float(f) => f.clone(),
            Value::Bool(b) => b.to_string(),
            _ => return None,
        })
    }
}

pub fn table(t: &DeTable<'_>) -> Table {
    let mut entries: Vec<Entry> = t
        .iter()
        .map(|(k, v)| Entry {
            key: k.get_ref().to_string(),
            key_span: k.span(),
            node: node(v.span(), v.get_ref()),
        })
        .collect();
    entries.sort_by_key(|e| e.key_span.start);
    Table(entries)
}

fn node(span: Span, v: &DeValue<'_>) -> Node {
    let value = match v {
        DeValue::String(s) => Value::Str(s.to_string()),
        DeValue::Integer(i) => {
            let radix = i.radix();
            let digits = i.as_str().replace('_', "");
            match i128::from_str_radix(&digits, radix) {
                Ok(value) => Value::Int { value, radix },
                Err(_) => Value::Float(digits),
            }
        }
        DeValue::Float(f) => Value::Float(f.as_str().to_string()),
        DeValue::Boolean(b) => Value::Bool(*b),
        DeValue::Datetime(_) => Value::Datetime,
        DeValue::Array(a) => Value::Array(a.iter().map(|e| node(e.span(), e.get_ref())).collect()),
        DeValue::Table(t) => Value::Table(table(t)),
    };
    Node { span, value }
}
