//! EC2 filter values in SQL. EC2 filter values are case-sensitive and may
//! use `*` (any run of characters) and `?` (any one character), with `\`
//! escaping either (or itself). SQLite's GLOB is case-sensitive with the
//! same two wildcards, but also treats `[` as a character class, so
//! literals are bracketed: `[*]`, `[?]`, `[[]`.

use rusqlite::types::Value;

/// The GLOB pattern matching what EC2 pattern `ec2` matches.
pub fn ec2_to_glob(ec2: &str) -> String {
    let mut glob = String::with_capacity(ec2.len() + 4);
    let mut chars = ec2.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' => glob.push('*'),
            '?' => glob.push('?'),
            // A trailing lone backslash stands for itself.
            '\\' => push_literal(&mut glob, chars.next().unwrap_or('\\')),
            c => push_literal(&mut glob, c),
        }
    }
    glob
}

fn push_literal(glob: &mut String, c: char) {
    match c {
        '*' => glob.push_str("[*]"),
        '?' => glob.push_str("[?]"),
        '[' => glob.push_str("[[]"),
        c => glob.push(c),
    }
}

/// A WHERE clause built from optional conditions, with its parameters in
/// order. Conditions are ANDed; each filter's values are ORed, as EC2 does.
#[derive(Default)]
pub struct Conditions {
    clauses: Vec<String>,
    params: Vec<Value>,
}

impl Conditions {
    /// `column IN (...)` for exact values; nothing if `values` is empty.
    pub fn any_equal(&mut self, column: &str, values: &[String]) {
        if values.is_empty() {
            return;
        }
        let marks = vec!["?"; values.len()].join(", ");
        self.clauses.push(format!("{column} IN ({marks})"));
        self.params.extend(values.iter().cloned().map(Value::Text));
    }

    /// `(column GLOB ? OR ...)` for EC2 patterns; nothing if empty.
    pub fn any_pattern(&mut self, column: &str, patterns: &[String]) {
        if patterns.is_empty() {
            return;
        }
        self.clauses.push(glob_any(column, patterns.len()));
        self.params
            .extend(patterns.iter().map(|p| Value::Text(ec2_to_glob(p))));
    }

    /// The resource has tag `key` with a value matching any of `patterns`
    /// (`tag:KEY` filters).
    pub fn tag_matches(&mut self, id_column: &str, key: &str, patterns: &[String]) {
        let mut clause =
            format!("EXISTS (SELECT 1 FROM tags t WHERE t.resource_id = {id_column} AND t.key = ?");
        self.params.push(Value::Text(key.to_string()));
        if !patterns.is_empty() {
            clause.push_str(" AND ");
            clause.push_str(&glob_any("t.value", patterns.len()));
            self.params
                .extend(patterns.iter().map(|p| Value::Text(ec2_to_glob(p))));
        }
        clause.push(')');
        self.clauses.push(clause);
    }

    /// The resource has a tag whose key matches any of `patterns`
    /// (`tag-key` filters).
    pub fn tag_key_matches(&mut self, id_column: &str, patterns: &[String]) {
        if patterns.is_empty() {
            return;
        }
        self.clauses.push(format!(
            "EXISTS (SELECT 1 FROM tags t WHERE t.resource_id = {id_column} AND {})",
            glob_any("t.key", patterns.len())
        ));
        self.params
            .extend(patterns.iter().map(|p| Value::Text(ec2_to_glob(p))));
    }

    /// Any other condition with its parameters.
    pub fn raw(&mut self, clause: &str, params: impl IntoIterator<Item = Value>) {
        self.clauses.push(clause.to_string());
        self.params.extend(params);
    }

    /// ` WHERE a AND b`, or "" when there is no condition.
    pub fn where_sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }

    pub fn params(&self) -> &[Value] {
        &self.params
    }
}

fn glob_any(column: &str, count: usize) -> String {
    let alternatives = vec![format!("{column} GLOB ?"); count];
    format!("({})", alternatives.join(" OR "))
}
