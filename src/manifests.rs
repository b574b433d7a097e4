//! Reading a directory of Kubernetes manifests (YAML, multi-document): the input of `render`,
//! `check` and standalone mode.
//!
//! Files get the rules the API server would apply to the same objects, so a directory that loads
//! here would also `kubectl apply`: routelb's kinds must be `routelb.io/v1alpha1` and hold no
//! field their CRD does not define; Service, Node and Namespace must be `v1` (fields k8s-openapi
//! does not know are warnings: it may lag newer Kubernetes); names are valid for their kind; an
//! object is defined once. And reading is bounded: see [`MAX_FILE_BYTES`], [`MAX_DIR_BYTES`],
//! [`MAX_DEPTH`] and [`MAX_NODES`] (docs/operations.md has the measurements behind them).

mod fields;
mod yaml_scan;

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Namespace, Node, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;

use crate::api::values::{is_dns_label, is_dns_name, is_dns1035_label, short, shown};
use crate::api::{AddressPool, RoutingPolicy};

/// The largest file read (4 MiB): 15,000-30,000 Services.
pub const MAX_FILE_BYTES: u64 = 4 << 20;
/// The most read from one directory, all files together (16 MiB).
pub const MAX_DIR_BYTES: u64 = 16 << 20;
/// The deepest nesting of lists and maps in a document. Kubernetes objects nest 10-15 levels
/// (a Deployment's affinity terms), routelb's read ones at most 8.
pub const MAX_DEPTH: usize = 64;
/// The most YAML nodes (scalars, lists, maps; an alias counted as the nodes it stands for) in one
/// directory: about 50,000 Services. It bounds parse time and memory (200 MB for a document of
/// 990,000 nodes) whatever the shape, aliases included.
pub const MAX_NODES: u64 = 1_000_000;
/// Unknown fields listed per document; more are counted.
const LISTED_FIELDS: usize = 8;
/// Warnings kept; more are counted in one last line.
const MAX_WARNINGS: usize = 100;

#[derive(Default, Debug, Clone)]
pub struct Manifests {
    pub pools: Vec<AddressPool>,
    pub policies: Vec<RoutingPolicy>,
    pub services: Vec<Service>,
    pub nodes: Vec<Node>,
    pub namespaces: Vec<Namespace>,
    /// Documents of kinds routelb does not read, as `file: kind`.
    pub ignored: Vec<String>,
    /// What was read but is worth a word, as `file: document N: message`: fields of a Service,
    /// Node or Namespace that k8s-openapi does not know (a newer Kubernetes may; they are not
    /// read).
    pub warnings: Vec<String>,
    /// Where each object was defined, by kind and `namespace/name`, to refuse a second one.
    defined: HashMap<(&'static str, String), (PathBuf, usize)>,
    /// Warnings not kept, beyond [`MAX_WARNINGS`].
    warnings_dropped: usize,
}

impl Manifests {
    /// Keeps a warning, or counts it once [`MAX_WARNINGS`] are kept (the message is then not
    /// built).
    fn warn(&mut self, message: impl FnOnce() -> String) {
        if self.warnings.len() < MAX_WARNINGS {
            self.warnings.push(message());
            return;
        }
        self.warnings_dropped += 1;
        let more = format!("… and {} more warnings", self.warnings_dropped);
        if self.warnings_dropped == 1 {
            self.warnings.push(more);
        } else if let Some(last) = self.warnings.last_mut() {
            *last = more;
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub struct ManifestError {
    pub file: PathBuf,
    /// The document in the file, from 1; 0 for the file (or directory) as a whole.
    pub index: usize,
    pub message: String,
}

impl std::fmt::Display for ManifestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.index {
            0 => write!(f, "{}: {}", self.file.display(), self.message),
            i => write!(f, "{}: document {i}: {}", self.file.display(), self.message),
        }
    }
}

fn error(file: &Path, index: usize, message: impl Into<String>) -> ManifestError {
    ManifestError {
        file: file.into(),
        index,
        message: message.into(),
    }
}

fn shown_bytes(b: &[u8]) -> String {
    short(&String::from_utf8_lossy(b))
}

/// A parser's message with every long quoted value in it (`"…"`, `` `…` ``) cut like [`short`]:
/// serde echoes whole values (`unknown variant `…``, `invalid type: string "…"`).
fn shorten_quoted(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len().min(1024));
    let mut rest = msg;
    while let Some(open) = rest.find(['"', '`']) {
        let q = rest.as_bytes()[open];
        out.push_str(&rest[..=open]);
        rest = &rest[open + 1..];
        // The closing quote: the next one not escaped by a backslash.
        let mut close = None;
        let mut escaped = false;
        for (i, b) in rest.bytes().enumerate() {
            match b {
                b'\\' if q == b'"' && !escaped => escaped = true,
                b if b == q && !escaped => {
                    close = Some(i);
                    break;
                }
                _ => escaped = false,
            }
        }
        let end = close.unwrap_or(rest.len());
        out.push_str(&short(&rest[..end]));
        rest = &rest[end..];
        if close.is_some() {
            out.push(q as char);
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    out
}

/// Every `*.yaml` / `*.yml` entry directly in `dir`, in name order, except hidden ones (names
/// starting with `.`: editors' lock and swap files, the state file). Entries that are not
/// regular files are listed too, for [`load_dir`] to refuse rather than skip.
pub fn yaml_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !name.starts_with('.') && (name.ends_with(".yaml") || name.ends_with(".yml")) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Reads one file of at most [`MAX_FILE_BYTES`], refusing anything but a regular file (without
/// blocking on a FIFO) and text that is not UTF-8. Every error names the file.
fn read_file(file: &Path) -> Result<String, ManifestError> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        // A FIFO would block `open` until a writer comes; it is refused below instead.
        .custom_flags(libc::O_NONBLOCK)
        .open(file)
        .map_err(|e| {
            let dangling = e.kind() == std::io::ErrorKind::NotFound
                && std::fs::symlink_metadata(file).is_ok_and(|m| m.file_type().is_symlink());
            if dangling {
                error(file, 0, "is a symbolic link to a file that does not exist")
            } else {
                error(file, 0, format!("cannot open: {e}"))
            }
        })?;
    let meta = f
        .metadata()
        .map_err(|e| error(file, 0, format!("cannot read: {e}")))?;
    let t = meta.file_type();
    if !t.is_file() {
        let what = if t.is_dir() {
            "a directory"
        } else if t.is_fifo() {
            "a FIFO"
        } else if t.is_socket() {
            "a socket"
        } else if t.is_char_device() || t.is_block_device() {
            "a device"
        } else {
            "not a regular file"
        };
        return Err(error(
            file,
            0,
            format!("is {what}; only regular files (or links to them) are read"),
        ));
    }
    let too_big = |n: u64| {
        error(
            file,
            0,
            format!(
                "is {n} bytes, over the limit of {MAX_FILE_BYTES} bytes (4 MiB) for one file; \
                 split it"
            ),
        )
    };
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_big(meta.len()));
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    // Bounded even if the file grows while it is read.
    f.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| error(file, 0, format!("cannot read: {e}")))?;
    if buf.len() as u64 > MAX_FILE_BYTES {
        return Err(too_big(buf.len() as u64));
    }
    String::from_utf8(buf).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        error(
            file,
            0,
            format!("is not UTF-8 text (invalid byte at offset {at}, line {line})"),
        )
    })
}

/// Reads every manifest file in `dir` (see [`yaml_files`]).
pub fn load_dir(dir: &Path) -> Result<Manifests, ManifestError> {
    let files =
        yaml_files(dir).map_err(|e| error(dir, 0, format!("cannot read the directory: {e}")))?;
    // Every file is read (and the directory's size checked) before any is parsed.
    let mut texts = Vec::with_capacity(files.len());
    let mut total = 0u64;
    for file in files {
        let text = read_file(&file)?;
        total += text.len() as u64;
        if total > MAX_DIR_BYTES {
            return Err(error(
                &file,
                0,
                format!(
                    "brings the directory to {total} bytes, over the limit of {MAX_DIR_BYTES} \
                     bytes (16 MiB) for a directory"
                ),
            ));
        }
        texts.push((file, text));
    }
    let mut m = Manifests::default();
    let mut nodes_left = MAX_NODES;
    for (file, text) in texts {
        load_text(&text, &file, &mut m, &mut nodes_left)?;
    }
    Ok(m)
}

/// Reads the manifests in `text` into `m`, as if from `file`.
pub fn load_str(text: &str, file: &Path, m: &mut Manifests) -> Result<(), ManifestError> {
    let mut nodes_left = MAX_NODES;
    load_text(text, file, m, &mut nodes_left)
}

fn load_text(
    text: &str,
    file: &Path,
    m: &mut Manifests,
    nodes_left: &mut u64,
) -> Result<(), ManifestError> {
    use serde::Deserialize;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(error(
            file,
            0,
            format!(
                "is {} bytes, over the limit of {MAX_FILE_BYTES} bytes (4 MiB) for one file",
                text.len()
            ),
        ));
    }
    yaml_scan::scan(text, MAX_DEPTH, nodes_left).map_err(|r| refused(file, r))?;
    for (index, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let index = index + 1;
        let v = serde_yaml::Value::deserialize(doc)
            .map_err(|e| error(file, index, shorten_quoted(&e.to_string())))?;
        if v.is_null() {
            continue;
        }
        Doc { file, index }.load(v, m)?;
    }
    Ok(())
}

/// The error for a file the YAML scan refused: over a limit, and where.
fn refused(file: &Path, r: yaml_scan::Refusal) -> ManifestError {
    let what = match r.over {
        yaml_scan::Over::Depth => format!(
            "lists and maps nested deeper than {MAX_DEPTH} levels (the limit for a document)"
        ),
        yaml_scan::Over::Nodes => format!(
            "more than {MAX_NODES} YAML nodes (the limit for a directory; scalars, lists and \
             maps, an alias counting as the nodes it stands for)"
        ),
        yaml_scan::Over::RecursiveAlias(name) => {
            format!("alias *{} inside the node it names", shown_bytes(&name))
        }
    };
    error(
        file,
        r.document,
        format!("{what}, at line {} column {}", r.line, r.column),
    )
}

/// What an unknown field is: an error for routelb's own kinds, a warning for core kinds.
enum Strict<'a> {
    Own,
    Core(&'a mut Manifests),
}

#[derive(Clone, Copy)]
enum Rule {
    /// DNS-1123 subdomain: most object names.
    Subdomain,
    /// DNS-1123 label: namespaces.
    Label,
    /// DNS-1035 label: Services.
    Dns1035Label,
}

impl Rule {
    fn check(self, name: &str) -> bool {
        match self {
            Rule::Subdomain => is_dns_name(name),
            Rule::Label => is_dns_label(name),
            Rule::Dns1035Label => is_dns1035_label(name),
        }
    }

    fn explain(self) -> &'static str {
        match self {
            Rule::Subdomain => {
                "a DNS-1123 subdomain: at most 253 characters, dot-separated parts of lower-case \
                 letters, digits and '-', each starting and ending with a letter or digit"
            }
            Rule::Label => {
                "a DNS-1123 label: at most 63 lower-case letters, digits and '-', starting and \
                 ending with a letter or digit (no '.')"
            }
            Rule::Dns1035Label => {
                "a DNS-1035 label: at most 63 lower-case letters, digits and '-', starting with a \
                 letter and ending with a letter or digit (no '.')"
            }
        }
    }
}

/// Where a document is.
struct Doc<'a> {
    file: &'a Path,
    index: usize,
}

impl Doc<'_> {
    fn error(&self, message: impl Into<String>) -> ManifestError {
        error(self.file, self.index, message)
    }

    /// Reads the document `v` into `m` by its kind; kinds routelb does not read are listed as
    /// ignored. Cluster-scoped kinds are keyed by name, Services by namespace/name.
    fn load(&self, v: serde_yaml::Value, m: &mut Manifests) -> Result<(), ManifestError> {
        let kind = match v.get("kind") {
            Some(serde_yaml::Value::String(k)) if !k.is_empty() => k.clone(),
            _ => return Err(self.error("document has no kind")),
        };
        match kind.as_str() {
            "AddressPool" => {
                let p: AddressPool = self.parse(v, Strict::Own)?;
                let name = self.name(&p.metadata, "an AddressPool", Rule::Subdomain)?;
                self.define(m, "AddressPool", name)?;
                m.pools.push(p);
            }
            "RoutingPolicy" => {
                let p: RoutingPolicy = self.parse(v, Strict::Own)?;
                let name = self.name(&p.metadata, "a RoutingPolicy", Rule::Subdomain)?;
                self.define(m, "RoutingPolicy", name)?;
                m.policies.push(p);
            }
            "Service" => {
                let mut s: Service = self.parse(v, Strict::Core(m))?;
                let name = self.name(&s.metadata, "a Service", Rule::Dns1035Label)?;
                let ns = s.metadata.namespace.get_or_insert_with(|| "default".into());
                self.define(m, "Service", format!("{ns}/{name}"))?;
                m.services.push(s);
            }
            "Node" => {
                let n: Node = self.parse(v, Strict::Core(m))?;
                let name = self.name(&n.metadata, "a Node", Rule::Subdomain)?;
                self.define(m, "Node", name)?;
                m.nodes.push(n);
            }
            "Namespace" => {
                let n: Namespace = self.parse(v, Strict::Core(m))?;
                let name = self.name(&n.metadata, "a Namespace", Rule::Label)?;
                self.define(m, "Namespace", name)?;
                m.namespaces.push(n);
            }
            other => m.ignored.push(format!(
                "{}: {}",
                self.file.display(),
                short(&other.escape_debug().to_string())
            )),
        }
        Ok(())
    }

    /// Checks `apiVersion` and parses the document, collecting the fields `T` does not read.
    fn parse<T: DeserializeOwned + JsonSchema + kube::Resource<DynamicType = ()>>(
        &self,
        v: serde_yaml::Value,
        strict: Strict<'_>,
    ) -> Result<T, ManifestError> {
        let kind = T::kind(&());
        let want = T::api_version(&());
        match v.get("apiVersion") {
            Some(serde_yaml::Value::String(v)) if *v == want => {}
            Some(serde_yaml::Value::String(v)) => {
                return Err(self.error(format!(
                    "apiVersion {} is not {want:?}, the apiVersion of kind {kind}",
                    shown(v)
                )));
            }
            _ => {
                return Err(self.error(format!(
                    "document has no apiVersion (kind {kind} is apiVersion: {want})"
                )));
            }
        }
        let mut unknown = Vec::new();
        let obj: T = serde_ignored::deserialize(v, |path| {
            let segs = fields::segments(&path);
            // routelb's CRD types leave these to kube; k8s-openapi's read them.
            if !matches!(segs.as_slice(), [fields::Seg::Key(k)] if k == "apiVersion" || k == "kind")
            {
                unknown.push(segs);
            }
        })
        .map_err(|e| self.error(shorten_quoted(&e.to_string())))?;
        if unknown.is_empty() {
            return Ok(obj);
        }
        let listed = || {
            let schemas = fields::Schemas::of::<T>();
            let mut listed: Vec<String> = unknown
                .iter()
                .take(LISTED_FIELDS)
                .map(|segs| schemas.describe(segs))
                .collect();
            if unknown.len() > LISTED_FIELDS {
                listed.push(format!("and {} more", unknown.len() - LISTED_FIELDS));
            }
            let fields = if unknown.len() == 1 {
                "field"
            } else {
                "fields"
            };
            format!("unknown {fields} {}", listed.join(", "))
        };
        match strict {
            Strict::Own => Err(self.error(format!(
                "{}; kind {kind} ({want}) has no such field",
                listed()
            ))),
            Strict::Core(m) => {
                m.warn(|| {
                    format!(
                        "{}: document {}: {kind}: {}, not read",
                        self.file.display(),
                        self.index,
                        listed()
                    )
                });
                Ok(obj)
            }
        }
    }

    /// Checks `metadata.name` by `rule`, and `metadata.namespace` (if any) as a namespace name:
    /// the API server would refuse other names, and a name reaches templates and daemon objects.
    /// Returns the name.
    fn name(&self, meta: &ObjectMeta, what: &str, rule: Rule) -> Result<String, ManifestError> {
        let name = meta.name.as_deref().unwrap_or_default();
        if name.is_empty() {
            return Err(self.error("document has no metadata.name"));
        }
        let invalid = |field: &str, value: &str, whose: &str, rule: Rule| {
            self.error(format!(
                "{field} {} is not a valid Kubernetes name: the name of {whose} must be {}",
                shown(value),
                rule.explain()
            ))
        };
        if !rule.check(name) {
            return Err(invalid("metadata.name", name, what, rule));
        }
        if let Some(ns) = &meta.namespace
            && !is_dns_label(ns)
        {
            return Err(invalid(
                "metadata.namespace",
                ns,
                "a namespace",
                Rule::Label,
            ));
        }
        Ok(name.into())
    }

    /// Records where `kind` `key` is defined, refusing a second definition as the API server
    /// would (AlreadyExists).
    fn define(
        &self,
        m: &mut Manifests,
        kind: &'static str,
        key: String,
    ) -> Result<(), ManifestError> {
        use std::collections::hash_map::Entry;
        match m.defined.entry((kind, key)) {
            Entry::Occupied(first) => {
                let (file, index) = first.get();
                Err(self.error(format!(
                    "{kind} {} is defined twice: first in {} document {index}",
                    shown(&first.key().1),
                    file.display()
                )))
            }
            Entry::Vacant(v) => {
                v.insert((self.file.into(), self.index));
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_in_messages() {
        let long = "x".repeat(100_000);
        assert_eq!(short("abc"), "abc");
        assert_eq!(short(&long), format!("{}… (100000 bytes)", "x".repeat(64)));
        assert_eq!(
            shown(&long),
            format!("\"{}\"… (100000 bytes)", "x".repeat(64))
        );
        assert_eq!(shown("a\nb"), "\"a\\nb\"");
        let dots = "…".repeat(50);
        assert_eq!(shown(&dots), format!("{:?}… (150 bytes)", "…".repeat(21)));
        // A cut never splits a character.
        assert!(short(&"é".repeat(100)).starts_with(&"é".repeat(32)));
        let msg = format!("unknown variant `{long}`, expected `routed` or `local` at line 3");
        let cut = shorten_quoted(&msg);
        assert!(cut.len() < 200, "{cut}");
        assert!(
            cut.ends_with("expected `routed` or `local` at line 3"),
            "{cut}"
        );
        let msg = format!("invalid type: string \"a\\\"{long}\", expected u32");
        assert!(shorten_quoted(&msg).ends_with("(100003 bytes)\", expected u32"));
        assert_eq!(shorten_quoted("no quotes"), "no quotes");
        assert_eq!(shorten_quoted("unclosed \"abc"), "unclosed \"abc");
    }
}
