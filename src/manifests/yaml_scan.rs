//! A pass over the YAML events of a text, before serde_yaml loads it, that refuses what would
//! make loading slow or large: nesting deeper than a limit, more nodes than a budget (counting
//! every alias as the nodes it expands to), and an alias inside the node it names.
//!
//! It runs libyaml (the `unsafe-libyaml` crate serde_yaml itself parses with) event by event, so
//! it sees exactly the structure serde_yaml will, and stops at the first event over a limit.
//! Refusing early matters: serde_yaml builds the events of a whole document before its own
//! recursion limit (128) is checked, and libyaml's scanner spends time proportional to the flow
//! nesting (`[`, `{`) on every token, so a deeply nested document costs time quadratic in its size
//! (docs/operations.md has the measurements). Up to the first event over the limit, the scanner has
//! read at most a line (a possible simple key is given up after 1024 characters) beyond it.
//!
//! A text libyaml cannot parse is not refused here: the scan stops there and serde_yaml reports
//! the same error, at the same place, when it reaches it.

use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::ptr::addr_of_mut;

/// What was over a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Over {
    /// A sequence or mapping nested deeper than `max_depth`.
    Depth,
    /// More nodes than were left in the budget.
    Nodes,
    /// An alias (its anchor's name) inside the node it names: serde_yaml would expand it until
    /// its recursion limit, a copy of the node at every level.
    RecursiveAlias(Vec<u8>),
}

/// Why a text was refused: what, in which document (1-based, as serde_yaml counts them) and
/// where (1-based line and column of the event over the limit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub over: Over,
    pub document: usize,
    pub line: u64,
    pub column: u64,
}

/// A definition of an anchor: which one (a later definition of a name replaces the earlier, as
/// in serde_yaml), and the nodes of its node once that is closed.
struct Anchor {
    id: u64,
    size: Option<u64>,
}

/// An open sequence or mapping: the anchor it defines (name, id), and the node count at its start.
struct Open {
    anchor: Option<(Vec<u8>, u64)>,
    start: u64,
}

/// Checks `text`: no collection nested deeper than `max_depth`, and no more nodes (scalars,
/// sequences and mappings, an alias counted as the nodes of what it names) than `nodes_left`,
/// from which the text's nodes are taken.
pub fn scan(text: &str, max_depth: usize, nodes_left: &mut u64) -> Result<(), Refusal> {
    let mut parser = Parser::new(text.as_bytes());
    let mut document = 0;
    let mut anchors: HashMap<Vec<u8>, Anchor> = HashMap::new();
    let mut ids = 0u64;
    let mut define = |anchors: &mut HashMap<Vec<u8>, Anchor>, name: Option<Vec<u8>>, size| {
        name.map(|name| {
            ids += 1;
            anchors.insert(name.clone(), Anchor { id: ids, size });
            (name, ids)
        })
    };
    let mut open: Vec<Open> = Vec::new();
    let mut count = 0u64;
    let budget = *nodes_left;
    while let Some((event, line, column)) = parser.next() {
        let refusal = |over, document| Refusal {
            over,
            document,
            line: line + 1,
            column: column + 1,
        };
        let added = match event {
            Event::StreamEnd => break,
            Event::DocumentStart => {
                document += 1;
                anchors.clear();
                0
            }
            Event::Other => 0,
            Event::Scalar(name) => {
                define(&mut anchors, name, Some(1));
                1
            }
            Event::Start(name) => {
                if open.len() >= max_depth {
                    return Err(refusal(Over::Depth, document));
                }
                let anchor = define(&mut anchors, name, None);
                open.push(Open {
                    anchor,
                    start: count,
                });
                1
            }
            Event::End => {
                if let Some(Open {
                    anchor: Some((name, id)),
                    start,
                }) = open.pop()
                    && let Some(a) = anchors.get_mut(&name)
                    && a.id == id
                {
                    a.size = Some(count - start);
                }
                0
            }
            Event::Alias(name) => match anchors.get(&name) {
                Some(Anchor {
                    size: Some(size), ..
                }) => *size,
                Some(Anchor { size: None, .. }) => {
                    return Err(refusal(Over::RecursiveAlias(name), document));
                }
                // serde_yaml reports the unknown anchor.
                None => 1,
            },
        };
        count = count.saturating_add(added);
        if count > budget {
            return Err(refusal(Over::Nodes, document));
        }
    }
    *nodes_left = budget - count;
    Ok(())
}

enum Event {
    StreamEnd,
    DocumentStart,
    /// A sequence or mapping starts, with the anchor it defines.
    Start(Option<Vec<u8>>),
    End,
    Scalar(Option<Vec<u8>>),
    Alias(Vec<u8>),
    Other,
}

/// libyaml's parser over a borrowed text. The parser keeps a pointer to itself (its read handler's
/// data), so it lives in a box and never moves.
struct Parser<'a> {
    raw: Box<MaybeUninit<unsafe_libyaml::yaml_parser_t>>,
    _input: std::marker::PhantomData<&'a [u8]>,
    failed: bool,
}

impl<'a> Parser<'a> {
    fn new(input: &'a [u8]) -> Parser<'a> {
        let mut raw = Box::new(MaybeUninit::<unsafe_libyaml::yaml_parser_t>::uninit());
        // SAFETY: `yaml_parser_initialize` fills the whole struct (it only fails when memory
        // cannot be allocated, as serde_yaml assumes too); the input outlives the parser ('a), and
        // the box keeps the parser's address stable.
        unsafe {
            let p = raw.as_mut_ptr();
            if unsafe_libyaml::yaml_parser_initialize(p).fail {
                panic!("libyaml: out of memory");
            }
            unsafe_libyaml::yaml_parser_set_encoding(p, unsafe_libyaml::YAML_UTF8_ENCODING);
            unsafe_libyaml::yaml_parser_set_input_string(p, input.as_ptr(), input.len() as u64);
        }
        Parser {
            raw,
            _input: std::marker::PhantomData,
            failed: false,
        }
    }

    /// The next event and its 0-based line and column; `None` once the text does not parse.
    fn next(&mut self) -> Option<(Event, u64, u64)> {
        if self.failed {
            return None;
        }
        let mut event = MaybeUninit::<unsafe_libyaml::yaml_event_t>::uninit();
        // SAFETY: the parser is initialized (new) and not yet deleted (drop); a successful
        // `yaml_parser_parse` initializes the event, whose anchor pointers are null or point to
        // NUL-terminated strings it owns until `yaml_event_delete`, after which nothing of it is
        // used.
        unsafe {
            let p = self.raw.as_mut_ptr();
            let e = event.as_mut_ptr();
            if unsafe_libyaml::yaml_parser_parse(p, e).fail {
                self.failed = true;
                return None;
            }
            let anchor = |ptr: *const u8| {
                (!ptr.is_null()).then(|| std::ffi::CStr::from_ptr(ptr.cast()).to_bytes().to_vec())
            };
            let data = addr_of_mut!((*e).data);
            let converted = match (*e).type_ {
                unsafe_libyaml::YAML_STREAM_END_EVENT => Event::StreamEnd,
                unsafe_libyaml::YAML_DOCUMENT_START_EVENT => Event::DocumentStart,
                unsafe_libyaml::YAML_SEQUENCE_START_EVENT => {
                    Event::Start(anchor((*data).sequence_start.anchor))
                }
                unsafe_libyaml::YAML_MAPPING_START_EVENT => {
                    Event::Start(anchor((*data).mapping_start.anchor))
                }
                unsafe_libyaml::YAML_SEQUENCE_END_EVENT
                | unsafe_libyaml::YAML_MAPPING_END_EVENT => Event::End,
                unsafe_libyaml::YAML_SCALAR_EVENT => Event::Scalar(anchor((*data).scalar.anchor)),
                unsafe_libyaml::YAML_ALIAS_EVENT => {
                    Event::Alias(anchor((*data).alias.anchor).unwrap_or_default())
                }
                _ => Event::Other,
            };
            let mark = (*e).start_mark;
            unsafe_libyaml::yaml_event_delete(e);
            Some((converted, mark.line, mark.column))
        }
    }
}

impl Drop for Parser<'_> {
    fn drop(&mut self) {
        // SAFETY: initialized in `new`, deleted once.
        unsafe { unsafe_libyaml::yaml_parser_delete(self.raw.as_mut_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, budget: u64) -> Result<u64, Refusal> {
        let mut left = budget;
        scan(text, 4, &mut left).map(|()| budget - left)
    }

    #[test]
    fn counts_nodes_and_expands_aliases() {
        assert_eq!(check("", 100), Ok(0));
        assert_eq!(check("a: 1", 100), Ok(3));
        assert_eq!(check("a: [1, 2]\n---\nb: {c: d}\n", 100), Ok(10));
        // The anchored sequence is 3 nodes; each alias stands for 3 more.
        assert_eq!(
            check("a: &x [1, 2]\nb: *x\nc: *x\n", 100),
            Ok(1 + 4 + 2 * 4)
        );
        // A later definition replaces the earlier.
        assert_eq!(
            check("- &x 1\n- &x [1, 2, 3]\n- *x\n", 100),
            Ok(1 + 1 + 4 + 4)
        );
        let over = check("a: &x [1, 2]\nb: [*x, *x, *x]\n", 12).unwrap_err();
        assert_eq!((over.over, over.document, over.line), (Over::Nodes, 1, 2));
    }

    #[test]
    fn refuses_depth_where_it_is_exceeded() {
        assert!(check("[[[[x]]]]", 100).is_ok());
        let r = check("ok: 1\n---\n[[[[[x]]]]]", 100).unwrap_err();
        assert_eq!(
            r,
            Refusal {
                over: Over::Depth,
                document: 2,
                line: 3,
                column: 5
            }
        );
        let r = check("a:\n b:\n  c:\n   d:\n    e: 1\n", 100).unwrap_err();
        assert_eq!((r.over, r.line), (Over::Depth, 5));
    }

    #[test]
    fn refuses_an_alias_inside_its_node() {
        let r = check("a: &x [1, *x]\n", 100).unwrap_err();
        assert_eq!(r.over, Over::RecursiveAlias(b"x".to_vec()));
        // Outside it, the same alias is fine.
        assert!(check("a: &x [1]\nb: *x\n", 100).is_ok());
        // Anchors do not outlive their document.
        assert!(check("a: &x [1]\n---\nb: [*x]\n", 100).is_ok());
    }

    #[test]
    fn leaves_syntax_errors_to_serde_yaml() {
        // Scanning stops at the error, unrefused; what came before counts.
        assert_eq!(check("a: [1, 2\n", 100), Ok(5));
        assert_eq!(check("a: b: c", 100), Ok(3));
    }
}
