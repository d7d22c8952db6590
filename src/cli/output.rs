//! `--query EXPR` and `--output json|text|table`, as the aws CLI applies
//! them to a reply: the JMESPath expression (the `jmespath` crate, the
//! reference Rust implementation) runs on the JSON result, then the
//! result is printed in the chosen format. `text` follows awscli's
//! `text.py` (tab-separated; dict keys sorted; one line per object of a
//! list, with the union of the list's scalar keys; nested lists and
//! objects on lines of their own, prefixed with their key upper-cased).
//! `table` is a simple boxed rendering of the same shapes.
//!
//! The crate's objects are sorted maps; Python's keep their order. So that
//! `json` prints keys as aws does, an object of the result takes the key
//! order of the reply's object with the same keys (the model's order), or
//! of the `{a: .., b: ..}` multiselect in the expression that made it.

use std::collections::HashMap;
use std::fmt::Write as _;

use jmespath::{Expression, Variable};
use serde::Serialize;
use serde_json::Value;

use super::xml_json::Json;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Json,
    Text,
    Table,
}

impl Format {
    pub fn parse(text: &str) -> Result<Format, String> {
        match text {
            "json" => Ok(Format::Json),
            "text" => Ok(Format::Text),
            "table" => Ok(Format::Table),
            other => Err(format!(
                "invalid choice: {other:?} (choose from \"json\", \"text\", \"table\")"
            )),
        }
    }
}

/// A compiled `--query`; the error text is jmespath's, worded as aws's.
pub fn compile(expr: &str) -> Result<Expression<'static>, String> {
    jmespath::compile(&legacy_literals(expr))
        .map_err(|e| format!("Bad value for --query {expr}: {}", e.to_string().trim_end()))
}

/// Python jmespath (the aws CLI's) still takes the deprecated literal form
/// `` `running` ``: a backquoted text that is not JSON is the JSON string
/// of it (`"%s" % lexeme.lstrip()`). The crate follows the spec and
/// refuses it; this rewrites such literals, leaving quoted identifiers
/// ("...") and raw strings ('...') as they are.
pub fn legacy_literals(expr: &str) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {
                out.push(c);
                while let Some(d) = chars.next() {
                    out.push(d);
                    if d == '\\' {
                        if let Some(e) = chars.next() {
                            out.push(e);
                        }
                    } else if d == c {
                        break;
                    }
                }
            }
            '`' => {
                let mut lexeme = String::new();
                let mut closed = false;
                while let Some(d) = chars.next() {
                    if d == '\\' && chars.peek() == Some(&'`') {
                        chars.next();
                        lexeme.push('`');
                    } else if d == '`' {
                        closed = true;
                        break;
                    } else {
                        lexeme.push(d);
                    }
                }
                let literal = if !closed || serde_json::from_str::<Value>(&lexeme).is_ok() {
                    lexeme.replace('`', "\\`")
                } else {
                    serde_json::to_string(lexeme.trim_start()).unwrap_or_default()
                };
                out.push('`');
                out.push_str(&literal);
                if closed {
                    out.push('`');
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// The reply as a JSON value (numbers stay numbers).
pub fn to_value(j: &Json) -> Value {
    match j {
        Json::Obj(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), to_value(v))).collect()),
        Json::Arr(a) => Value::Array(a.iter().map(to_value).collect()),
        Json::Str(s) => Value::String(s.clone()),
        Json::Num(n) => n
            .parse::<serde_json::Number>()
            .map_or_else(|_| Value::String(n.clone()), Value::Number),
        Json::Bool(b) => Value::Bool(*b),
    }
}

/// `--query` on the reply: the value it selects.
pub fn search(expr: &Expression<'static>, value: Value) -> Result<Variable, String> {
    let var = Variable::try_from(value).map_err(|e| e.to_string())?;
    expr.search(var)
        .map(|r| (*r).clone())
        .map_err(|e| e.to_string())
}

/// Key orders by key set: the sorted keys → the order to print them in.
#[derive(Debug, Default)]
pub struct KeyOrder(HashMap<Vec<String>, Vec<String>>);

impl KeyOrder {
    fn add(&mut self, keys: Vec<String>) {
        let mut sorted = keys.clone();
        sorted.sort();
        self.0.entry(sorted).or_insert(keys);
    }

    /// The orders of every object in the reply and of every multiselect
    /// hash in the expression (these first: they are the user's).
    pub fn new(reply: &Json, expr: Option<&Expression<'static>>) -> KeyOrder {
        let mut order = KeyOrder::default();
        if let Some(e) = expr {
            order.add_ast(e.as_ast());
        }
        order.add_reply(reply);
        order
    }

    fn add_reply(&mut self, j: &Json) {
        match j {
            Json::Obj(m) => {
                self.add(m.iter().map(|(k, _)| k.clone()).collect());
                for (_, v) in m {
                    self.add_reply(v);
                }
            }
            Json::Arr(a) => a.iter().for_each(|v| self.add_reply(v)),
            _ => {}
        }
    }

    fn add_ast(&mut self, ast: &jmespath::ast::Ast) {
        use jmespath::ast::Ast;
        match ast {
            Ast::MultiHash { elements, .. } => {
                self.add(elements.iter().map(|kv| kv.key.clone()).collect());
                elements.iter().for_each(|kv| self.add_ast(&kv.value));
            }
            Ast::Comparison { lhs, rhs, .. }
            | Ast::Projection { lhs, rhs, .. }
            | Ast::And { lhs, rhs, .. }
            | Ast::Or { lhs, rhs, .. }
            | Ast::Subexpr { lhs, rhs, .. } => {
                self.add_ast(lhs);
                self.add_ast(rhs);
            }
            Ast::Condition {
                predicate, then, ..
            } => {
                self.add_ast(predicate);
                self.add_ast(then);
            }
            Ast::Expref { ast, .. } => self.add_ast(ast),
            Ast::Flatten { node, .. } | Ast::Not { node, .. } | Ast::ObjectValues { node, .. } => {
                self.add_ast(node)
            }
            Ast::Function { args, .. } => args.iter().for_each(|a| self.add_ast(a)),
            Ast::MultiList { elements, .. } => elements.iter().for_each(|a| self.add_ast(a)),
            _ => {}
        }
    }

    /// `map`'s keys in print order: a known order, else sorted.
    fn keys<'a>(
        &self,
        map: &'a std::collections::BTreeMap<String, jmespath::Rcvar>,
    ) -> Vec<&'a String> {
        let sorted: Vec<String> = map.keys().cloned().collect();
        match self.0.get(&sorted) {
            Some(order) => order
                .iter()
                .filter_map(|k| map.get_key_value(k).map(|(k, _)| k))
                .collect(),
            None => map.keys().collect(),
        }
    }
}

/// What is printed for `var` (without the final newline handling: the
/// result is exactly what goes to stdout). `title` heads a table (aws
/// uses the operation name).
pub fn render(var: &Variable, format: Format, title: &str, order: &KeyOrder) -> String {
    match format {
        Format::Json => json(var, order),
        Format::Text => {
            let mut out = String::new();
            text(var, None, None, order, &mut out);
            out
        }
        Format::Table => table(var, title),
    }
}

/// Python's `json.dumps(v, indent=4, ensure_ascii=False)` and a newline;
/// nothing for `{}` (the aws CLI prints no empty reply).
fn json(var: &Variable, order: &KeyOrder) -> String {
    if matches!(var, Variable::Object(m) if m.is_empty()) {
        return String::new();
    }
    let mut s = String::new();
    json_value(var, 0, order, &mut s);
    s.push('\n');
    s
}

fn json_value(var: &Variable, indent: usize, order: &KeyOrder, out: &mut String) {
    let pad = |n: usize| " ".repeat(n * 4);
    match var {
        Variable::Object(m) if m.is_empty() => out.push_str("{}"),
        Variable::Array(a) if a.is_empty() => out.push_str("[]"),
        Variable::Object(m) => {
            out.push_str("{\n");
            let keys = order.keys(m);
            for (i, k) in keys.iter().enumerate() {
                out.push_str(&pad(indent + 1));
                out.push_str(&serde_json::to_string(k).unwrap_or_default());
                out.push_str(": ");
                json_value(&m[*k], indent + 1, order, out);
                out.push_str(if i + 1 < keys.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(indent));
            out.push('}');
        }
        Variable::Array(a) => {
            out.push_str("[\n");
            for (i, v) in a.iter().enumerate() {
                out.push_str(&pad(indent + 1));
                json_value(v, indent + 1, order, out);
                out.push_str(if i + 1 < a.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(indent));
            out.push(']');
        }
        // Scalars as serde_json writes them (strings escaped as Python's
        // json.dumps with ensure_ascii=False does).
        other => {
            let mut buf = Vec::new();
            let mut ser = serde_json::Serializer::new(&mut buf);
            if other.serialize(&mut ser).is_ok() {
                out.push_str(&String::from_utf8_lossy(&buf));
            }
        }
    }
}

/// Python's `str()` of a scalar, as awscli's text output writes it.
fn scalar(var: &Variable) -> String {
    match var {
        Variable::String(s) => s.clone(),
        Variable::Number(n) => n.to_string(),
        Variable::Bool(true) => "True".to_string(),
        Variable::Bool(false) => "False".to_string(),
        Variable::Null => "None".to_string(),
        // Not reached: callers pass scalars only.
        other => other.to_string(),
    }
}

/// Python's `str()` of any value: `repr()` inside lists and dicts.
fn python_str(var: &Variable, order: &KeyOrder) -> String {
    match var {
        Variable::String(s) => s.clone(),
        other => python_repr(other, order),
    }
}

fn python_repr(var: &Variable, order: &KeyOrder) -> String {
    match var {
        Variable::String(s) => {
            // Python quotes with ' unless the text has ' and no ".
            let q = if s.contains('\'') && !s.contains('"') {
                '"'
            } else {
                '\''
            };
            let mut out = String::from(q);
            for c in s.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if c == q => {
                        out.push('\\');
                        out.push(c);
                    }
                    c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                        out.push_str(&format!("\\x{:02x}", c as u32));
                    }
                    c => out.push(c),
                }
            }
            out.push(q);
            out
        }
        Variable::Array(a) => {
            let items: Vec<String> = a.iter().map(|v| python_repr(v, order)).collect();
            format!("[{}]", items.join(", "))
        }
        Variable::Object(m) => {
            let items: Vec<String> = order
                .keys(m)
                .into_iter()
                .map(|k| {
                    format!(
                        "{}: {}",
                        python_repr(&Variable::String(k.clone()), order),
                        python_repr(&m[k], order)
                    )
                })
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        other => scalar(other),
    }
}

fn is_scalar(var: &Variable) -> bool {
    !matches!(var, Variable::Array(_) | Variable::Object(_))
}

/// awscli `text._format_text`.
fn text(
    var: &Variable,
    id: Option<&str>,
    keys: Option<&[String]>,
    order: &KeyOrder,
    out: &mut String,
) {
    match var {
        Variable::Object(_) => text_dict(var, id, keys, order, out),
        Variable::Array(items) => text_list(items, id, order, out),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

fn text_list(items: &[jmespath::Rcvar], id: Option<&str>, order: &KeyOrder, out: &mut String) {
    if items.is_empty() {
        return;
    }
    if items.iter().any(|v| v.is_object()) {
        let keys = scalar_keys(items);
        for item in items {
            text(item, id, Some(&keys), order, out);
        }
    } else if items.iter().any(|v| v.is_array()) {
        let scalars: Vec<&Variable> = items
            .iter()
            .filter(|v| is_scalar(v))
            .map(|v| &**v)
            .collect();
        if !scalars.is_empty() {
            scalar_list(&scalars, id, out);
        }
        for item in items.iter().filter(|v| !is_scalar(v)) {
            text(item, id, None, order, out);
        }
    } else {
        let all: Vec<&Variable> = items.iter().map(|v| &**v).collect();
        scalar_list(&all, id, out);
    }
}

fn scalar_list(items: &[&Variable], id: Option<&str>, out: &mut String) {
    match id {
        Some(id) => {
            for item in items {
                let _ = writeln!(out, "{}\t{}", id.to_uppercase(), scalar(item));
            }
        }
        None => {
            let line: Vec<String> = items.iter().map(|v| scalar(v)).collect();
            out.push_str(&line.join("\t"));
            out.push('\n');
        }
    }
}

fn text_dict(
    var: &Variable,
    id: Option<&str>,
    keys: Option<&[String]>,
    order: &KeyOrder,
    out: &mut String,
) {
    let Some(map) = var.as_object() else { return };
    let mut scalars = Vec::new();
    let mut nested: Vec<(&String, &Variable)> = Vec::new();
    match keys {
        None => {
            // BTreeMap: already in sorted key order, as Python's sorted().
            for (k, v) in map {
                if is_scalar(v) {
                    scalars.push(scalar(v));
                } else {
                    nested.push((k, v));
                }
            }
        }
        Some(keys) => {
            for k in keys {
                // A key that is scalar in another object of the list:
                // str() of whatever this one has there, as Python does.
                scalars.push(
                    map.get(k)
                        .map_or_else(String::new, |v| python_str(v, order)),
                );
            }
            for (k, v) in map {
                if !keys.contains(k) {
                    nested.push((k, v));
                }
            }
        }
    }
    if !scalars.is_empty() {
        if let Some(id) = id {
            scalars.insert(0, id.to_uppercase());
        }
        out.push_str(&scalars.join("\t"));
        out.push('\n');
    }
    for (k, v) in nested {
        text(v, Some(k), None, order, out);
    }
}

/// One box of a table: an optional title, column headers, rows.
struct Section {
    title: String,
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

fn sections(var: &Variable, title: &str, out: &mut Vec<Section>) {
    match var {
        Variable::Object(map) => {
            let scalars: Vec<(&String, &jmespath::Rcvar)> =
                map.iter().filter(|(_, v)| is_scalar(v)).collect();
            if !scalars.is_empty() {
                out.push(Section {
                    title: title.to_string(),
                    headers: scalars.iter().map(|(k, _)| (*k).clone()).collect(),
                    rows: vec![scalars.iter().map(|(_, v)| scalar(v)).collect()],
                });
            } else {
                out.push(Section {
                    title: title.to_string(),
                    headers: Vec::new(),
                    rows: Vec::new(),
                });
            }
            for (k, v) in map.iter().filter(|(_, v)| !is_scalar(v)) {
                sections(v, k, out);
            }
        }
        Variable::Array(items) => {
            let scalars: Vec<&jmespath::Rcvar> = items.iter().filter(|v| is_scalar(v)).collect();
            let keys = scalar_keys(items);
            let mut rows: Vec<Vec<String>> = scalars.iter().map(|v| vec![scalar(v)]).collect();
            for m in items.iter().filter_map(|v| v.as_object()) {
                rows.push(
                    keys.iter()
                        .map(|k| m.get(k).map_or_else(String::new, |v| scalar(v)))
                        .collect(),
                );
            }
            out.push(Section {
                title: title.to_string(),
                headers: keys,
                rows,
            });
            for item in items.iter().filter(|v| !is_scalar(v)) {
                match &**item {
                    Variable::Object(m) => {
                        for (k, v) in m.iter().filter(|(_, v)| !is_scalar(v)) {
                            sections(v, k, out);
                        }
                    }
                    other => sections(other, title, out),
                }
            }
        }
        other => out.push(Section {
            title: title.to_string(),
            headers: Vec::new(),
            rows: vec![vec![scalar(other)]],
        }),
    }
}

fn table(var: &Variable, title: &str) -> String {
    if matches!(var, Variable::Object(m) if m.is_empty()) {
        return String::new();
    }
    let mut all = Vec::new();
    sections(var, title, &mut all);
    // Drop boxes with nothing in them but a title, except the first.
    let mut out = String::new();
    for (i, s) in all.iter().enumerate() {
        if i > 0 && s.headers.is_empty() && s.rows.is_empty() {
            continue;
        }
        draw(s, &mut out);
    }
    out
}

fn width(s: &str) -> usize {
    s.chars().count()
}

fn draw(s: &Section, out: &mut String) {
    let columns = s
        .headers
        .len()
        .max(s.rows.iter().map(Vec::len).max().unwrap_or(0));
    let mut widths = vec![0usize; columns];
    for row in std::iter::once(&s.headers).chain(&s.rows) {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(width(cell));
        }
    }
    // Cells are "| x " (3 + width each) and a closing "|".
    let mut inner = widths
        .iter()
        .map(|w| w + 3)
        .sum::<usize>()
        .saturating_sub(1);
    if inner < width(&s.title) + 2 {
        // Widen the last column so the title fits.
        let extra = width(&s.title) + 2 - inner;
        if let Some(last) = widths.last_mut() {
            *last += extra;
        }
        inner += extra;
    }
    let dashes = |n: usize| "-".repeat(n);
    let _ = writeln!(out, "{}", dashes(inner + 2));
    let pad = inner - width(&s.title);
    let _ = writeln!(
        out,
        "|{}{}{}|",
        " ".repeat(pad / 2),
        s.title,
        " ".repeat(pad - pad / 2)
    );
    let rule = |out: &mut String| {
        let cells: Vec<String> = widths.iter().map(|w| dashes(w + 2)).collect();
        let _ = writeln!(out, "+{}+", cells.join("+"));
    };
    let line = |out: &mut String, row: &[String], center: bool| {
        out.push('|');
        for (i, w) in widths.iter().enumerate() {
            let cell = row.get(i).map_or("", String::as_str);
            let gap = w - width(cell);
            if center {
                let _ = write!(
                    out,
                    " {}{}{} |",
                    " ".repeat(gap / 2),
                    cell,
                    " ".repeat(gap - gap / 2)
                );
            } else {
                let _ = write!(out, " {cell}{} |", " ".repeat(gap));
            }
        }
        out.push('\n');
    };
    if columns == 0 {
        let _ = writeln!(out, "{}", dashes(inner + 2));
        return;
    }
    rule(out);
    if !s.headers.is_empty() {
        line(out, &s.headers, true);
        rule(out);
    }
    for row in &s.rows {
        line(out, row, false);
    }
    rule(out);
}

/// The sorted union of the scalar keys of a list's objects (the columns of
/// text and table output).
fn scalar_keys(items: &[jmespath::Rcvar]) -> Vec<String> {
    let mut keys: Vec<String> = items
        .iter()
        .filter_map(|v| v.as_object())
        .flat_map(|m| {
            m.iter()
                .filter(|(_, v)| is_scalar(v))
                .map(|(k, _)| k.clone())
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}
