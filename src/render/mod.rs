//! Rendering: policies resolved ([`policy`]) into the data contract ([`model`]), through Tera
//! templates into a daemon fragment. Pure apart from reading a template directory when one is
//! given.

pub mod attributes;
mod bgp;
mod build;
pub mod drain;
pub mod fallback;
mod hooks;
mod igp;
mod lists;
pub mod model;
pub mod policy;
mod services;
pub mod weights;

use std::collections::HashMap;
use std::path::Path;

use tera::{Context, Tera};

pub use build::build;
pub use model::{CONTRACT, FragmentData, Instances, Problem, RenderInput};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DaemonKind {
    Frr,
    /// BIRD 2: one daemon, one include for both families.
    Bird,
    /// BIRD 1.x (1.6): `bird` for IPv4 and `bird6` for IPv6, one include each. The fragment
    /// holds both, the IPv6 half after [`BIRD1_V6_MARKER`]; see [`split_bird1`].
    Bird1,
}

/// The line that starts the `bird6` (IPv6) half of a BIRD 1.x fragment.
pub const BIRD1_V6_MARKER: &str = "# ---- routelb: bird6 (IPv6) include follows ----";

/// A BIRD 1.x fragment's two includes: `bird`'s (IPv4) and `bird6`'s (IPv6). A fragment with
/// no marker is all IPv4.
pub fn split_bird1(fragment: &str) -> (&str, &str) {
    let marker = format!("{BIRD1_V6_MARKER}\n");
    match fragment.find(&marker) {
        Some(at) => (&fragment[..at], &fragment[at + marker.len()..]),
        None => (fragment, ""),
    }
}

impl DaemonKind {
    pub fn name(self) -> &'static str {
        match self {
            DaemonKind::Frr => "frr",
            DaemonKind::Bird => "bird",
            DaemonKind::Bird1 => "bird1",
        }
    }

    /// Whether this is one of the BIRD versions.
    pub fn is_bird(self) -> bool {
        matches!(self, DaemonKind::Bird | DaemonKind::Bird1)
    }

    /// Template files, in the order their output is concatenated.
    /// The templates whose output, in this order, is the fragment.
    fn files(self) -> &'static [&'static str] {
        match self {
            DaemonKind::Frr => &[
                "base", "bgp", "ospf", "ospf6", "isis", "rip", "ripng", "bfd",
            ],
            DaemonKind::Bird | DaemonKind::Bird1 => &["base", "bgp", "ospf", "rip", "bfd"],
        }
    }

    /// The template rendering one prefix list, whose output the others print as
    /// `list.rendered` ([`ListCache`]).
    fn list_template(self) -> Option<&'static str> {
        match self {
            DaemonKind::Frr => Some("prefix_list"),
            DaemonKind::Bird | DaemonKind::Bird1 => None,
        }
    }
}

macro_rules! embedded {
    ($($daemon:literal / $file:literal),* $(,)?) => {
        &[$(($daemon, $file, include_str!(concat!("../../templates/", $daemon, "/", $file, ".conf.tera")))),*]
    };
}

/// The templates shipped in the binary, used unless a template directory is given.
const EMBEDDED: &[(&str, &str, &str)] = embedded![
    "frr" / "base",
    "frr" / "prefix_list",
    "frr" / "bgp",
    "frr" / "ospf",
    "frr" / "ospf6",
    "frr" / "isis",
    "frr" / "rip",
    "frr" / "ripng",
    "frr" / "bfd",
    "bird" / "base",
    "bird" / "bgp",
    "bird" / "ospf",
    "bird" / "rip",
    "bird" / "bfd",
    "bird1" / "base",
    "bird1" / "bgp",
    "bird1" / "ospf",
    "bird1" / "rip",
    "bird1" / "bfd",
];

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template {file}: cannot read: {error}")]
    Read { file: String, error: std::io::Error },
    #[error(
        "template {file} must start with `{{#- routelb-contract: N -#}}` naming the data contract it was written for"
    )]
    NoContract { file: String },
    #[error(
        "template {file} was written for contract {declared}, but this routelb provides contract {CONTRACT}; update the template (docs/templates.md lists the changes)"
    )]
    WrongContract { file: String, declared: u32 },
    #[error("template {file}: {message}")]
    Tera { file: String, message: String },
}

fn tera_message(e: &tera::Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

/// A compiled set of templates for one daemon.
pub struct Templates {
    daemon: DaemonKind,
    tera: Tera,
    lists: ListCache,
}

/// Each prefix list as the templates' context holds it (its fields and `rendered`, the text
/// [`DaemonKind::list_template`] made of it): a pass serializes and renders only the lists
/// that changed (at 5,000 entries in 128 lists, one new entry costs one list, not all). The
/// values move into the context for a render and back after it, never copied. Holds the
/// lists of the last render only, by FRR name, each used only while the list is still equal
/// (comparing a list costs less than hashing it).
#[derive(Default)]
struct ListCache(std::sync::Mutex<HashMap<String, (model::PrefixList, serde_json::Value)>>);

/// The lists of one render, taken from the cache: their values go into the context, the
/// lists come back with the values after it ([`ListCache::put_back`]).
struct TakenLists {
    lists: Vec<model::PrefixList>,
    values: Vec<serde_json::Value>,
}

impl ListCache {
    /// Each list's value with `rendered`, in order; serializes and renders those not seen in
    /// the last render.
    fn take(
        &self,
        lists: &[model::PrefixList],
        render: impl Fn(&model::PrefixList) -> Result<String, TemplateError>,
    ) -> Result<TakenLists, TemplateError> {
        let mut cache = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut taken = TakenLists {
            lists: Vec::with_capacity(lists.len()),
            values: Vec::with_capacity(lists.len()),
        };
        for list in lists {
            let (list, value) = match cache.remove(&list.frr_name) {
                Some((kept, value)) if kept == *list => (kept, value),
                _ => {
                    let mut value = serde_json::to_value(list).expect("a list always serializes");
                    value["rendered"] = serde_json::Value::String(render(list)?);
                    (list.clone(), value)
                }
            };
            taken.lists.push(list);
            taken.values.push(value);
        }
        Ok(taken)
    }

    /// Keeps the lists of this render, with their values as the context gave them back.
    fn put_back(&self, lists: Vec<model::PrefixList>, values: Vec<serde_json::Value>) {
        let mut cache = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *cache = lists
            .into_iter()
            .zip(values)
            .map(|(list, value)| (list.frr_name.clone(), (list, value)))
            .collect();
    }
}

impl Templates {
    /// Templates from `dir` when given (see [`Templates::from_dir`]), else the built-in ones.
    pub fn load(daemon: DaemonKind, dir: Option<&Path>) -> Result<Templates, TemplateError> {
        match dir {
            Some(d) => Self::from_dir(daemon, d),
            None => Self::embedded(daemon),
        }
    }

    /// The templates built into routelb.
    pub fn embedded(daemon: DaemonKind) -> Result<Templates, TemplateError> {
        let sources: Vec<(String, String)> = EMBEDDED
            .iter()
            .filter(|(d, _, _)| *d == daemon.name())
            .map(|(_, f, text)| (f.to_string(), text.to_string()))
            .collect();
        Self::compile(daemon, sources)
    }

    /// Templates from `dir/<daemon>/<file>.conf.tera`; a file missing there falls back to the
    /// built-in one, so a team can override only the templates it cares about.
    pub fn from_dir(daemon: DaemonKind, dir: &Path) -> Result<Templates, TemplateError> {
        let mut sources = Vec::new();
        for (d, f, text) in EMBEDDED.iter().filter(|(d, _, _)| *d == daemon.name()) {
            let path = dir.join(d).join(format!("{f}.conf.tera"));
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => text.to_string(),
                Err(error) => {
                    return Err(TemplateError::Read {
                        file: path.display().to_string(),
                        error,
                    });
                }
            };
            sources.push((f.to_string(), text));
        }
        Self::compile(daemon, sources)
    }

    /// Templates from a revision's sources (file stem → text); a file missing there falls back
    /// to the built-in one, as with [`Templates::from_dir`].
    pub fn from_sources(
        daemon: DaemonKind,
        given: &std::collections::BTreeMap<String, String>,
    ) -> Result<Templates, TemplateError> {
        let sources = EMBEDDED
            .iter()
            .filter(|(d, _, _)| *d == daemon.name())
            .map(|(_, f, text)| {
                let text = given.get(*f).map_or(*text, String::as_str);
                (f.to_string(), text.to_string())
            })
            .collect();
        Self::compile(daemon, sources)
    }

    fn compile(
        daemon: DaemonKind,
        sources: Vec<(String, String)>,
    ) -> Result<Templates, TemplateError> {
        let mut tera = Tera::default();
        tera.autoescape_on(vec![]);
        for (file, text) in &sources {
            let declared = text
                .lines()
                .next()
                .and_then(|l| l.split("routelb-contract:").nth(1))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("-#}")
                        .trim_end_matches("#}")
                        .trim()
                        .parse::<u32>()
                        .ok()
                });
            match declared {
                None => {
                    return Err(TemplateError::NoContract {
                        file: format!("{}/{file}", daemon.name()),
                    });
                }
                Some(v) if v != CONTRACT => {
                    return Err(TemplateError::WrongContract {
                        file: format!("{}/{file}", daemon.name()),
                        declared: v,
                    });
                }
                Some(_) => {}
            }
            tera.add_raw_template(file, text)
                .map_err(|e| TemplateError::Tera {
                    file: format!("{}/{file}", daemon.name()),
                    message: tera_message(&e),
                })?;
        }
        Ok(Templates {
            daemon,
            tera,
            lists: ListCache::default(),
        })
    }

    pub fn daemon(&self) -> DaemonKind {
        self.daemon
    }

    /// Renders the whole fragment. BIRD 1.x templates are rendered once per family (`family`
    /// is 4, then 6), the two includes joined by [`BIRD1_V6_MARKER`].
    pub fn render(&self, data: &FragmentData) -> Result<String, TemplateError> {
        let Some(file) = self.daemon.list_template() else {
            let value = serde_json::to_value(data).expect("the contract always serializes");
            return self.render_value(value).0;
        };
        let mut value = serde_json::to_value(data.without_prefix_lists())
            .expect("the contract always serializes");
        let taken = self
            .lists
            .take(&data.prefix_lists, |list| self.render_list(file, list))?;
        value["prefix_lists"] = serde_json::Value::Array(taken.values);
        let (text, mut ctx) = self.render_value(value);
        let values = match ctx.remove("prefix_lists") {
            Some(serde_json::Value::Array(values)) => values,
            _ => unreachable!("the context keeps what it was given"),
        };
        self.lists.put_back(taken.lists, values);
        text
    }

    /// Renders the context `value`, and gives the context back with the result.
    fn render_value(&self, value: serde_json::Value) -> (Result<String, TemplateError>, Context) {
        let mut ctx = Context::from_value(value).expect("the contract is an object");
        if self.daemon != DaemonKind::Bird1 {
            return (self.render_files(&ctx), ctx);
        }
        ctx.insert("family", &4);
        let v4 = self.render_files(&ctx);
        ctx.insert("family", &6);
        let v6 = self.render_files(&ctx);
        let text = v4.and_then(|v4| Ok(format!("{v4}{BIRD1_V6_MARKER}\n{}", v6?)));
        (text, ctx)
    }

    fn render_list(&self, file: &str, list: &model::PrefixList) -> Result<String, TemplateError> {
        let mut ctx = Context::new();
        ctx.insert("list", list);
        self.tera
            .render(file, &ctx)
            .map_err(|e| TemplateError::Tera {
                file: format!("{}/{file}", self.daemon.name()),
                message: tera_message(&e),
            })
    }

    fn render_files(&self, ctx: &Context) -> Result<String, TemplateError> {
        let mut out = String::new();
        for file in self.daemon.files() {
            let part = self
                .tera
                .render(file, ctx)
                .map_err(|e| TemplateError::Tera {
                    file: format!("{}/{file}", self.daemon.name()),
                    message: tera_message(&e),
                })?;
            out.push_str(&part);
        }
        Ok(tidy(&out))
    }
}

/// Templates may leave blank lines where a block was skipped; keep the output tidy.
fn tidy(out: &str) -> String {
    let mut tidy = String::with_capacity(out.len());
    let mut blank = false;
    for line in out.lines() {
        let is_blank = line.trim().is_empty();
        if !(is_blank && blank) {
            tidy.push_str(line.trim_end());
            tidy.push('\n');
        }
        blank = is_blank;
    }
    tidy
}

#[cfg(test)]
mod tests;
