//! A small reader for the EDN that Jepsen and Porcupine histories are written in: nil,
//! booleans, integers, floats, strings, characters, keywords, symbols, lists, vectors, maps
//! and sets, with comments, `#_` discards and tagged literals (the tag is dropped). Every form
//! carries the line it starts on, and every error names the line it was found on.

/// One EDN value.
#[derive(Debug, Clone, PartialEq)]
pub enum Edn {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Char(char),
    /// Without the leading colon.
    Keyword(String),
    Symbol(String),
    List(Vec<Form>),
    Vector(Vec<Form>),
    Set(Vec<Form>),
    Map(Vec<(Form, Form)>),
}

impl Edn {
    /// A short description for error messages: `a string`, `the keyword :foo`.
    pub fn describe(&self) -> String {
        match self {
            Edn::Nil => "nil".into(),
            Edn::Bool(b) => b.to_string(),
            Edn::Int(i) => format!("the integer {i}"),
            Edn::Float(f) => format!("the number {f}"),
            Edn::Str(s) if s.len() <= 40 => format!("the string {s:?}"),
            Edn::Str(_) => "a string".into(),
            Edn::Char(c) => format!("the character {c:?}"),
            Edn::Keyword(k) => format!("the keyword :{k}"),
            Edn::Symbol(s) => format!("the symbol {s}"),
            Edn::List(_) => "a list".into(),
            Edn::Vector(_) => "a vector".into(),
            Edn::Set(_) => "a set".into(),
            Edn::Map(_) => "a map".into(),
        }
    }
}

/// A value with the (1-based) line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Form {
    pub value: Edn,
    pub line: usize,
}

/// Malformed or truncated EDN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct EdnError {
    pub line: usize,
    pub message: String,
}

/// Reads top-level forms one at a time.
pub struct Reader<'a> {
    src: &'a [u8],
    pos: usize,
    line: usize,
}

/// How deep collections may nest before the input is rejected (no stack overflow on a file of
/// ten thousand `[`).
const MAX_DEPTH: usize = 64;

impl<'a> Reader<'a> {
    pub fn new(text: &'a str) -> Self {
        Reader {
            src: text.as_bytes(),
            pos: 0,
            line: 1,
        }
    }

    /// The next top-level form, or `None` at the end of the input.
    pub fn next_form(&mut self) -> Result<Option<Form>, EdnError> {
        self.skip_space()?;
        if self.pos >= self.src.len() {
            return Ok(None);
        }
        self.form(0).map(Some)
    }

    fn err<T>(&self, message: impl Into<String>) -> Result<T, EdnError> {
        Err(EdnError {
            line: self.line,
            message: message.into(),
        })
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    /// Skip whitespace, commas, comments and `#_` discarded forms.
    fn skip_space(&mut self) -> Result<(), EdnError> {
        while let Some(c) = self.peek() {
            match c {
                b'\n' => {
                    self.line += 1;
                    self.pos += 1;
                }
                b' ' | b'\t' | b'\r' | b',' | 0x0c => self.pos += 1,
                b';' => {
                    while self.peek().is_some_and(|c| c != b'\n') {
                        self.pos += 1;
                    }
                }
                b'#' if self.src.get(self.pos + 1) == Some(&b'_') => {
                    self.pos += 2;
                    self.skip_space()?;
                    if self.pos >= self.src.len() {
                        return self.err("unexpected end of input after #_");
                    }
                    self.form(0)?;
                }
                _ => break,
            }
        }
        Ok(())
    }

    fn form(&mut self, depth: usize) -> Result<Form, EdnError> {
        if depth > MAX_DEPTH {
            return self.err(format!("collections nested more than {MAX_DEPTH} deep"));
        }
        let line = self.line;
        let Some(c) = self.peek() else {
            return self.err("unexpected end of input");
        };
        let value = match c {
            b'(' => Edn::List(self.seq(b')', "list", line, depth)?),
            b'[' => Edn::Vector(self.seq(b']', "vector", line, depth)?),
            b'{' => {
                let items = self.seq(b'}', "map", line, depth)?;
                if items.len() % 2 != 0 {
                    return self.err(format!(
                        "the map opened on line {line} has a key without a value"
                    ));
                }
                let mut it = items.into_iter();
                let mut pairs = Vec::new();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    pairs.push((k, v));
                }
                Edn::Map(pairs)
            }
            b')' | b']' | b'}' => {
                return self.err(format!("unexpected `{}`", c as char));
            }
            b'"' => Edn::Str(self.string()?),
            b'\\' => Edn::Char(self.character()?),
            b'#' => match self.src.get(self.pos + 1) {
                Some(b'{') => {
                    self.pos += 1;
                    Edn::Set(self.seq(b'}', "set", line, depth)?)
                }
                Some(c) if c.is_ascii_alphabetic() => {
                    // A tagged literal: `#inst "..."`, `#jepsen.history.Op{...}`. Keep the value.
                    self.pos += 1;
                    self.token();
                    self.skip_space()?;
                    if self.pos >= self.src.len() {
                        return self.err("unexpected end of input after a tag");
                    }
                    return self.form(depth + 1);
                }
                _ => return self.err("unsupported dispatch `#`"),
            },
            b':' => {
                self.pos += 1;
                let t = self.token();
                if t.is_empty() {
                    return self.err("a keyword needs a name after `:`");
                }
                Edn::Keyword(t.to_string())
            }
            _ => {
                let t = self.token();
                if t.is_empty() {
                    return self.err(format!("unexpected character {:?}", self.next_char()));
                }
                atom(t).or_else(|m| self.err(m))?
            }
        };
        Ok(Form { value, line })
    }

    fn next_char(&self) -> char {
        std::str::from_utf8(&self.src[self.pos..])
            .ok()
            .and_then(|s| s.chars().next())
            .unwrap_or('\u{fffd}')
    }

    /// Forms up to the closing delimiter (the opening one is at `self.pos`).
    fn seq(
        &mut self,
        close: u8,
        what: &str,
        opened: usize,
        depth: usize,
    ) -> Result<Vec<Form>, EdnError> {
        self.pos += 1;
        let mut items = Vec::new();
        loop {
            self.skip_space()?;
            match self.peek() {
                None => {
                    return self.err(format!(
                        "unexpected end of input: the {what} opened on line {opened} is not closed"
                    ))
                }
                Some(c) if c == close => {
                    self.pos += 1;
                    return Ok(items);
                }
                Some(c @ (b')' | b']' | b'}')) => {
                    return self.err(format!(
                        "unexpected `{}` in the {what} opened on line {opened}",
                        c as char
                    ))
                }
                Some(_) => items.push(self.form(depth + 1)?),
            }
        }
    }

    /// A run of symbol characters (possibly empty).
    fn token(&mut self) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(|c| {
            c.is_ascii_alphanumeric() || b".*+!-_?$%&=<>/:'#|".contains(&c) || c >= 0x80
        }) {
            self.pos += 1;
        }
        // The input came from a &str and token boundaries are ASCII, so this cannot fail.
        std::str::from_utf8(&self.src[start..self.pos]).unwrap_or("")
    }

    fn string(&mut self) -> Result<String, EdnError> {
        let opened = self.line;
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                // Name the line the string opened on: it swallowed everything after it.
                return Err(EdnError {
                    line: opened,
                    message: format!(
                        "unexpected end of input: the string opened on line {opened} is not \
                         closed"
                    ),
                });
            };
            self.pos += 1;
            match c {
                b'"' => break,
                b'\n' => {
                    self.line += 1;
                    out.push(c);
                }
                b'\\' => {
                    let Some(e) = self.peek() else { continue };
                    self.pos += 1;
                    match e {
                        b'"' => out.push(b'"'),
                        b'\\' => out.push(b'\\'),
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'u' => {
                            let hex = self
                                .src
                                .get(self.pos..self.pos + 4)
                                .and_then(|h| std::str::from_utf8(h).ok())
                                .and_then(|h| u32::from_str_radix(h, 16).ok())
                                .and_then(char::from_u32);
                            let Some(ch) = hex else {
                                return self.err("bad \\u escape in a string");
                            };
                            self.pos += 4;
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        other => {
                            return self
                                .err(format!("unknown escape \\{} in a string", other as char))
                        }
                    }
                }
                c => out.push(c),
            }
        }
        // Built from valid UTF-8 and whole escapes.
        String::from_utf8(out).or_else(|_| self.err("a string is not valid UTF-8"))
    }

    fn character(&mut self) -> Result<char, EdnError> {
        self.pos += 1;
        let start = self.pos;
        let first = self.next_char();
        if self.pos >= self.src.len() {
            return self.err("unexpected end of input after `\\`");
        }
        self.pos += first.len_utf8();
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric()) {
            self.pos += 1;
        }
        let name = std::str::from_utf8(&self.src[start..self.pos]).unwrap_or("");
        match name {
            "newline" => Ok('\n'),
            "space" => Ok(' '),
            "tab" => Ok('\t'),
            "return" => Ok('\r'),
            "backspace" => Ok('\u{8}'),
            "formfeed" => Ok('\u{c}'),
            n if n.chars().count() == 1 => Ok(first),
            n if n.starts_with('u') && n.len() == 5 => u32::from_str_radix(&n[1..], 16)
                .ok()
                .and_then(char::from_u32)
                .map_or_else(|| self.err(format!("bad character \\{n}")), Ok),
            n => self.err(format!("bad character \\{n}")),
        }
    }
}

/// A token that is not a keyword: nil, a boolean, a number or a symbol.
fn atom(t: &str) -> Result<Edn, String> {
    match t {
        "nil" => return Ok(Edn::Nil),
        "true" => return Ok(Edn::Bool(true)),
        "false" => return Ok(Edn::Bool(false)),
        _ => {}
    }
    let b = t.as_bytes();
    let numeric = b[0].is_ascii_digit()
        || (matches!(b[0], b'+' | b'-') && b.get(1).is_some_and(u8::is_ascii_digit));
    if !numeric {
        return Ok(Edn::Symbol(t.to_string()));
    }
    let body = t.strip_suffix('N').unwrap_or(t);
    if let Ok(i) = body.parse::<i64>() {
        return Ok(Edn::Int(i));
    }
    if body.bytes().skip(1).all(|c| c.is_ascii_digit()) {
        return Err(format!("integer {t} does not fit in 64 bits"));
    }
    let body = t.strip_suffix('M').unwrap_or(t);
    if let Some((n, d)) = body.split_once('/') {
        if let (Ok(n), Ok(d)) = (n.parse::<f64>(), d.parse::<f64>()) {
            return Ok(Edn::Float(n / d));
        }
    }
    body.parse::<f64>()
        .map(Edn::Float)
        .map_err(|_| format!("bad number {t}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &str) -> Result<Vec<Form>, EdnError> {
        let mut r = Reader::new(text);
        let mut out = Vec::new();
        while let Some(f) = r.next_form()? {
            out.push(f);
        }
        Ok(out)
    }

    #[test]
    fn reads_jepsen_ops_with_their_lines() {
        let forms = all(
            "; a comment\n{:process 0, :type :invoke, :f :cas, :value [1 2], :time 12}\n\
             #_ {:skipped true}\n{:type :ok :value \"x \\\"1\\\" y\" :n -3N :x 1.5 :c \\a}\n",
        )
        .unwrap();
        assert_eq!(forms.len(), 2);
        assert_eq!((forms[0].line, forms[1].line), (2, 4));
        let Edn::Map(m) = &forms[0].value else {
            panic!()
        };
        assert_eq!(m[0].0.value, Edn::Keyword("process".into()));
        assert_eq!(
            m[3].1.value,
            Edn::Vector(vec![
                Form {
                    value: Edn::Int(1),
                    line: 2
                },
                Form {
                    value: Edn::Int(2),
                    line: 2
                }
            ])
        );
        let Edn::Map(m) = &forms[1].value else {
            panic!()
        };
        assert_eq!(m[1].1.value, Edn::Str("x \"1\" y".into()));
        assert_eq!(m[2].1.value, Edn::Int(-3));
        assert_eq!(m[3].1.value, Edn::Float(1.5));
        assert_eq!(m[4].1.value, Edn::Char('a'));
    }

    #[test]
    fn errors_name_their_line() {
        let cases = [
            ("{:a 1}\n{:b [1 2}\n", 2, "unexpected `}`"),
            ("{:a 1}\n\n{:b \"open", 3, "string opened on line 3"),
            (
                "[{:a 1}\n{:b 2}\n",
                3,
                "vector opened on line 1 is not closed",
            ),
            ("{:a}\n", 1, "key without a value"),
            ("{:a 99999999999999999999}", 1, "does not fit"),
            ("{:a 1}\n)", 2, "unexpected `)`"),
            (&"[".repeat(100), 1, "nested"),
        ];
        for (text, line, needle) in cases {
            let e = all(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.message.contains(needle), "{text:?}: {e}");
        }
    }
}
