//! Finding the `api_key` field of a JSON body as the body arrives, without parsing the body: an
//! unauthenticated request is refused after its first bytes, never after its whole body has been
//! buffered and turned into a tree. Clients put the key first (inference-sdk builds its payloads
//! from `{"api_key": ...}`), so only the first [`SCAN_LIMIT`] bytes are looked at: a key after a
//! large image must come in the query or an `Authorization` header instead.

/// How much of a body the key is looked for in.
pub const SCAN_LIMIT: usize = 64 * 1024;

/// The longest key value read; a longer one is not a key this server could have.
const MAX_KEY_BYTES: usize = 4096;

/// What the scan has found so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// The body so far does not tell: feed more.
    Undecided,
    /// The top-level `api_key` string (raw JSON text, escapes decoded).
    Key(String),
    /// No usable key: the body is not a JSON object, its `api_key` is not a string, or the object
    /// ended without one.
    NoKey,
    /// No key in the first [`SCAN_LIMIT`] bytes.
    NotWithinLimit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Before the top-level `{`.
    Object,
    /// A key (or the end of the object) at the top level.
    Key,
    /// The `:` after a top-level key.
    Colon,
    /// A top-level value.
    Value,
    /// The rest of a value (nested, or a scalar), then `,` or `}`.
    Rest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Text {
    /// A top-level key: its bytes are kept (up to the length of `api_key` plus one).
    Key,
    /// The value of `api_key`: kept, up to [`MAX_KEY_BYTES`].
    KeyValue,
    /// Any other string: skipped.
    Other,
}

/// An incremental scan over the body's bytes; feed it chunks as they arrive.
#[derive(Debug)]
pub struct KeyScan {
    expect: Expect,
    /// Open objects and arrays.
    depth: usize,
    /// Inside a string, and which.
    text: Option<Text>,
    escaped: bool,
    /// The current key's or key value's bytes.
    token: Vec<u8>,
    /// The last top-level key was `api_key`.
    api_key: bool,
    seen: usize,
    found: Found,
}

impl Default for KeyScan {
    fn default() -> Self {
        KeyScan {
            expect: Expect::Object,
            depth: 0,
            text: None,
            escaped: false,
            token: Vec::new(),
            api_key: false,
            seen: 0,
            found: Found::Undecided,
        }
    }
}

impl KeyScan {
    /// Scans `chunk`; once decided, further chunks change nothing.
    pub fn feed(&mut self, chunk: &[u8]) -> &Found {
        for &byte in chunk {
            if self.found != Found::Undecided {
                break;
            }
            if self.seen == SCAN_LIMIT {
                self.found = Found::NotWithinLimit;
                break;
            }
            self.seen += 1;
            match self.text {
                Some(text) => self.in_string(text, byte),
                None => self.outside_strings(byte),
            }
        }
        &self.found
    }

    /// The body ended: undecided means no key.
    pub fn finish(&mut self) -> &Found {
        if self.found == Found::Undecided {
            self.found = Found::NoKey;
        }
        &self.found
    }

    fn in_string(&mut self, text: Text, byte: u8) {
        let keep = |token: &mut Vec<u8>, byte: u8| {
            let room = if text == Text::Key { "api_key".len() + 1 } else { MAX_KEY_BYTES + 1 };
            if text != Text::Other && token.len() < room {
                token.push(byte);
            }
        };
        if self.escaped {
            self.escaped = false;
            keep(&mut self.token, byte);
            return;
        }
        match byte {
            b'\\' => {
                self.escaped = true;
                keep(&mut self.token, byte);
            }
            b'"' => self.end_string(text),
            _ => keep(&mut self.token, byte),
        }
    }

    fn end_string(&mut self, text: Text) {
        self.text = None;
        match text {
            Text::Key => {
                self.api_key = self.token == b"api_key";
                self.expect = Expect::Colon;
            }
            Text::KeyValue => {
                self.found = match decoded(&self.token) {
                    Some(key) => Found::Key(key),
                    None => Found::NoKey,
                };
            }
            Text::Other => {}
        }
        self.token.clear();
    }

    fn outside_strings(&mut self, byte: u8) {
        if byte.is_ascii_whitespace() {
            return;
        }
        let top = self.depth == 1;
        match (self.expect, byte) {
            (Expect::Object, b'{') => {
                self.depth = 1;
                self.expect = Expect::Key;
            }
            (Expect::Object, _) => self.found = Found::NoKey,
            (Expect::Key, b'"') if top => self.text = Some(Text::Key),
            (Expect::Key, b'}') if top => self.found = Found::NoKey,
            (Expect::Colon, b':') if top => self.expect = Expect::Value,
            (Expect::Value, b'"') if top && self.api_key => self.text = Some(Text::KeyValue),
            // `api_key` with a value that is not a string (`null`, a number): no key.
            (Expect::Value, _) if top && self.api_key => self.found = Found::NoKey,
            (Expect::Value, _) if top => {
                self.expect = Expect::Rest;
                self.outside_value(byte);
            }
            (Expect::Rest, b',') if top => self.expect = Expect::Key,
            (Expect::Rest, b'}') if top => self.found = Found::NoKey,
            (Expect::Rest, _) => self.outside_value(byte),
            // Not JSON as an object holds it: the handler will say so; there is no key here.
            _ => self.found = Found::NoKey,
        }
    }

    /// A byte of a value being skipped (at any depth).
    fn outside_value(&mut self, byte: u8) {
        match byte {
            b'"' => self.text = Some(Text::Other),
            b'{' | b'[' => self.depth += 1,
            b'}' | b']' => {
                self.depth -= 1;
                if self.depth == 0 {
                    self.found = Found::NoKey;
                }
            }
            _ => {}
        }
    }
}

/// The string's raw bytes (between the quotes) with JSON's escapes decoded; `None` when they are
/// not a valid JSON string or too long to be a key.
fn decoded(raw: &[u8]) -> Option<String> {
    if raw.len() > MAX_KEY_BYTES {
        return None;
    }
    let mut quoted = Vec::with_capacity(raw.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(raw);
    quoted.push(b'"');
    serde_json::from_slice(&quoted).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(body: &str) -> Found {
        let mut scan = KeyScan::default();
        scan.feed(body.as_bytes());
        scan.finish().clone()
    }

    /// The same body fed one byte at a time (chunks split anywhere).
    fn scan_bytewise(body: &str) -> Found {
        let mut scan = KeyScan::default();
        for b in body.as_bytes() {
            scan.feed(&[*b]);
        }
        scan.finish().clone()
    }

    #[test]
    fn finds_the_top_level_key_wherever_the_chunks_split() {
        for body in [
            r#"{"api_key": "k1", "image": {"type": "base64", "value": "aGk="}}"#,
            r#"{"model_id":"a/1","image":[{"type":"url","value":"x\"y"}],"api_key":"k1"}"#,
            "{\n  \"confidence\": 0.5, \"nested\": {\"api_key\": \"no\"}, \"api_key\" : \"k1\"\n}",
            r#"{"list": [1, [2, {"a": "}"}]], "api_key": "k\u0031"}"#,
        ] {
            assert_eq!(scan(body), Found::Key("k1".into()), "{body}");
            assert_eq!(scan_bytewise(body), Found::Key("k1".into()), "{body}");
        }
    }

    #[test]
    fn a_missing_or_unusable_key_is_no_key() {
        for body in [
            r#"{"model_id": "a/1"}"#,
            r#"{"nested": {"api_key": "k1"}}"#,
            r#"{"api_key": null, "x": 1}"#,
            r#"{"api_key": 12}"#,
            r#"["api_key", "k1"]"#,
            r#""api_key""#,
            "",
            "{",
            r#"{"api_key": "k1"#,
        ] {
            assert_eq!(scan(body), Found::NoKey, "{body}");
        }
    }

    #[test]
    fn only_the_first_bytes_are_looked_at() {
        let padding = "x".repeat(SCAN_LIMIT);
        let late = format!(r#"{{"image": "{padding}", "api_key": "k1"}}"#);
        assert_eq!(scan(&late), Found::NotWithinLimit);
        let early = format!(r#"{{"api_key": "k1", "image": "{padding}"}}"#);
        let mut scan = KeyScan::default();
        assert_eq!(scan.feed(&early.as_bytes()[..20]), &Found::Key("k1".into()), "decided from the first bytes");
    }

    #[test]
    fn an_overlong_key_value_is_no_key() {
        let long = "k".repeat(MAX_KEY_BYTES + 1);
        assert_eq!(scan(&format!(r#"{{"api_key": "{long}"}}"#)), Found::NoKey);
    }
}
