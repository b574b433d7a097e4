//! BIRD (2.x and 1.6): does every protocol routelb exports through accept what routelb's
//! `routelb_export_<protocol>()` function accepts? Reads the base (and the files it includes,
//! gathered by the caller) into protocols, templates, filters and functions, and walks each
//! export filter the way BIRD runs it, for each prefix routelb exports: `accept`/`reject`
//! end it, a filter that reaches its end rejects the route ("did not return accept nor
//! reject"), `export where E` is `if E then accept; else reject;`, `export none` (the
//! default) rejects all. Conditions on `net`, `net.type`, `proto` and `source` are evaluated;
//! others, when they change the outcome, make a warning.

use std::collections::BTreeMap;

use ipnet::IpNet;

use super::{Export, Family, Finding, Protocol, some_prefixes};

/// A token with the file and line it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub text: String,
    pub file: usize,
    pub line: usize,
}

/// The base's files: the main one first, then the ones it includes, as (path, text). An
/// included file that could not be read has no text.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    pub files: Vec<(String, Option<String>)>,
}

fn tokenize(text: &str, file: usize) -> Vec<Token> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let (mut i, mut line) = (0, 1);
    let push = |out: &mut Vec<Token>, s: String, line: usize| {
        out.push(Token {
            text: s,
            file,
            line,
        })
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\n' => {
                line += 1;
                i += 1;
            }
            _ if c.is_whitespace() => i += 1,
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                    line += usize::from(chars[i] == '\n');
                    i += 1;
                }
                i += 2;
            }
            '"' => {
                let start = i;
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    i += 1;
                }
                i += 1;
                push(
                    &mut out,
                    chars[start..i.min(chars.len())].iter().collect(),
                    line,
                );
            }
            '{' | '}' | ';' | '(' | ')' | ',' | '[' | ']' | '~' => {
                push(&mut out, c.to_string(), line);
                i += 1;
            }
            '=' | '!' | '<' | '>' | '&' | '|' => {
                let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
                let op = if matches!(two.as_str(), "==" | "!=" | "<=" | ">=" | "&&" | "||" | "!~") {
                    two
                } else {
                    c.to_string()
                };
                i += op.len();
                push(&mut out, op, line);
            }
            _ => {
                let start = i;
                while i < chars.len()
                    && !chars[i].is_whitespace()
                    && !"{};(),[]~=!<>&|\"#".contains(chars[i])
                {
                    i += 1;
                }
                push(&mut out, chars[start..i].iter().collect(), line);
            }
        }
    }
    out
}

/// The `include "…";` paths of a file's text, in order.
pub fn includes(text: &str) -> Vec<String> {
    let t = tokenize(text, 0);
    t.windows(2)
        .filter(|w| w[0].text == "include" && w[1].text.starts_with('"'))
        .map(|w| unquote(&w[1].text).to_string())
        .collect()
}

fn unquote(s: &str) -> &str {
    s.trim_matches('"')
}

/// Whether an include is routelb's file (its name says so).
pub fn is_routelb_include(path: &str) -> bool {
    path.rsplit('/')
        .next()
        .is_some_and(|f| f.contains("routelb"))
}

/// How `export` is given in a protocol or channel.
#[derive(Clone, Debug, PartialEq, Eq)]
enum ExportSpec {
    All,
    None,
    Filter(String),
    Inline(Vec<Token>),
    Where(Vec<Token>),
}

#[derive(Clone, Debug, Default)]
struct ProtoDef {
    kind: String,
    /// `v2`/`v3` (OSPF), `ng` (RIP).
    variant: Option<String>,
    name: Option<String>,
    from: Option<String>,
    /// BIRD 1.x: the protocol's own export.
    export: Option<ExportSpec>,
    /// BIRD 2: channel (`ipv4`, `ipv6`) → its export, if it sets one.
    channels: BTreeMap<String, Option<ExportSpec>>,
    /// `interface` patterns (direct protocols).
    interfaces: Option<Vec<String>>,
    local_as: Option<u32>,
}

/// A BIRD configuration, read.
#[derive(Clone, Debug, Default)]
pub struct BirdBase {
    protocols: Vec<ProtoDef>,
    templates: BTreeMap<String, ProtoDef>,
    filters: BTreeMap<String, Vec<Token>>,
    functions: BTreeMap<String, Vec<Token>>,
    files: Vec<String>,
    /// (file, line) of routelb's include, and whether its name was found at all.
    routelb_include: Option<(usize, usize)>,
    /// Where the main file first uses a routelb name.
    first_use: Option<(usize, usize)>,
    missing_includes: Vec<String>,
    /// Whether the syntax is BIRD 1.x (protocol-level import/export, no channels).
    pub v1: bool,
    protocol_level_filters: bool,
    channels: bool,
}

/// The index just past the block that opens at `t[open]` (`{`/`[`/`(`), or the end.
fn close_of(t: &[Token], open: usize) -> usize {
    let mut depth = 0i32;
    for (i, tok) in t.iter().enumerate().skip(open) {
        match tok.text.as_str() {
            "{" | "[" | "(" => depth += 1,
            "}" | "]" | ")" => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
    }
    t.len()
}

/// The index just past the `;` that ends the statement starting at `i`, skipping blocks.
fn semicolon_after(t: &[Token], mut i: usize) -> usize {
    while i < t.len() {
        match t[i].text.as_str() {
            ";" => return i + 1,
            "{" | "[" | "(" => i = close_of(t, i),
            _ => i += 1,
        }
    }
    t.len()
}

/// Reads the base's files; `Sources::files[0]` is the main file.
pub fn read(sources: &Sources) -> BirdBase {
    let mut base = BirdBase {
        files: sources.files.iter().map(|(p, _)| p.clone()).collect(),
        ..Default::default()
    };
    for (file, (path, text)) in sources.files.iter().enumerate() {
        let Some(text) = text else {
            base.missing_includes.push(path.clone());
            continue;
        };
        base.read_file(&tokenize(text, file));
    }
    base.v1 = base.protocol_level_filters && !base.channels;
    base
}

impl BirdBase {
    fn read_file(&mut self, t: &[Token]) {
        let mut i = 0;
        while i < t.len() {
            let next = semicolon_or_block(t, i);
            match t[i].text.as_str() {
                "include"
                    if t.get(i + 1)
                        .is_some_and(|p| is_routelb_include(unquote(&p.text))) =>
                {
                    self.routelb_include = Some((t[i].file, t[i].line));
                }
                "filter" | "function" => {
                    if let (Some(name), Some(open)) = (t.get(i + 1), find_open(t, i, next)) {
                        let body = t[open + 1..close_of(t, open).saturating_sub(1)].to_vec();
                        self.note_uses(&body);
                        let table = match t[i].text.as_str() {
                            "filter" => &mut self.filters,
                            _ => &mut self.functions,
                        };
                        table.insert(name.text.clone(), body);
                    }
                }
                "protocol" | "template" => {
                    if let Some(p) = self.read_protocol(&t[i..next]) {
                        match (t[i].text.as_str(), p.name.clone()) {
                            ("template", Some(name)) => {
                                self.templates.insert(name, p);
                            }
                            _ => self.protocols.push(p),
                        }
                    }
                }
                _ => {}
            }
            i = next.max(i + 1);
        }
    }

    fn note_uses(&mut self, t: &[Token]) {
        if self.first_use.is_none()
            && let Some(tok) = t.iter().find(|t| t.text.starts_with("routelb_"))
        {
            self.first_use = Some((tok.file, tok.line));
        }
    }

    fn read_protocol(&mut self, t: &[Token]) -> Option<ProtoDef> {
        let open = t.iter().position(|x| x.text == "{")?;
        let header: Vec<&str> = t[1..open].iter().map(|x| x.text.as_str()).collect();
        let mut p = ProtoDef {
            kind: header.first()?.to_string(),
            ..Default::default()
        };
        let mut rest = &header[1..];
        if let [v @ ("v2" | "v3" | "ng"), tail @ ..] = rest {
            p.variant = Some(v.to_string());
            rest = tail;
        }
        if let [name, tail @ ..] = rest
            && *name != "from"
        {
            p.name = Some(name.to_string());
            rest = tail;
        }
        if let ["from", template, ..] = rest {
            p.from = Some(template.to_string());
        }
        let body = &t[open + 1..close_of(t, open).saturating_sub(1)];
        self.note_uses(body);
        self.read_protocol_body(&mut p, body);
        Some(p)
    }

    fn read_protocol_body(&mut self, p: &mut ProtoDef, body: &[Token]) {
        let mut i = 0;
        while i < body.len() {
            let end = semicolon_after(body, i);
            let stmt = &body[i..end];
            match body[i].text.as_str() {
                c @ ("ipv4" | "ipv6") => {
                    let export = stmt
                        .iter()
                        .position(|x| x.text == "{")
                        .and_then(|open| channel_export(&stmt[open + 1..close_of(stmt, open) - 1]));
                    p.channels.insert(c.to_string(), export);
                    self.channels = true;
                }
                "export" => {
                    p.export = parse_export(&stmt[1..]);
                    self.protocol_level_filters = true;
                }
                "import" => self.protocol_level_filters = true,
                "interface" if p.kind == "direct" => {
                    p.interfaces = Some(interface_patterns(stmt));
                }
                "local" => {
                    let at = stmt.iter().position(|x| x.text == "as");
                    p.local_as = at.and_then(|a| stmt.get(a + 1)?.text.parse().ok());
                }
                _ => {}
            }
            i = end.max(i + 1);
        }
    }
}

/// The end of a top-level item starting at `i`: a `;`, or the block of a filter, function,
/// protocol or template.
fn semicolon_or_block(t: &[Token], i: usize) -> usize {
    let mut j = i;
    while j < t.len() {
        match t[j].text.as_str() {
            ";" => return j + 1,
            "{" => {
                let end = close_of(t, j);
                return if t.get(end).is_some_and(|x| x.text == ";") {
                    end + 1
                } else {
                    end
                };
            }
            "[" | "(" => j = close_of(t, j),
            _ => j += 1,
        }
    }
    t.len()
}

fn find_open(t: &[Token], from: usize, to: usize) -> Option<usize> {
    (from..to.min(t.len())).find(|&j| t[j].text == "{")
}

fn channel_export(body: &[Token]) -> Option<ExportSpec> {
    let mut i = 0;
    let mut found = None;
    while i < body.len() {
        let end = semicolon_after(body, i);
        if body[i].text == "export" {
            found = parse_export(&body[i + 1..end]);
        }
        i = end.max(i + 1);
    }
    found
}

/// `all;`, `none;`, `filter NAME;`, `filter { … };`, `where EXPR;` (the tokens after
/// `export`).
fn parse_export(t: &[Token]) -> Option<ExportSpec> {
    let words: Vec<&str> = t.iter().map(|x| x.text.as_str()).collect();
    Some(match words.as_slice() {
        ["all", ..] => ExportSpec::All,
        ["none", ..] => ExportSpec::None,
        ["filter", "{", ..] => ExportSpec::Inline(t[2..close_of(t, 1) - 1].to_vec()),
        ["filter", name, ..] => ExportSpec::Filter(name.to_string()),
        ["where", ..] => {
            let end = t.iter().rposition(|x| x.text == ";").unwrap_or(t.len());
            ExportSpec::Where(t[1..end].to_vec())
        }
        _ => return None,
    })
}

/// `interface -"cali*", "*";` → [`-cali*`, `*`].
fn interface_patterns(stmt: &[Token]) -> Vec<String> {
    let mut out = Vec::new();
    let mut negate = false;
    for tok in &stmt[1..] {
        match tok.text.as_str() {
            "{" | ";" => break,
            "-" => negate = true,
            s if s.starts_with('"') => {
                out.push(format!("{}{}", if negate { "-" } else { "" }, unquote(s)));
                negate = false;
            }
            s if s.starts_with("-\"") => out.push(format!("-{}", unquote(&s[1..]))),
            _ => {}
        }
    }
    out
}

/// Shell-like pattern matching (`*`, `?`), as BIRD matches interface names.
fn glob(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    fn go(p: &[char], n: &[char]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(&p, &n)
}

/// The first pattern that matches decides (`-` excludes); none matching excludes. A direct
/// protocol without `interface` covers every interface.
fn covers(patterns: &Option<Vec<String>>, ifname: &str) -> Option<String> {
    let Some(patterns) = patterns else {
        return Some("no `interface` line: every interface".into());
    };
    for p in patterns {
        let (excluded, pat) = match p.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, p.as_str()),
        };
        if glob(pat, ifname) {
            return (!excluded).then(|| format!("interface pattern \"{pat}\""));
        }
    }
    None
}

/// How a filter ends for one route.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Accept {
        called: bool,
    },
    /// `at`: the `reject` (None: the filter reached its end, or `export none`).
    Reject {
        called: bool,
        at: Option<(usize, usize)>,
    },
    Unknown(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Flow {
    Next,
    Done(Outcome),
    Return(Option<bool>),
}

#[derive(Clone, Debug, PartialEq)]
enum Val {
    Bool(bool),
    Net(IpNet),
    Str(String),
    Sym(String),
    /// A prefix set: (prefix, shortest, longest) route lengths.
    Set(Vec<(IpNet, u8, u8)>),
    Unknown,
}

/// Runs filter code for one route that `wanted()` accepts (routelb's own function, which
/// returns true for exactly the routes it exports).
#[derive(Clone)]
struct Walker<'a> {
    base: &'a BirdBase,
    wanted: &'a str,
    net: IpNet,
    called: bool,
    depth: usize,
}

const MAX_DEPTH: usize = 16;

impl Walker<'_> {
    fn block(&mut self, t: &[Token]) -> Flow {
        let mut i = 0;
        while i < t.len() {
            let end = statement_end(t, i);
            let flow = self.statement(&t[i..end]);
            if flow != Flow::Next {
                return flow;
            }
            i = end.max(i + 1);
        }
        Flow::Next
    }

    fn statement(&mut self, s: &[Token]) -> Flow {
        let first = s[0].text.as_str();
        match first {
            "{" => self.block(&s[1..close_of(s, 0) - 1]),
            "if" => self.conditional(s),
            "accept" => Flow::Done(Outcome::Accept {
                called: self.called,
            }),
            "reject" => Flow::Done(Outcome::Reject {
                called: self.called,
                at: Some((s[0].file, s[0].line)),
            }),
            "return" => {
                let end = s.iter().rposition(|x| x.text == ";").unwrap_or(s.len());
                Flow::Return(self.truth(&s[1..end]))
            }
            "case" => {
                let decides = s
                    .iter()
                    .any(|x| matches!(x.text.as_str(), "accept" | "reject"))
                    || s.iter().any(|x| x.text == self.wanted);
                match decides {
                    true => Flow::Done(Outcome::Unknown(format!(
                        "the `case` at {} cannot be evaluated here",
                        self.base.place(s[0].file, s[0].line)
                    ))),
                    false => Flow::Next,
                }
            }
            name if s.get(1).is_some_and(|x| x.text == "(") => {
                if name == self.wanted {
                    self.called = true;
                    return Flow::Next;
                }
                match self.call(name) {
                    Flow::Done(o) => Flow::Done(o),
                    _ => Flow::Next,
                }
            }
            _ => Flow::Next,
        }
    }

    fn conditional(&mut self, s: &[Token]) -> Flow {
        let then = s.iter().position(|x| x.text == "then").unwrap_or(s.len());
        let cond = &s[1..then];
        let then_end = statement_end(s, then + 1);
        let (yes, no) = match s.get(then_end).is_some_and(|x| x.text == "else") {
            true => (&s[then + 1..then_end], &s[then_end + 1..]),
            false => (&s[then + 1..then_end], &s[s.len()..]),
        };
        let run = |w: &mut Walker, part: &[Token]| {
            if part.is_empty() {
                Flow::Next
            } else {
                w.block(part)
            }
        };
        match self.truth(cond) {
            Some(true) => run(self, yes),
            Some(false) => run(self, no),
            None => {
                let mut other = self.clone();
                let a = run(self, yes);
                let b = run(&mut other, no);
                if a == b {
                    return a;
                }
                Flow::Done(Outcome::Unknown(format!(
                    "the condition `{}` at {} decides, and it cannot be evaluated here",
                    cond.iter()
                        .map(|x| x.text.as_str())
                        .collect::<Vec<_>>()
                        .join(" "),
                    self.base.place(s[0].file, s[0].line)
                )))
            }
        }
    }

    /// Runs a function of the base; its `accept`/`reject` end the filter.
    fn call(&mut self, name: &str) -> Flow {
        let Some(body) = self.base.functions.get(name) else {
            return Flow::Next;
        };
        if self.depth > MAX_DEPTH {
            return Flow::Done(Outcome::Unknown(format!("{name}() nests too deep")));
        }
        self.depth += 1;
        let flow = self.block(body);
        self.depth -= 1;
        flow
    }

    fn truth(&mut self, t: &[Token]) -> Option<bool> {
        let mut pos = 0;
        match self.or(t, &mut pos) {
            Val::Bool(b) if pos >= t.len() => Some(b),
            _ => None,
        }
    }

    fn or(&mut self, t: &[Token], pos: &mut usize) -> Val {
        let mut left = self.and(t, pos);
        while t.get(*pos).is_some_and(|x| x.text == "||") {
            *pos += 1;
            let right = self.and(t, pos);
            left = match (left, right) {
                (Val::Bool(true), _) | (_, Val::Bool(true)) => Val::Bool(true),
                (Val::Bool(false), Val::Bool(false)) => Val::Bool(false),
                _ => Val::Unknown,
            };
        }
        left
    }

    fn and(&mut self, t: &[Token], pos: &mut usize) -> Val {
        let mut left = self.not(t, pos);
        while t.get(*pos).is_some_and(|x| x.text == "&&") {
            *pos += 1;
            let right = self.not(t, pos);
            left = match (left, right) {
                (Val::Bool(false), _) | (_, Val::Bool(false)) => Val::Bool(false),
                (Val::Bool(true), Val::Bool(true)) => Val::Bool(true),
                _ => Val::Unknown,
            };
        }
        left
    }

    fn not(&mut self, t: &[Token], pos: &mut usize) -> Val {
        if t.get(*pos).is_some_and(|x| x.text == "!") {
            *pos += 1;
            return match self.not(t, pos) {
                Val::Bool(b) => Val::Bool(!b),
                _ => Val::Unknown,
            };
        }
        let left = self.primary(t, pos);
        let Some(op) = t.get(*pos).map(|x| x.text.clone()) else {
            return left;
        };
        if !matches!(
            op.as_str(),
            "~" | "!~" | "=" | "==" | "!=" | "<" | ">" | "<=" | ">="
        ) {
            return left;
        }
        *pos += 1;
        let right = self.primary(t, pos);
        compare(&left, &op, &right)
    }

    fn primary(&mut self, t: &[Token], pos: &mut usize) -> Val {
        let Some(tok) = t.get(*pos) else {
            return Val::Unknown;
        };
        let text = tok.text.clone();
        *pos += 1;
        match text.as_str() {
            "(" => {
                let v = self.or(t, pos);
                if t.get(*pos).is_some_and(|x| x.text == ")") {
                    *pos += 1;
                }
                v
            }
            "[" => {
                let end = close_of(t, *pos - 1);
                let set = prefix_set(&t[*pos..end - 1]);
                *pos = end;
                set
            }
            _ if t.get(*pos).is_some_and(|x| x.text == "(") => {
                *pos = close_of(t, *pos);
                self.function_value(&text)
            }
            "true" => Val::Bool(true),
            "false" => Val::Bool(false),
            "net" => Val::Net(self.net),
            "net.type" => Val::Sym(
                if Family::of(&self.net) == Family::V4 {
                    "NET_IP4"
                } else {
                    "NET_IP6"
                }
                .into(),
            ),
            "proto" => Val::Str("routelb_direct".into()),
            "source" => Val::Sym("RTS_DEVICE".into()),
            s if s.starts_with('"') => Val::Str(unquote(s).to_string()),
            s => match s.parse::<IpNet>() {
                Ok(n) => Val::Net(n),
                Err(_)
                    if s.chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_') =>
                {
                    Val::Sym(s.to_string())
                }
                Err(_) => Val::Unknown,
            },
        }
    }

    fn function_value(&mut self, name: &str) -> Val {
        if name == self.wanted {
            self.called = true;
            return Val::Bool(true);
        }
        if !self.base.functions.contains_key(name) || self.depth > MAX_DEPTH {
            return Val::Unknown;
        }
        match self.call(name) {
            Flow::Return(Some(b)) => Val::Bool(b),
            _ => Val::Unknown,
        }
    }
}

/// The end of the statement starting at `t[i]`: a block, an `if … then S [else S]`, or up to
/// its `;`.
fn statement_end(t: &[Token], i: usize) -> usize {
    match t[i].text.as_str() {
        "{" => {
            let end = close_of(t, i);
            if t.get(end).is_some_and(|x| x.text == ";") {
                end + 1
            } else {
                end
            }
        }
        "if" => {
            let Some(then) = (i..t.len()).find(|&j| t[j].text == "then") else {
                return t.len();
            };
            let end = statement_end(t, then + 1);
            match t.get(end).is_some_and(|x| x.text == "else") {
                true if end + 1 < t.len() => statement_end(t, end + 1),
                _ => end,
            }
        }
        "case" => {
            let open = (i..t.len())
                .find(|&j| t[j].text == "{")
                .unwrap_or(t.len() - 1);
            close_of(t, open)
        }
        _ => semicolon_after(t, i),
    }
}

/// `10.0.0.0/8`, `10.0.0.0/8+`, `10.0.0.0/8-`, `10.0.0.0/8{16,32}`, separated by commas.
fn prefix_set(t: &[Token]) -> Val {
    let mut out = Vec::new();
    let mut i = 0;
    while i < t.len() {
        let word = t[i].text.as_str();
        i += 1;
        if word == "," {
            continue;
        }
        let (text, plus, minus) = match (word.strip_suffix('+'), word.strip_suffix('-')) {
            (Some(w), _) => (w, true, false),
            (_, Some(w)) => (w, false, true),
            _ => (word, false, false),
        };
        let Ok(net) = text.parse::<IpNet>() else {
            return Val::Unknown;
        };
        let max = if Family::of(&net) == Family::V4 {
            32
        } else {
            128
        };
        let (mut lo, mut hi) = (net.prefix_len(), net.prefix_len());
        if plus {
            hi = max;
        } else if minus {
            lo = 0;
        } else if t.get(i).is_some_and(|x| x.text == "{") {
            let nums: Vec<u8> = t[i + 1..(i + 4).min(t.len())]
                .iter()
                .filter_map(|x| x.text.parse().ok())
                .collect();
            if let [a, b] = nums.as_slice() {
                (lo, hi) = (*a, *b);
            }
            i = close_of(t, i);
        }
        out.push((net, lo, hi));
    }
    Val::Set(out)
}

fn compare(left: &Val, op: &str, right: &Val) -> Val {
    let positive = match (left, op.trim_start_matches('!'), right) {
        (Val::Net(n), "~", Val::Net(p)) => {
            Family::of(n) == Family::of(p)
                && p.contains(&n.network())
                && n.prefix_len() >= p.prefix_len()
        }
        (Val::Net(n), "~", Val::Set(items)) => items.iter().any(|(p, lo, hi)| {
            Family::of(n) == Family::of(p)
                && p.contains(&n.network())
                && n.prefix_len() >= p.prefix_len()
                && (*lo..=*hi).contains(&n.prefix_len())
        }),
        (Val::Unknown, _, _) | (_, _, Val::Unknown) => return Val::Unknown,
        (a, "=" | "==", b) => a == b,
        _ => return Val::Unknown,
    };
    Val::Bool(if op.starts_with('!') {
        !positive
    } else {
        positive
    })
}

impl BirdBase {
    fn place(&self, file: usize, line: usize) -> String {
        let path = self.files.get(file).map(String::as_str).unwrap_or("?");
        format!("{}:{line}", path.rsplit('/').next().unwrap_or(path))
    }

    /// A protocol's chain: itself, then its templates.
    fn chain<'a>(&'a self, p: &'a ProtoDef) -> Vec<&'a ProtoDef> {
        let mut out = vec![p];
        let mut next = p.from.as_deref();
        while let Some(name) = next {
            match self.templates.get(name) {
                Some(t) if out.len() < 16 => {
                    out.push(t);
                    next = t.from.as_deref();
                }
                _ => break,
            }
        }
        out
    }

    /// The export of a protocol for a family (through its templates): None when it does not
    /// carry the family; `(spec, where it is set)`.
    fn export_for(
        &self,
        p: &ProtoDef,
        family: Family,
        file_family: Family,
    ) -> Option<(ExportSpec, String)> {
        let chain = self.chain(p);
        let origin = |d: &ProtoDef| match (d.kind.as_str(), &d.name) {
            (_, Some(n)) if !std::ptr::eq(d, p) => format!(" (from template {n})"),
            _ => String::new(),
        };
        if self.v1 {
            if family != file_family {
                return None;
            }
            return Some(
                chain
                    .iter()
                    .find_map(|d| d.export.clone().map(|e| (e, origin(d))))
                    .unwrap_or((ExportSpec::None, String::new())),
            );
        }
        let channel = family.name();
        if !chain.iter().any(|d| d.channels.contains_key(channel)) {
            return None;
        }
        Some(
            chain
                .iter()
                .find_map(|d| {
                    d.channels
                        .get(channel)
                        .cloned()
                        .flatten()
                        .map(|e| (e, origin(d)))
                })
                .unwrap_or((ExportSpec::None, String::new())),
        )
    }

    /// BGP instances (`local as`, through templates), for finding them where the protocols
    /// inherit their AS from a template.
    pub fn bgp_asns(&self) -> Vec<u32> {
        let mut out: Vec<u32> = Vec::new();
        for p in self.protocols.iter().filter(|p| p.kind == "bgp") {
            if let Some(asn) = self.chain(p).iter().find_map(|d| d.local_as)
                && !out.contains(&asn)
            {
                out.push(asn);
            }
        }
        out
    }
}

/// Which protocol kind routelb exports through, and the function the base must call.
fn kind_and_function(p: &Protocol) -> Option<(&'static str, &'static str)> {
    match p {
        Protocol::Bgp { .. } => Some(("bgp", "routelb_export_bgp")),
        Protocol::Ospf => Some(("ospf", "routelb_export_ospf")),
        Protocol::Rip => Some(("rip", "routelb_export_rip")),
        Protocol::Isis { .. } => None,
    }
}

/// The findings for a BIRD base. `file_family`: the family a BIRD 1.x file carries (`bird.conf`
/// IPv4, `bird6.conf` IPv6); `lb_interface` is where routelb's addresses are.
pub fn check(
    sources: &Sources,
    exports: &[Export],
    file_family: Family,
    lb_interface: &str,
) -> Vec<Finding> {
    let base = read(sources);
    let main = sources
        .files
        .first()
        .map(|(p, _)| p.as_str())
        .unwrap_or("bird.conf");
    let mut out = base.include_findings(main);
    for e in exports {
        let Some((kind, wanted)) = kind_and_function(&e.protocol) else {
            continue;
        };
        for family in Family::BOTH {
            if e.prefixes(family).is_empty() || (base.v1 && family != file_family) {
                continue;
            }
            let mut carried = false;
            for p in base.protocols.iter().filter(|p| p.kind == kind) {
                let Some((spec, origin)) = base.export_for(p, family, file_family) else {
                    continue;
                };
                carried = true;
                out.extend(base.judge(p, family, &spec, &origin, wanted, e));
            }
            if !carried {
                out.push(Finding::warning(
                    main,
                    format!(
                        "no {kind} protocol carries {}: routelb's {} prefixes are not exported through {}",
                        family.name(),
                        family.name(),
                        kind.to_uppercase()
                    ),
                ));
            }
        }
    }
    out.extend(base.direct_findings(lb_interface));
    out
}

impl BirdBase {
    fn include_findings(&self, main: &str) -> Vec<Finding> {
        let mut out: Vec<Finding> = self
            .missing_includes
            .iter()
            .map(|p| {
                Finding::warning(
                    main,
                    format!("cannot read included file {p}; what it defines was not analysed"),
                )
            })
            .collect();
        match self.routelb_include {
            None => out.push(Finding::error(
                main,
                "does not include routelb's file (`include \"/etc/bird/routelb.conf\";` before the protocols and filters that call routelb_export_*()): routelb_direct and routelb's functions do not exist, nothing is announced",
            )),
            Some((file, line)) => {
                if let Some((ufile, uline)) = self.first_use
                    && (ufile, uline) < (file, line)
                {
                    out.push(Finding::error(
                        main,
                        format!(
                            "routelb's include at {} comes after the first use of a routelb function at {}: BIRD reads the file in order and refuses it",
                            self.place(file, line),
                            self.place(ufile, uline)
                        ),
                    ));
                }
            }
        }
        out
    }

    fn direct_findings(&self, lb_interface: &str) -> Vec<Finding> {
        self.protocols
            .iter()
            .filter(|p| p.kind == "direct" && p.name.as_deref() != Some("routelb_direct"))
            .filter_map(|p| {
                let why = covers(&p.interfaces, lb_interface)?;
                Some(Finding::warning(
                    protocol_subject(p),
                    format!(
                        "covers {lb_interface} ({why}): BIRD holds each load-balancer address twice, and routelb_export_*() pass only routelb_direct's copy, so towards a peer without ADD-PATH an address whose best route is this protocol's is not announced; exclude it with `-\"{lb_interface}\"` first in its interface patterns"
                    ),
                ))
            })
            .collect()
    }
}

fn protocol_subject(p: &ProtoDef) -> String {
    let variant = p
        .variant
        .as_deref()
        .map(|v| format!(" {v}"))
        .unwrap_or_default();
    match &p.name {
        Some(n) => format!("protocol {}{variant} {n}", p.kind),
        None => format!("protocol {}{variant} (unnamed)", p.kind),
    }
}

impl BirdBase {
    /// One protocol's export for one family against routelb's prefixes.
    fn judge(
        &self,
        p: &ProtoDef,
        family: Family,
        spec: &ExportSpec,
        origin: &str,
        wanted: &str,
        e: &Export,
    ) -> Vec<Finding> {
        let subject = match self.v1 {
            true => protocol_subject(p),
            false => format!("{} ({} channel)", protocol_subject(p), family.name()),
        };
        let (what, code): (String, Option<&[Token]>) = match spec {
            ExportSpec::All => ("export all".into(), None),
            ExportSpec::None => ("export none".into(), None),
            ExportSpec::Filter(name) => match self.filters.get(name) {
                Some(body) => (format!("export filter {name}"), Some(body)),
                None => {
                    return vec![Finding::warning(
                        subject,
                        format!("export filter {name}{origin} is not defined in the files read"),
                    )];
                }
            },
            ExportSpec::Inline(body) => ("its inline export filter".into(), Some(body)),
            ExportSpec::Where(_) => ("its `export where`".into(), None),
        };
        let prefixes = e.prefixes(family);
        let mut outcomes: Vec<(IpNet, Outcome)> = Vec::new();
        for net in prefixes {
            let mut w = Walker {
                base: self,
                wanted,
                net: *net,
                called: false,
                depth: 0,
            };
            let outcome = match (spec, code) {
                (ExportSpec::All, _) => Outcome::Accept { called: false },
                (ExportSpec::None, _) => Outcome::Reject {
                    called: false,
                    at: None,
                },
                (ExportSpec::Where(expr), _) => match w.truth(expr) {
                    Some(true) => Outcome::Accept { called: w.called },
                    Some(false) => Outcome::Reject {
                        called: w.called,
                        at: None,
                    },
                    None => Outcome::Unknown("its condition cannot be evaluated here".into()),
                },
                (_, Some(body)) => match w.block(body) {
                    Flow::Done(o) => o,
                    _ => Outcome::Reject {
                        called: w.called,
                        at: None,
                    },
                },
                _ => continue,
            };
            outcomes.push((*net, outcome));
        }
        let mentions = code.is_some_and(|b| self.mentions(b, wanted, 0))
            || matches!(spec, ExportSpec::Where(x) if x.iter().any(|t| t.text == wanted));
        let ctx = Judged {
            subject: &subject,
            what: &what,
            origin,
            wanted,
            mentions,
            attributes: e.attributes,
        };
        self.findings(&ctx, &outcomes, spec)
    }

    /// Whether filter code calls `wanted`, directly or through the base's functions.
    fn mentions(&self, body: &[Token], wanted: &str, depth: usize) -> bool {
        body.iter().any(|t| {
            t.text == wanted
                || (depth < MAX_DEPTH
                    && self
                        .functions
                        .get(&t.text)
                        .is_some_and(|f| self.mentions(f, wanted, depth + 1)))
        })
    }
}

struct Judged<'a> {
    subject: &'a str,
    what: &'a str,
    origin: &'a str,
    wanted: &'a str,
    mentions: bool,
    attributes: bool,
}

impl BirdBase {
    fn findings(
        &self,
        j: &Judged,
        outcomes: &[(IpNet, Outcome)],
        spec: &ExportSpec,
    ) -> Vec<Finding> {
        let mut out = Vec::new();
        let rejected: Vec<IpNet> = outcomes
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Reject { .. }))
            .map(|(n, _)| *n)
            .collect();
        if let Some((_, Outcome::Reject { called, at })) = outcomes
            .iter()
            .find(|(_, o)| matches!(o, Outcome::Reject { .. }))
        {
            let why = self.reject_reason(j, spec, *at, *called);
            out.push(Finding::error(
                j.subject,
                format!(
                    "{}{} rejects {}: {why}",
                    j.what,
                    j.origin,
                    some_prefixes(&rejected)
                ),
            ));
        }
        if let Some((net, Outcome::Unknown(why))) = outcomes
            .iter()
            .find(|(_, o)| matches!(o, Outcome::Unknown(_)))
        {
            out.push(Finding::warning(
                j.subject,
                format!(
                    "cannot tell whether {}{} exports {net}: {why}",
                    j.what, j.origin
                ),
            ));
        }
        let uncalled = outcomes
            .iter()
            .any(|(_, o)| *o == Outcome::Accept { called: false });
        if uncalled && (j.mentions || j.attributes) {
            out.push(Finding::warning(
                j.subject,
                format!(
                    "{}{} accepts routelb's prefixes before calling {}(): they leave without the attributes routelb sets",
                    j.what, j.origin, j.wanted
                ),
            ));
        }
        out
    }

    /// Why a filter rejects routelb's prefixes, and what to write instead.
    fn reject_reason(
        &self,
        j: &Judged,
        spec: &ExportSpec,
        at: Option<(usize, usize)>,
        called: bool,
    ) -> String {
        match (spec, at, called) {
            (ExportSpec::None, _, _) => {
                "exports nothing (`export none` is BIRD's default)".to_string()
            }
            (ExportSpec::Where(_), _, _) => format!(
                "its condition is false for them; write `export where {}() || (…);`",
                j.wanted
            ),
            (_, Some(at), true) => format!(
                "calls {}() but ignores its result, then `reject` at {} drops them; use `if {}() then accept;`",
                j.wanted,
                self.place(at.0, at.1),
                j.wanted
            ),
            (_, Some(at), false) if j.mentions => format!(
                "`reject` at {} comes before its {}() call{}",
                self.place(at.0, at.1),
                j.wanted,
                self.hint_call(j)
            ),
            (_, Some(at), false) => format!(
                "never calls {}(); `reject` at {} drops them{}",
                j.wanted,
                self.place(at.0, at.1),
                self.hint_call(j)
            ),
            (_, None, _) => format!(
                "ends without accepting them (BIRD rejects a route a filter neither accepts nor rejects){}",
                self.hint_call(j)
            ),
        }
    }

    fn hint_call(&self, j: &Judged) -> String {
        format!(
            "; put `if {}() then accept;` first in {}",
            j.wanted,
            j.what.trim_start_matches("its ")
        )
    }
}
