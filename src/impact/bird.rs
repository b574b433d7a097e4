//! BIRD: routelb's include changes as a whole file and `configure` re-reads everything. What
//! changes is found per top-level definition (`define`, `function`, `filter`, `protocol`,
//! `template`); a protocol is affected when its import or export reaches a changed
//! definition, through the functions and filters it calls, or when its own block changed.

use std::collections::{BTreeMap, BTreeSet};

use super::{Effect, Step};

/// A top-level definition: its text and, for a protocol or template, what its import and
/// export statements name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Item {
    text: String,
    /// Every word in it (names it may use).
    words: BTreeSet<String>,
    import: BTreeSet<String>,
    export: BTreeSet<String>,
    /// `from TEMPLATE`.
    template: Option<String>,
}

/// The definitions of a configuration by key: `define NAME`, `function NAME`, `filter NAME`,
/// `protocol NAME`, `template NAME`. Others (options, includes) are left out.
fn items(text: &str) -> BTreeMap<String, Item> {
    let mut out = BTreeMap::new();
    let mut unnamed = 0;
    for stmt in statements(&strip_comments(text)) {
        let words: Vec<&str> = stmt
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty())
            .collect();
        let key = match words.as_slice() {
            ["define" | "function" | "filter", name, ..] => format!("{} {name}", words[0]),
            ["protocol" | "template", kind, rest @ ..] => {
                // `protocol ospf v2 NAME`, `protocol rip ng NAME`.
                let rest = match rest {
                    ["v2" | "v3" | "ng", tail @ ..] => tail,
                    _ => rest,
                };
                let name = match rest.first() {
                    Some(n) if *n != "from" => n.to_string(),
                    _ => {
                        unnamed += 1;
                        format!("{kind}{unnamed}")
                    }
                };
                format!("{} {name}", words[0])
            }
            _ => continue,
        };
        // `from` in the header only: inside a block it is a route attribute.
        let header: Vec<&str> = stmt
            .split('{')
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        let template = header
            .windows(2)
            .find(|w| w[0] == "from")
            .map(|w| w[1].to_string());
        let (import, export) = directions(&stmt);
        out.insert(
            key,
            Item {
                text: stmt.clone(),
                words: words.iter().map(|w| w.to_string()).collect(),
                import,
                export,
                template,
            },
        );
    }
    out
}

fn strip_comments(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("/*") {
            rest = r.split_once("*/").map_or("", |(_, after)| after);
        } else if rest.starts_with('#') {
            rest = rest.split_once('\n').map_or("", |(_, after)| after);
            out.push('\n');
        } else if rest.starts_with('"') {
            let end = rest[1..].find('"').map_or(rest.len(), |e| e + 2);
            out.push_str(&rest[..end]);
            rest = &rest[end..];
        } else {
            let c = rest.chars().next().expect("not empty");
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// Top-level statements: up to a `;` at depth 0, or a `{ … }` block closing back to depth 0
/// (with the `;` that may follow).
fn statements(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    // Inside `[ … ]` (prefix sets: `10.0.0.0/8{16,24}`) braces are not blocks.
    let mut brackets = 0usize;
    for c in text.chars() {
        current.push(c);
        match c {
            '[' => brackets += 1,
            ']' => brackets = brackets.saturating_sub(1),
            _ if brackets > 0 => {}
            '{' => depth += 1,
            '}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    out.push(std::mem::take(&mut current).trim().to_string());
                }
            }
            ';' if depth == 0 => {
                let s = std::mem::take(&mut current);
                let s = s.trim().trim_end_matches(';').trim();
                if !s.is_empty() {
                    out.push(s.to_string());
                }
            }
            _ => {}
        }
    }
    out
}

/// The words of a protocol's `import …;` and `export …;` statements (at any depth: channel
/// blocks), option statements (`import limit`, `import table`) included: they name nothing.
fn directions(block: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut import = BTreeSet::new();
    let mut export = BTreeSet::new();
    let tokens = tokens(block);
    let mut i = 0;
    while i < tokens.len() {
        let target = match tokens[i].as_str() {
            "import" => &mut import,
            "export" => &mut export,
            _ => {
                i += 1;
                continue;
            }
        };
        let mut depth = 0i32;
        i += 1;
        while i < tokens.len() {
            match tokens[i].as_str() {
                "{" => depth += 1,
                "}" if depth == 0 => break,
                "}" => depth -= 1,
                ";" if depth == 0 => break,
                w => {
                    target.insert(w.to_string());
                }
            }
            i += 1;
        }
    }
    (import, export)
}

fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
        if matches!(c, '{' | '}' | ';') {
            out.push(c.to_string());
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// The definitions `names` reach, through what each definition names.
fn closure(names: &BTreeSet<String>, defs: &BTreeMap<String, Item>) -> BTreeSet<String> {
    let by_name: BTreeMap<&str, &String> = defs
        .keys()
        .filter(|k| !k.starts_with("protocol ") && !k.starts_with("template "))
        .filter_map(|k| Some((k.split_once(' ')?.1, k)))
        .collect();
    let mut seen = BTreeSet::new();
    let mut todo: Vec<&String> = names
        .iter()
        .filter_map(|n| by_name.get(n.as_str()).copied())
        .collect();
    while let Some(key) = todo.pop() {
        if seen.insert(key.clone()) {
            for w in &defs[key].words {
                if let Some(k) = by_name.get(w.as_str()) {
                    todo.push(k);
                }
            }
        }
    }
    seen
}

/// What `configure` does when routelb's include goes from `old` to `new` in a configuration
/// whose other files hold `base`.
pub fn plan(base: &str, old: &str, new: &str) -> Vec<Step> {
    let old_items = items(old);
    let new_items = items(new);
    let mut defs = items(base);
    defs.extend(old_items.clone());
    defs.extend(new_items.clone());
    let keys: BTreeSet<&String> = old_items.keys().chain(new_items.keys()).collect();
    let mut steps = Vec::new();
    for key in keys {
        let (before, after) = (old_items.get(key), new_items.get(key));
        // BIRD compares what it parsed: spacing and line breaks change nothing.
        let normal =
            |i: Option<&Item>| i.map(|i| i.text.split_whitespace().collect::<Vec<_>>().join(" "));
        if normal(before) == normal(after) {
            continue;
        }
        let lines = changed_lines(before, after);
        let effects = effects_of(key, &defs);
        steps.push(Step::new(key.clone(), lines, effects));
    }
    steps
}

/// The protocols a changed definition reaches, and how.
fn effects_of(key: &str, defs: &BTreeMap<String, Item>) -> BTreeSet<Effect> {
    let mut effects = BTreeSet::new();
    for (pkey, p) in defs.iter().filter(|(k, _)| k.starts_with("protocol ")) {
        let protocol = pkey.trim_start_matches("protocol ").to_string();
        // The protocol and the templates it comes from, nearest first (`template b from a`).
        let mut chain: Vec<(&str, &Item)> = vec![(pkey.as_str(), p)];
        while let Some(t) = chain.last().and_then(|(_, i)| i.template.as_ref()) {
            let tkey = format!("template {t}");
            match defs.get_key_value(&tkey) {
                Some((k, item)) if !chain.iter().any(|(c, _)| *c == k.as_str()) => {
                    chain.push((k.as_str(), item))
                }
                _ => break,
            }
        }
        if chain.iter().any(|(k, _)| *k == key) {
            effects.insert(protocol_changed(p, protocol));
            continue;
        }
        let names = |f: fn(&Item) -> &BTreeSet<String>| -> BTreeSet<String> {
            chain
                .iter()
                .flat_map(|(_, i)| f(i).iter().cloned())
                .collect()
        };
        let reaches = |names: BTreeSet<String>| closure(&names, defs).contains(key);
        if reaches(names(|i| &i.export)) {
            effects.insert(Effect::BirdReexport {
                protocol: protocol.clone(),
            });
        }
        if reaches(names(|i| &i.import)) {
            effects.insert(Effect::BirdReimport { protocol });
        }
    }
    effects
}

/// A protocol whose own block changed: BIRD restarts it (measured on BIRD 2.0.12 for the
/// direct protocol's interfaces and preference, and a BGP protocol's options and neighbor).
fn protocol_changed(_p: &Item, protocol: String) -> Effect {
    Effect::BirdRestart { protocol }
}

/// `-` lines of the old definition not in the new one, then `+` lines new in it.
fn changed_lines(before: Option<&Item>, after: Option<&Item>) -> Vec<String> {
    let lines = |i: Option<&Item>| -> Vec<String> {
        i.map(|i| {
            i.text
                .lines()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect()
        })
        .unwrap_or_default()
    };
    let (old, new) = (lines(before), lines(after));
    old.iter()
        .filter(|l| !new.contains(l))
        .map(|l| format!("- {l}"))
        .chain(
            new.iter()
                .filter(|l| !old.contains(l))
                .map(|l| format!("+ {l}")),
        )
        .collect()
}
