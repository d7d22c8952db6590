//! The aws CLI's shorthand syntax for structure and list options:
//! `Name=tag:env,Values=prod,dev`,
//! `ResourceType=instance,Tags=[{Key=a,Value=b},{Key=c,Value=d}]`,
//! `HttpTokens=required`. JSON is accepted too. Values come out as
//! serde_json values (strings; the model decides the types later).

use serde_json::{Map, Value};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid shorthand {input:?}: {reason}")]
pub struct ShorthandError {
    pub input: String,
    pub reason: String,
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    input: &'a str,
}

impl Parser<'_> {
    fn err<T>(&self, reason: &str) -> Result<T, ShorthandError> {
        Err(ShorthandError {
            input: self.input.to_string(),
            reason: format!("{reason} at offset {}", self.pos),
        })
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|c| c == b' ') {
            self.pos += 1;
        }
    }

    /// `key=value,key=value` until the end or a `}`.
    fn structure(&mut self) -> Result<Map<String, Value>, ShorthandError> {
        let mut map = Map::new();
        loop {
            self.skip_ws();
            let start = self.pos;
            while self
                .peek()
                .is_some_and(|c| c != b'=' && c != b',' && c != b'}')
            {
                self.pos += 1;
            }
            if self.peek() != Some(b'=') {
                return self.err("expected key=value");
            }
            let key = String::from_utf8_lossy(&self.s[start..self.pos])
                .trim()
                .to_string();
            if key.is_empty() {
                return self.err("empty key");
            }
            self.pos += 1;
            let value = self.value()?;
            map.insert(key, value);
            match self.peek() {
                None => return Ok(map),
                Some(b'}') => return Ok(map),
                Some(b',') => self.pos += 1,
                _ => return self.err("expected ','"),
            }
        }
    }

    /// A value: `[…]`, `{…}`, or scalars — several scalars separated by
    /// commas (`Values=a,b`) form a list, up to the next `key=`.
    fn value(&mut self) -> Result<Value, ShorthandError> {
        self.skip_ws();
        match self.peek() {
            Some(b'[') => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_ws();
                    if self.peek() == Some(b']') {
                        self.pos += 1;
                        return Ok(Value::Array(items));
                    }
                    if self.peek() == Some(b'{') {
                        self.pos += 1;
                        items.push(Value::Object(self.structure()?));
                        if self.peek() != Some(b'}') {
                            return self.err("expected '}'");
                        }
                        self.pos += 1;
                    } else {
                        items.push(Value::String(self.scalar(b"],")?));
                    }
                    self.skip_ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {}
                        _ => return self.err("expected ',' or ']'"),
                    }
                }
            }
            Some(b'{') => {
                self.pos += 1;
                let map = self.structure()?;
                if self.peek() != Some(b'}') {
                    return self.err("expected '}'");
                }
                self.pos += 1;
                Ok(Value::Object(map))
            }
            _ => {
                let first = self.scalar(b",}")?;
                let mut items = vec![Value::String(first)];
                // Further bare values (no '=' before the next ',').
                while self.peek() == Some(b',') && !self.next_is_key() {
                    self.pos += 1;
                    items.push(Value::String(self.scalar(b",}")?));
                }
                Ok(if items.len() == 1 {
                    items.pop().unwrap_or(Value::Null)
                } else {
                    Value::Array(items)
                })
            }
        }
    }

    /// Whether the text after the ',' at `pos` is `key=`.
    fn next_is_key(&self) -> bool {
        let rest = &self.s[self.pos + 1..];
        let end = rest
            .iter()
            .position(|c| matches!(c, b',' | b'}' | b']' | b'[' | b'{'))
            .unwrap_or(rest.len());
        rest[..end].contains(&b'=')
    }

    fn scalar(&mut self, stops: &[u8]) -> Result<String, ShorthandError> {
        self.skip_ws();
        if let Some(q) = self.peek().filter(|c| *c == b'"' || *c == b'\'') {
            self.pos += 1;
            let start = self.pos;
            while self.peek().is_some_and(|c| c != q) {
                self.pos += 1;
            }
            if self.peek() != Some(q) {
                return self.err("unterminated quote");
            }
            let text = String::from_utf8_lossy(&self.s[start..self.pos]).into_owned();
            self.pos += 1;
            return Ok(text);
        }
        let start = self.pos;
        while self.peek().is_some_and(|c| !stops.contains(&c)) {
            self.pos += 1;
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.pos])
            .trim_end()
            .to_string())
    }
}

/// One option value: JSON if it parses as a JSON array or object, else
/// shorthand for a structure.
pub fn parse(input: &str) -> Result<Value, ShorthandError> {
    let trimmed = input.trim_start();
    if (trimmed.starts_with('[') || trimmed.starts_with('{'))
        && let Ok(v) = serde_json::from_str::<Value>(input)
    {
        return Ok(v);
    }
    let mut p = Parser {
        s: input.as_bytes(),
        pos: 0,
        input,
    };
    let map = p.structure()?;
    if p.pos != input.len() {
        return p.err("unexpected text");
    }
    Ok(Value::Object(map))
}
