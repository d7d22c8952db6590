//! XML replies in EC2's Query-protocol shape:
//!
//! ```text
//! <?xml version="1.0" encoding="UTF-8"?>
//! <DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
//!   <requestId>…</requestId>
//!   <reservationSet><item>…</item></reservationSet>
//! </DescribeInstancesResponse>
//! ```
//!
//! Element names are the `locationName`s of botocore's output shapes
//! (`instancesSet`, `tagSet`, `instanceState`, …); lists are a wrapper named
//! after the member with one `<item>` per element, which is what
//! botocore's EC2 parser expects for every non-flattened list.
//!
//! Handlers write through [`XmlWriter`] with closures for nesting, so that
//! start and end tags always pair up:
//!
//! ```text
//! let xml = ec2_response("TerminateInstances", &request_id, |x| {
//!     x.list("instancesSet", &changes, |x, change| {
//!         x.text("instanceId", &change.id);
//!         x.element("currentState", |x| { x.int("code", 48).text("name", "terminated"); });
//!     });
//! })?;
//! ```

use std::fmt::Display;

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use thiserror::Error;

use super::clock;

pub const XMLNS: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";

#[derive(Debug, Error)]
pub enum ResponseError {
    /// A handler passed a name that is not an XML name: a bug, reported
    /// rather than turned into a reply no client could parse.
    #[error("{0:?} is not a valid XML element name")]
    InvalidElementName(String),
    #[error("cannot write XML: {0}")]
    Write(#[from] std::io::Error),
}

/// Builds one XML document; errors are kept and reported by `finish`, so
/// that handler code can chain calls without `?` on each element.
pub struct XmlWriter {
    writer: Writer<Vec<u8>>,
    error: Option<ResponseError>,
}

impl XmlWriter {
    /// A document with the XML declaration EC2 sends and nothing else yet.
    pub fn new() -> Self {
        let mut x = XmlWriter {
            writer: Writer::new(Vec::with_capacity(1024)),
            error: None,
        };
        x.write(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
        x.write(Event::Text(BytesText::from_escaped("\n")));
        x
    }

    fn write(&mut self, event: Event<'_>) {
        if self.error.is_none()
            && let Err(e) = self.writer.write_event(event)
        {
            self.error = Some(ResponseError::Write(e));
        }
    }

    fn check_name(&mut self, name: &str) -> bool {
        if is_xml_name(name) {
            return true;
        }
        if self.error.is_none() {
            self.error = Some(ResponseError::InvalidElementName(
                name.chars().take(64).collect(),
            ));
        }
        false
    }

    /// `<name xmlns="…EC2…">` … `</name>`: a document's root element.
    pub fn root(&mut self, name: &str, body: impl FnOnce(&mut XmlWriter)) -> &mut Self {
        if self.check_name(name) {
            let start = BytesStart::new(name).with_attributes([("xmlns", XMLNS)]);
            self.write(Event::Start(start));
            body(self);
            self.write(Event::End(BytesEnd::new(name)));
        }
        self
    }

    /// `<name>` … `</name>`: a nested structure.
    pub fn element(&mut self, name: &str, body: impl FnOnce(&mut XmlWriter)) -> &mut Self {
        if self.check_name(name) {
            self.write(Event::Start(BytesStart::new(name)));
            body(self);
            self.write(Event::End(BytesEnd::new(name)));
        }
        self
    }

    /// `<name>value</name>`, escaped.
    pub fn text(&mut self, name: &str, value: &str) -> &mut Self {
        if self.check_name(name) {
            self.write(Event::Start(BytesStart::new(name)));
            let escaped = escape_text(value);
            self.write(Event::Text(BytesText::from_escaped(escaped)));
            self.write(Event::End(BytesEnd::new(name)));
        }
        self
    }

    /// `text` when there is a value; nothing otherwise, which botocore reads
    /// as an absent member (as EC2 leaves out e.g. `keyName`).
    pub fn opt_text(&mut self, name: &str, value: Option<&str>) -> &mut Self {
        if let Some(value) = value {
            self.text(name, value);
        }
        self
    }

    /// `<name>true</name>` / `false`.
    pub fn bool(&mut self, name: &str, value: bool) -> &mut Self {
        self.text(name, if value { "true" } else { "false" })
    }

    /// Any integer (or other `Display` value whose text needs no escaping).
    pub fn int(&mut self, name: &str, value: impl Display) -> &mut Self {
        self.text(name, &value.to_string())
    }

    /// `<name>2024-05-06T07:08:09.010Z</name>` from Unix milliseconds.
    pub fn timestamp_ms(&mut self, name: &str, unix_ms: i64) -> &mut Self {
        self.text(name, &clock::iso8601_millis(unix_ms))
    }

    /// `<name><item>…</item>…</name>`; an empty list is `<name/>`, which
    /// botocore reads as `[]`.
    pub fn list<T>(
        &mut self,
        name: &str,
        items: impl IntoIterator<Item = T>,
        mut item: impl FnMut(&mut XmlWriter, T),
    ) -> &mut Self {
        if !self.check_name(name) {
            return self;
        }
        let mut items = items.into_iter().peekable();
        if items.peek().is_none() {
            self.write(Event::Empty(BytesStart::new(name)));
            return self;
        }
        self.write(Event::Start(BytesStart::new(name)));
        for value in items {
            self.write(Event::Start(BytesStart::new("item")));
            item(self, value);
            self.write(Event::End(BytesEnd::new("item")));
        }
        self.write(Event::End(BytesEnd::new(name)));
        self
    }

    /// A list of plain strings where each `<item>` holds a single element,
    /// e.g. `valueSet` → `<item><value>…</value></item>`.
    pub fn text_list<S: AsRef<str>>(
        &mut self,
        name: &str,
        member: &str,
        values: impl IntoIterator<Item = S>,
    ) -> &mut Self {
        self.list(name, values, |x, value| {
            x.text(member, value.as_ref());
        })
    }

    /// A list of plain strings, each the text of its `<item>`:
    /// `<supportedArchitectures><item>x86_64</item></supportedArchitectures>`
    /// (botocore reads a list of string shapes so).
    pub fn string_items<S: AsRef<str>>(
        &mut self,
        name: &str,
        values: impl IntoIterator<Item = S>,
    ) -> &mut Self {
        if !self.check_name(name) {
            return self;
        }
        let mut values = values.into_iter().peekable();
        if values.peek().is_none() {
            self.write(Event::Empty(BytesStart::new(name)));
            return self;
        }
        self.write(Event::Start(BytesStart::new(name)));
        for value in values {
            self.text("item", value.as_ref());
        }
        self.write(Event::End(BytesEnd::new(name)));
        self
    }

    /// The document's bytes, or the first error met while writing it.
    pub fn finish(self) -> Result<Vec<u8>, ResponseError> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.writer.into_inner()),
        }
    }
}

impl Default for XmlWriter {
    fn default() -> Self {
        Self::new()
    }
}

/// A complete success reply: `<{action}Response xmlns=…><requestId>…`, then
/// whatever `body` writes.
pub fn ec2_response(
    action: &str,
    request_id: &str,
    body: impl FnOnce(&mut XmlWriter),
) -> Result<Vec<u8>, ResponseError> {
    let mut x = XmlWriter::new();
    x.root(&format!("{action}Response"), |x| {
        x.text("requestId", request_id);
        body(x);
    });
    x.finish()
}

/// Element names are ours, not the client's, but checking them is cheap
/// and turns a typo into an error instead of a reply nothing can parse.
fn is_xml_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Escapes text content with quick-xml (`&`, `<`, `>`, `'`, `"`, and `\r`
/// as `&#13;`, which a raw one would lose to end-of-line normalisation);
/// first, characters XML 1.0 cannot carry at all (other C0 controls,
/// U+FFFE, U+FFFF) become U+FFFD, so that a stored value with such a byte
/// still yields a well-formed reply.
pub fn escape_text(value: &str) -> String {
    let sanitized: String = value
        .chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => '\u{fffd}',
            _ => c,
        })
        .collect();
    quick_xml::escape::escape(sanitized.as_str()).into_owned()
}
