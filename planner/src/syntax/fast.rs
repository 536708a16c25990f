//! A fast parser for the subset of KDL v2 that stacks are written in.
//!
//! It returns `None` — "ask the reference parser" — for anything outside that subset (raw and
//! multi-line strings, slashdash, type annotations, line continuations, `#inf`/`#nan`,
//! non-ASCII whitespace) and for every error, so the `kdl` crate stays the authority on what
//! KDL means and on error messages. Whatever this parser accepts, it must produce exactly the
//! tree the `kdl` crate would; `tests/kdl_compliance.rs` checks that against the KDL
//! compliance suite and with differential fuzzing.

use super::{Arg, Ident, Node, Prop, Value};
use crate::source::{FileId, Span};
use std::borrow::Cow;

/// Outside the fast subset, or not valid KDL: defer to the reference parser.
struct Defer;

type R<T> = Result<T, Defer>;

pub fn parse(file: FileId, text: &str) -> Option<Vec<Node<'_>>> {
    let mut p = Parser {
        s: text.as_bytes(),
        text,
        i: 0,
        file,
    };
    p.document().ok()
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
    file: FileId,
}

/// Code points KDL forbids anywhere in a document, plus non-ASCII newlines (which the fast
/// subset leaves to the reference parser).
fn deferred_char(c: char) -> bool {
    matches!(c as u32,
        0x00..=0x08 | 0x0B | 0x0C | 0x0E..=0x1F | 0x7F | 0x85 | 0x2028 | 0x2029
        | 0x200E..=0x200F | 0x202A..=0x202E | 0x2066..=0x2069 | 0xFEFF)
}

fn is_ident_byte(b: u8) -> bool {
    IDENT_BYTES[usize::from(b)]
}

/// Which bytes an identifier of the fast subset is made of, as a table: the scan asks once
/// per byte of every identifier in the stack.
const IDENT_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric();
        b += 1;
    }
    let punctuation = b"!$%&'*+,-.:<>?@^_`|~";
    let mut i = 0;
    while i < punctuation.len() {
        table[punctuation[i] as usize] = true;
        i += 1;
    }
    table
};

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn peek_at(&self, n: usize) -> Option<u8> {
        self.s.get(self.i + n).copied()
    }

    /// Steps over one character of comment or string content, deferring on code points KDL
    /// forbids (or the fast subset leaves to the reference parser).
    fn advance_char(&mut self) -> R<()> {
        let c = self.text[self.i..].chars().next().ok_or(Defer)?;
        if deferred_char(c) {
            return Err(Defer);
        }
        self.i += c.len_utf8();
        Ok(())
    }

    fn span(&self, start: usize, end: usize) -> Span {
        Span::new(self.file, start, end)
    }

    fn document(&mut self) -> R<Vec<Node<'a>>> {
        let nodes = self.nodes(false)?;
        if self.i != self.s.len() {
            return Err(Defer);
        }
        Ok(nodes)
    }

    fn nodes(&mut self, in_block: bool) -> R<Vec<Node<'a>>> {
        let mut nodes = Vec::new();
        loop {
            self.skip_line_space()?;
            match self.peek() {
                None if in_block => return Err(Defer),
                None => return Ok(nodes),
                Some(b'}') if in_block => return Ok(nodes),
                Some(b'}') => return Err(Defer),
                Some(_) => nodes.push(self.node()?),
            }
        }
    }

    /// Spaces, tabs, newlines and comments between nodes.
    fn skip_line_space(&mut self) -> R<()> {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\n' | b'\r') => self.i += 1,
                Some(b'/') if self.peek_at(1) == Some(b'/') => self.skip_line_comment()?,
                Some(b'/') if self.peek_at(1) == Some(b'*') => self.skip_block_comment()?,
                Some(b) if b >= 0x80 => return Err(Defer), // perhaps unicode whitespace
                _ => return Ok(()),
            }
        }
    }

    /// Spaces, tabs and block comments inside a node; returns whether any were skipped.
    fn skip_node_space(&mut self) -> R<bool> {
        let start = self.i;
        loop {
            match self.peek() {
                Some(b' ' | b'\t') => self.i += 1,
                Some(b'/') if self.peek_at(1) == Some(b'*') => self.skip_block_comment()?,
                Some(b'\\') => return Err(Defer), // line continuation
                Some(b) if b >= 0x80 => return Err(Defer),
                _ => return Ok(self.i > start),
            }
        }
    }

    /// `// …` up to (not including) the newline.
    fn skip_line_comment(&mut self) -> R<()> {
        self.i += 2;
        let rest = &self.text[self.i..];
        let end = rest.find(['\n', '\r']).unwrap_or(rest.len());
        if rest[..end].chars().any(deferred_char) {
            return Err(Defer);
        }
        self.i += end;
        Ok(())
    }

    /// `/* … */`, nested.
    fn skip_block_comment(&mut self) -> R<()> {
        self.i += 2;
        let mut depth = 1;
        while depth > 0 {
            match self.peek() {
                None => return Err(Defer),
                Some(b'/') if self.peek_at(1) == Some(b'*') => {
                    depth += 1;
                    self.i += 2;
                }
                Some(b'*') if self.peek_at(1) == Some(b'/') => {
                    depth -= 1;
                    self.i += 2;
                }
                Some(_) => self.advance_char()?,
            }
        }
        Ok(())
    }

    /// Whether the byte can end a token (what may follow an identifier, string or number).
    fn at_token_end(&self) -> bool {
        match self.peek() {
            None => true,
            Some(b' ' | b'\t' | b'\n' | b'\r' | b';' | b'}' | b'=') => true,
            Some(b'/') => matches!(self.peek_at(1), Some(b'/' | b'*')),
            _ => false,
        }
    }

    fn node(&mut self) -> R<Node<'a>> {
        let start = self.i;
        if matches!(self.peek(), Some(b'(' | b'#'))
            || (self.peek() == Some(b'/') && self.peek_at(1) == Some(b'-'))
        {
            return Err(Defer);
        }
        let (name_text, name_start, name_end) = self.string()?;
        let name = Ident {
            text: name_text,
            span: self.span(name_start, name_end),
        };
        let mut node = Node {
            name,
            type_annotation: None,
            entry_annotations: Vec::new(),
            args: Vec::new(),
            props: Vec::new(),
            children: Vec::new(),
            has_block: false,
            span: self.span(start, name_end),
        };
        let mut end = name_end;
        loop {
            let spaced = self.skip_node_space()?;
            match self.peek() {
                None | Some(b'\n' | b'\r' | b'}') => break,
                Some(b';') => {
                    self.i += 1;
                    break;
                }
                Some(b'/') if self.peek_at(1) == Some(b'/') => break,
                Some(b'/') if self.peek_at(1) == Some(b'-') => return Err(Defer),
                Some(b'{') => {
                    if !spaced {
                        return Err(Defer);
                    }
                    self.i += 1;
                    node.children = self.nodes(true)?;
                    self.i += 1; // the closing brace, checked by `nodes`
                    node.has_block = true;
                    end = self.i;
                    self.skip_node_space()?;
                    match self.peek() {
                        None | Some(b'\n' | b'\r' | b'}') => break,
                        Some(b';') => {
                            self.i += 1;
                            break;
                        }
                        Some(b'/') if self.peek_at(1) == Some(b'/') => break,
                        _ => return Err(Defer),
                    }
                }
                Some(_) => {
                    if !spaced {
                        return Err(Defer);
                    }
                    end = self.entry(&mut node)?;
                }
            }
        }
        node.span = self.span(start, end);
        Ok(node)
    }

    /// An argument or a `key=value` property; returns where it ends.
    fn entry(&mut self, node: &mut Node<'a>) -> R<usize> {
        let start = self.i;
        let starts_string = match self.peek() {
            Some(b'"') => true,
            Some(b'+' | b'-') => match self.peek_at(1) {
                Some(d) if d.is_ascii_digit() => false,
                Some(b'.') => !self.peek_at(2).is_some_and(|d| d.is_ascii_digit()),
                _ => true,
            },
            Some(b'.') => !self.peek_at(1).is_some_and(|d| d.is_ascii_digit()),
            Some(b) => is_ident_byte(b) && !b.is_ascii_digit(),
            None => false,
        };
        if starts_string {
            let (text, s, e) = self.string()?;
            // `key = value`: whitespace may surround the `=`.
            let after_token = self.i;
            self.skip_node_space()?;
            if self.peek() == Some(b'=') {
                self.i += 1;
                self.skip_node_space()?;
                let (value, vs, ve) = self.value()?;
                node.props.push(Prop {
                    key: Ident {
                        text,
                        span: self.span(s, e),
                    },
                    value,
                    value_span: self.span(vs, ve),
                    span: self.span(start, ve),
                });
                return Ok(ve);
            }
            self.i = after_token;
            node.args.push(Arg {
                value: Value::String(text),
                span: self.span(s, e),
            });
            return Ok(e);
        }
        let (value, s, e) = self.value()?;
        node.args.push(Arg {
            value,
            span: self.span(s, e),
        });
        Ok(e)
    }

    fn value(&mut self) -> R<(Value<'a>, usize, usize)> {
        let start = self.i;
        match self.peek() {
            Some(b'#') => {
                let rest = &self.s[self.i..];
                let (value, len) = if rest.starts_with(b"#true") {
                    (Value::Bool(true), 5)
                } else if rest.starts_with(b"#false") {
                    (Value::Bool(false), 6)
                } else if rest.starts_with(b"#null") {
                    (Value::Null, 5)
                } else {
                    return Err(Defer); // raw strings, #inf, #nan
                };
                self.i += len;
                if !self.at_token_end() {
                    return Err(Defer);
                }
                Ok((value, start, self.i))
            }
            Some(b) if b.is_ascii_digit() => self.number(),
            Some(b'+' | b'-') if self.peek_at(1).is_some_and(|d| d.is_ascii_digit()) => {
                self.number()
            }
            Some(b'(') | None => Err(Defer),
            Some(_) => {
                let (text, s, e) = self.string()?;
                Ok((Value::String(text), s, e))
            }
        }
    }

    /// An identifier string or a single-line quoted string: (value, start, end).
    fn string(&mut self) -> R<(Cow<'a, str>, usize, usize)> {
        let start = self.i;
        if self.peek() == Some(b'"') {
            return self.quoted();
        }
        while let Some(b) = self.peek() {
            if !is_ident_byte(b) {
                break;
            }
            self.i += 1;
        }
        if self.i == start || !self.at_token_end() {
            return Err(Defer);
        }
        let text = &self.text[start..self.i];
        let bytes = text.as_bytes();
        // Identifiers cannot look like numbers or be reserved words.
        let first_digit = bytes[0].is_ascii_digit();
        let signed_digit =
            matches!(bytes[0], b'+' | b'-') && bytes.get(1).is_some_and(|b| b.is_ascii_digit());
        let dotted_digit = {
            let rest = if matches!(bytes[0], b'+' | b'-') {
                &bytes[1..]
            } else {
                bytes
            };
            rest.first() == Some(&b'.') && rest.get(1).is_some_and(|b| b.is_ascii_digit())
        };
        if first_digit
            || signed_digit
            || dotted_digit
            || matches!(text, "true" | "false" | "null" | "inf" | "-inf" | "nan")
        {
            return Err(Defer);
        }
        Ok((Cow::Borrowed(text), start, self.i))
    }

    fn quoted(&mut self) -> R<(Cow<'a, str>, usize, usize)> {
        let start = self.i;
        if self.s[self.i..].starts_with(b"\"\"\"") {
            return Err(Defer); // multi-line string
        }
        self.i += 1;
        // Most strings have no escape: they are borrowed from the text as written. A string
        // with escapes is built up as it goes.
        let mut escaped: Option<String> = None;
        let mut run_start = self.i;
        let out = loop {
            match self.peek() {
                None | Some(b'\n' | b'\r') => return Err(Defer),
                Some(b'"') => {
                    let run = &self.text[run_start..self.i];
                    self.i += 1;
                    break match escaped {
                        Some(mut out) => {
                            out.push_str(run);
                            Cow::Owned(out)
                        }
                        None => Cow::Borrowed(run),
                    };
                }
                Some(b'\\') => {
                    let out = escaped.get_or_insert_with(String::new);
                    out.push_str(&self.text[run_start..self.i]);
                    let esc = self.peek_at(1).ok_or(Defer)?;
                    self.i += 2;
                    match esc {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b's' => out.push(' '),
                        b'u' => {
                            if self.peek() != Some(b'{') {
                                return Err(Defer);
                            }
                            let close = self.s[self.i..]
                                .iter()
                                .position(|&b| b == b'}')
                                .ok_or(Defer)?;
                            let hex = &self.text[self.i + 1..self.i + close];
                            if hex.is_empty()
                                || hex.len() > 6
                                || !hex.bytes().all(|b| b.is_ascii_hexdigit())
                            {
                                return Err(Defer);
                            }
                            let c = u32::from_str_radix(hex, 16)
                                .ok()
                                .and_then(char::from_u32)
                                .ok_or(Defer)?;
                            out.push(c);
                            self.i += close + 1;
                        }
                        _ => return Err(Defer), // whitespace escapes and invalid escapes
                    }
                    run_start = self.i;
                }
                // Printable ASCII, the usual content, is taken a run at a time; anything else
                // is checked as a character.
                Some(b' '..=b'~') => {
                    self.i += 1;
                    while let Some(b' '..=b'!' | b'#'..=b'[' | b']'..=b'~') = self.peek() {
                        self.i += 1;
                    }
                }
                Some(_) => self.advance_char()?,
            }
        };
        if !self.at_token_end() {
            return Err(Defer);
        }
        Ok((out, start, self.i))
    }

    fn number(&mut self) -> R<(Value<'a>, usize, usize)> {
        let start = self.i;
        while let Some(b) = self.peek() {
            if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'+' | b'-') {
                self.i += 1;
            } else {
                break;
            }
        }
        if !self.at_token_end() {
            return Err(Defer);
        }
        let token = &self.text[start..self.i];
        let (negative, body) = match token.as_bytes()[0] {
            b'-' => (true, &token[1..]),
            b'+' => (false, &token[1..]),
            _ => (false, token),
        };
        let radix = match body.get(..2) {
            Some("0x") => Some((16, "0123456789abcdefABCDEF")),
            Some("0o") => Some((8, "01234567")),
            Some("0b") => Some((2, "01")),
            _ => None,
        };
        let value = if let Some((radix, digits)) = radix {
            let ds = &body[2..];
            if ds.is_empty()
                || !digits.contains(ds.as_bytes()[0] as char)
                || !ds.chars().all(|c| c == '_' || digits.contains(c))
            {
                return Err(Defer);
            }
            let clean: String = ds.chars().filter(|c| *c != '_').collect();
            let n = i128::from_str_radix(&clean, radix).map_err(|_| Defer)?;
            Value::Integer(if negative { -n } else { n })
        } else {
            // decimal := integer ('.' integer)? exponent?  with integer := digit (digit | '_')*
            let (mantissa, exponent) = match body.find(['e', 'E']) {
                Some(e) => (&body[..e], Some(&body[e + 1..])),
                None => (body, None),
            };
            let (int_part, frac) = match mantissa.split_once('.') {
                Some((a, b)) => (a, Some(b)),
                None => (mantissa, None),
            };
            let is_integer = |s: &str| {
                s.as_bytes().first().is_some_and(u8::is_ascii_digit)
                    && s.bytes().all(|b| b.is_ascii_digit() || b == b'_')
            };
            if !is_integer(int_part) || frac.is_some_and(|f| !is_integer(f)) {
                return Err(Defer);
            }
            if let Some(exp) = exponent {
                let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
                if !is_integer(digits) {
                    return Err(Defer);
                }
            }
            // The reference reads each digit run of a float as an i128 and refuses one that
            // overflows it; so does this parser (found by fuzzing, `docs/FUZZING.md`).
            let fits = |sign: &str, digits: &str| {
                format!("{sign}{}", digits.replace('_', ""))
                    .parse::<i128>()
                    .is_ok()
            };
            let is_float = frac.is_some() || exponent.is_some();
            if is_float
                && (!fits(if negative { "-" } else { "" }, int_part)
                    || frac.is_some_and(|f| !fits("", f))
                    || exponent.is_some_and(|e| !fits("", e.trim_start_matches(['+', '-']))))
            {
                return Err(Defer);
            }
            let clean: String = token.chars().filter(|c| *c != '_').collect();
            if frac.is_none() && exponent.is_none() {
                Value::Integer(clean.parse::<i128>().map_err(|_| Defer)?)
            } else {
                let f: f64 = clean.parse().map_err(|_| Defer)?;
                if !f.is_finite() {
                    return Err(Defer);
                }
                Value::Float(f)
            }
        };
        Ok((value, start, self.i))
    }
}
