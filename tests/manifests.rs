//! Reading a directory of manifests refuses hostile or broken input clearly (naming the file and
//! the offending thing), quickly, and without hanging; valid input still loads.

mod support {
    pub mod files;
}

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use routelb::manifests::{ManifestError, Manifests, load_dir};
use support::files::root;

fn tempdir(name: &str) -> PathBuf {
    support::files::scratch(&format!("manifests-{name}"))
}

/// What a directory entry is.
enum Entry {
    Text(String),
    Bytes(Vec<u8>),
    /// A symbolic link to this target.
    Symlink(&'static str),
    Fifo,
    Dir,
}

fn text(s: impl Into<String>) -> Entry {
    Entry::Text(s.into())
}

fn write(dir: &Path, name: &str, entry: &Entry) {
    let path = dir.join(name);
    match entry {
        Entry::Text(s) => std::fs::write(&path, s).unwrap(),
        Entry::Bytes(b) => std::fs::write(&path, b).unwrap(),
        Entry::Symlink(target) => std::os::unix::fs::symlink(target, &path).unwrap(),
        Entry::Fifo => {
            let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        }
        Entry::Dir => std::fs::create_dir(&path).unwrap(),
    }
}

/// Loads `dir` on another thread, so that a read that blocks fails the test instead of hanging it.
fn load(dir: &Path) -> (Result<Manifests, ManifestError>, Duration) {
    let (tx, rx) = mpsc::channel();
    let d = dir.to_owned();
    std::thread::spawn(move || {
        let start = Instant::now();
        let r = load_dir(&d);
        let _ = tx.send((r, start.elapsed()));
    });
    rx.recv_timeout(Duration::from_secs(120))
        .unwrap_or_else(|_| panic!("{}: load_dir did not return in 120 s", dir.display()))
}

const POOL: &str = "apiVersion: routelb.io/v1alpha1\nkind: AddressPool\nmetadata: {name: web}\nspec: {addresses: [192.0.2.0/28]}\n";
const POLICY: &str = "apiVersion: routelb.io/v1alpha1\nkind: RoutingPolicy\nmetadata: {name: web}\nspec: {protocols: [bgp]}\n";

fn service(ns: Option<&str>, name: &str) -> String {
    let ns = ns.map(|n| format!(", namespace: {n}")).unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}{ns}}}\nspec: {{type: LoadBalancer, ports: [{{port: 80}}]}}\n"
    )
}

fn pool_with(spec: &str) -> String {
    format!(
        "apiVersion: routelb.io/v1alpha1\nkind: AddressPool\nmetadata: {{name: web}}\nspec:\n  addresses: [192.0.2.0/28]\n{spec}"
    )
}

struct Row {
    name: &'static str,
    entries: Vec<(&'static str, Entry)>,
    /// What the error must say (the file first); empty: the directory must load.
    want: Vec<String>,
}

fn row(name: &'static str, entries: Vec<(&'static str, Entry)>, want: &[&str]) -> Row {
    Row {
        name,
        entries,
        want: want.iter().map(|s| s.to_string()).collect(),
    }
}

fn rows() -> Vec<Row> {
    let huge = "x".repeat(100_000);
    let comments = |bytes: usize| text("# padding\n".repeat(bytes / 10));
    vec![
        // Unknown fields in routelb's kinds.
        row(
            "typo_field",
            vec![("pools.yaml", text(pool_with("  avoidBuggyIps: true\n")))],
            &[
                "pools.yaml: document 1",
                "unknown field spec.avoidBuggyIps (did you mean avoidBuggyIPs?)",
            ],
        ),
        row(
            "typo_nested_field",
            vec![(
                "policy.yaml",
                text(format!(
                    "{POOL}---\n{}",
                    POLICY.replace("[bgp]}", "[bgp], bgp: {comunities: [\"1:1\"]}}")
                )),
            )],
            &[
                "policy.yaml: document 2",
                "spec.bgp.comunities (did you mean communities?)",
            ],
        ),
        row(
            "typo_in_metadata",
            vec![(
                "pools.yaml",
                text(POOL.replace("{name: web}", "{name: web, lables: {a: b}}")),
            )],
            &["pools.yaml", "metadata.lables (did you mean labels?)"],
        ),
        row(
            "typo_in_a_list",
            vec![(
                "pools.yaml",
                text(pool_with(
                    "  allocation:\n    serviceSelector:\n      matchExpressions:\n      - {key: a, operater: Exists}\n",
                )),
            )],
            &[
                "pools.yaml",
                "spec.allocation.serviceSelector.matchExpressions[0].operater (did you mean operator?)",
            ],
        ),
        row(
            "unknown_field_no_suggestion",
            vec![("pools.yaml", text(pool_with("  frobnicate: 1\n")))],
            &[
                "pools.yaml",
                "unknown field spec.frobnicate; kind AddressPool",
            ],
        ),
        row(
            "huge_unknown_field_name",
            // An explicit key: an implicit one ends at 1024 characters.
            vec![(
                "pools.yaml",
                text(pool_with(&format!("  ? {huge}\n  : 1\n"))),
            )],
            &["pools.yaml", "unknown field spec.xxxx", "(100000 bytes)"],
        ),
        // apiVersion.
        row(
            "pool_of_another_group",
            vec![(
                "pools.yaml",
                text(POOL.replace("routelb.io/v1alpha1", "metallb.io/v1beta1")),
            )],
            &[
                "pools.yaml: document 1",
                "apiVersion \"metallb.io/v1beta1\" is not \"routelb.io/v1alpha1\"",
            ],
        ),
        row(
            "pool_without_api_version",
            vec![(
                "pools.yaml",
                text(POOL.replace("apiVersion: routelb.io/v1alpha1\n", "")),
            )],
            &["pools.yaml", "no apiVersion", "routelb.io/v1alpha1"],
        ),
        row(
            "service_wrong_api_version",
            vec![(
                "svc.yaml",
                text(service(None, "web").replace("apiVersion: v1", "apiVersion: apps/v1")),
            )],
            &["svc.yaml", "apiVersion \"apps/v1\" is not \"v1\""],
        ),
        row(
            "namespace_wrong_api_version",
            vec![(
                "ns.yaml",
                text("apiVersion: v2\nkind: Namespace\nmetadata: {name: a}\n"),
            )],
            &["ns.yaml", "\"v2\" is not \"v1\""],
        ),
        // Names.
        row(
            "dotted_namespace",
            vec![("svc.yaml", text(service(Some("a.b"), "c")))],
            &[
                "svc.yaml",
                "metadata.namespace \"a.b\" is not a valid Kubernetes name",
                "DNS-1123 label",
            ],
        ),
        row(
            "dotted_namespace_object",
            vec![(
                "ns.yaml",
                text("apiVersion: v1\nkind: Namespace\nmetadata: {name: a.b}\n"),
            )],
            &[
                "ns.yaml",
                "metadata.name \"a.b\" is not a valid Kubernetes name",
                "Namespace",
            ],
        ),
        row(
            "dotted_service_name",
            vec![("svc.yaml", text(service(Some("a"), "b.c")))],
            &["svc.yaml", "metadata.name \"b.c\"", "DNS-1035 label"],
        ),
        row(
            "long_service_name",
            vec![("svc.yaml", text(service(None, &"a".repeat(64))))],
            &[
                "svc.yaml",
                &format!("metadata.name \"{}\"", "a".repeat(64)),
                "at most 63",
            ],
        ),
        row(
            "service_name_starts_with_a_digit",
            vec![("svc.yaml", text(service(None, "1web")))],
            &["svc.yaml", "\"1web\"", "starting with a letter"],
        ),
        row(
            "pool_name_with_empty_part",
            vec![(
                "pools.yaml",
                text(POOL.replace("{name: web}", "{name: a..b}")),
            )],
            &["pools.yaml", "\"a..b\"", "DNS-1123 subdomain"],
        ),
        row(
            "huge_pool_name",
            vec![(
                "pools.yaml",
                text(POOL.replace("{name: web}", &format!("{{name: {huge}}}"))),
            )],
            &["pools.yaml", "metadata.name \"xxxx", "(100000 bytes)"],
        ),
        row(
            "huge_value_echoed_by_serde",
            vec![("pools.yaml", text(pool_with(&format!("  mode: {huge}\n"))))],
            &["pools.yaml", "unknown variant", "(100000 bytes)"],
        ),
        row(
            "no_name",
            vec![(
                "pools.yaml",
                text(POOL.replace("{name: web}", "{labels: {a: b}}")),
            )],
            &["pools.yaml", "no metadata.name"],
        ),
        // Duplicates.
        row(
            "duplicate_pool_in_two_files",
            vec![("a.yaml", text(POOL)), ("b.yaml", text(POOL))],
            &[
                "b.yaml: document 1",
                "AddressPool \"web\" is defined twice: first in",
                "a.yaml document 1",
            ],
        ),
        row(
            "duplicate_service",
            vec![(
                "svc.yaml",
                text(format!(
                    "{}---\n{}",
                    service(Some("default"), "web"),
                    service(None, "web")
                )),
            )],
            &[
                "svc.yaml: document 2",
                "Service \"default/web\" is defined twice",
                "svc.yaml document 1",
            ],
        ),
        row(
            "duplicate_namespace",
            vec![
                (
                    "a.yaml",
                    text("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n"),
                ),
                (
                    "b.yml",
                    text("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n"),
                ),
            ],
            &[
                "b.yml",
                "Namespace \"a\" is defined twice",
                "a.yaml document 1",
            ],
        ),
        row(
            "same_name_other_kind_or_namespace_loads",
            vec![(
                "all.yaml",
                text(format!(
                    "{POOL}---\n{POLICY}---\n{}---\n{}",
                    service(None, "web"),
                    service(Some("other"), "web")
                )),
            )],
            &[],
        ),
        // Nesting, nodes, size: refused quickly.
        row(
            "deep_flow_maps",
            vec![(
                "deep.yaml",
                text(format!("{}x{}", "{a: ".repeat(20_000), "}".repeat(20_000))),
            )],
            &[
                "deep.yaml: document 1",
                "nested deeper than 64 levels",
                "line 1 column 257",
            ],
        ),
        row(
            "deep_flow_sequences",
            vec![(
                "deep.yaml",
                text(format!("a: {}{}", "[".repeat(50_000), "]".repeat(50_000))),
            )],
            &["deep.yaml: document 1", "nested deeper than 64 levels"],
        ),
        row(
            "deep_block_maps",
            vec![(
                "deep.yaml",
                text(
                    (0..400)
                        .map(|d| format!("{}a:\n", " ".repeat(d)))
                        .collect::<String>(),
                ),
            )],
            &["deep.yaml", "nested deeper than 64 levels", "line 65"],
        ),
        row(
            "deep_indented_lists",
            vec![("deep.yaml", text(format!("{}x\n", "- ".repeat(50_000))))],
            &["deep.yaml", "nested deeper than 64 levels"],
        ),
        row(
            "deep_in_a_later_document",
            vec![(
                "deep.yaml",
                text(format!(
                    "{POOL}---\n{}x{}",
                    "[".repeat(100),
                    "]".repeat(100)
                )),
            )],
            &["deep.yaml: document 2", "nested deeper than 64 levels"],
        ),
        row(
            "alias_expanding_quadratically",
            vec![(
                "alias.yaml",
                text(format!(
                    "a: &a [{}]\nb: [{}]\n",
                    "1,".repeat(20_000),
                    "*a,".repeat(20_000)
                )),
            )],
            &["alias.yaml: document 1", "more than 1000000 YAML nodes"],
        ),
        row(
            "alias_inside_its_node",
            vec![("alias.yaml", text("a: &a [1, 2, *a]\n"))],
            &["alias.yaml", "alias *a inside the node it names"],
        ),
        row(
            "oversize_file",
            vec![("big.yaml", comments(5 << 20))],
            &[
                "big.yaml",
                "is 5242880 bytes, over the limit of 4194304 bytes",
            ],
        ),
        row(
            "oversize_directory",
            vec![
                ("1.yaml", comments(4_000_000)),
                ("2.yaml", comments(4_000_000)),
                ("3.yaml", comments(4_000_000)),
                ("4.yaml", comments(4_000_000)),
                ("5.yaml", comments(4_000_000)),
            ],
            &[
                "5.yaml",
                "brings the directory to 20000000 bytes, over the limit of 16777216",
            ],
        ),
        // Files that are not readable text.
        row(
            "invalid_utf8",
            vec![("bad.yaml", Entry::Bytes(b"# ok\nname: caf\xe9\n".to_vec()))],
            &["bad.yaml", "not UTF-8", "offset 14, line 2"],
        ),
        row(
            "dangling_symlink",
            vec![("x.yaml", Entry::Symlink("missing.yaml"))],
            &["x.yaml", "symbolic link to a file that does not exist"],
        ),
        row(
            "symlink_loop",
            vec![("x.yaml", Entry::Symlink("x.yaml"))],
            &["x.yaml: cannot open: Too many levels of symbolic links"],
        ),
        row(
            "fifo",
            vec![("x.yaml", Entry::Fifo)],
            &["x.yaml", "is a FIFO"],
        ),
        row(
            "directory",
            vec![("x.yaml", Entry::Dir)],
            &["x.yaml", "is a directory"],
        ),
        row(
            "hidden_files_are_skipped",
            vec![
                ("pools.yaml", text(POOL)),
                (".#pools.yaml", Entry::Symlink("root@host.1234")),
                (".old.yaml", text("not: [valid")),
            ],
            &[],
        ),
        row(
            "symlink_to_a_file_loads",
            vec![
                ("real.txt", text(POOL)),
                ("pools.yaml", Entry::Symlink("real.txt")),
            ],
            &[],
        ),
        row(
            "no_kind",
            vec![("x.yaml", text("apiVersion: v1\nmetadata: {name: a}\n"))],
            &["x.yaml: document 1", "no kind"],
        ),
        row(
            "syntax_error",
            vec![("x.yaml", text("a: [1, 2\n"))],
            &["x.yaml: document 1", "line"],
        ),
        // Legal input near the limits.
        row(
            "nested_64_levels_loads",
            vec![(
                "deep.yaml",
                text(format!(
                    "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: deep}}\ndata: {}x{}\n",
                    "[".repeat(63),
                    "]".repeat(63)
                )),
            )],
            &[],
        ),
        row(
            "services_near_the_file_limit_load",
            vec![(
                "services.yaml",
                text(
                    (0..29_000)
                        .map(|i| service(Some("default"), &format!("web-{i}")))
                        .collect::<Vec<_>>()
                        .join("---\n"),
                ),
            )],
            &[],
        ),
        row(
            "anchors_used_sparingly_load",
            vec![(
                "svc.yaml",
                text(format!(
                    "{}---\n{}",
                    service(None, "a").replace(
                        "{name: a}",
                        "{name: a, labels: &l {app: x}, annotations: *l}"
                    ),
                    service(None, "b"),
                )),
            )],
            &[],
        ),
    ]
}

#[test]
fn hostile_or_broken_directories_are_refused_clearly() {
    let mut failures = Vec::new();
    for r in rows() {
        let dir = tempdir(r.name);
        for (name, entry) in &r.entries {
            write(&dir, name, entry);
        }
        let (result, took) = load(&dir);
        println!(
            "{:40} {:>10.1?}  {}",
            r.name,
            took,
            match &result {
                Ok(_) => "loaded".to_string(),
                Err(e) => e.to_string().chars().take(300).collect(),
            }
        );
        match (result, r.want.is_empty()) {
            (Ok(_), true) => {}
            (Ok(_), false) => failures.push(format!("{}: loaded, wanted {:?}", r.name, r.want)),
            (Err(e), true) => failures.push(format!("{}: refused: {e}", r.name)),
            (Err(e), false) => {
                let msg = e.to_string();
                let missing: Vec<_> = r
                    .want
                    .iter()
                    .filter(|w| !msg.contains(w.as_str()))
                    .collect();
                if !missing.is_empty() || msg.len() > 1000 {
                    let shown: String = msg.chars().take(600).collect();
                    failures.push(format!(
                        "{}: {missing:?} not in the message ({} bytes): {shown}",
                        r.name,
                        msg.len()
                    ));
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    assert!(
        failures.is_empty(),
        "{} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn an_unreadable_file_is_named() {
    // root reads anything: nothing to test then.
    if unsafe { libc::geteuid() } == 0 {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = tempdir("unreadable");
    write(&dir, "pools.yaml", &text(POOL));
    std::fs::set_permissions(
        dir.join("pools.yaml"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    let err = load(&dir).0.unwrap_err().to_string();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        err.contains("pools.yaml: cannot open: Permission denied"),
        "{err}"
    );
}

#[test]
fn a_missing_directory_is_named() {
    let dir = root().join("no-such-directory");
    let err = load_dir(&dir).unwrap_err().to_string();
    assert!(
        err.contains("no-such-directory: cannot read the directory"),
        "{err}"
    );
}

#[test]
fn unknown_fields_of_core_kinds_are_warnings() {
    let dir = tempdir("warnings");
    write(
        &dir,
        "svc.yaml",
        &text(format!(
            "{POOL}---\n{}",
            service(None, "web").replace("{type:", "{loadBalancerClas: x, futureField: 1, type:")
        )),
    );
    let m = load(&dir).0.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(m.services.len(), 1);
    assert_eq!(m.warnings.len(), 1, "{:?}", m.warnings);
    let w = &m.warnings[0];
    for want in [
        "svc.yaml: document 2",
        "Service",
        "spec.loadBalancerClas (did you mean loadBalancerClass?)",
        "spec.futureField",
    ] {
        assert!(w.contains(want), "{want:?} not in {w}");
    }
}

#[test]
fn every_example_and_lab_directory_loads_without_errors_or_warnings() {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for (parent, sub) in [("examples", ""), ("containerlab", "manifests")] {
        for entry in std::fs::read_dir(root().join(parent)).unwrap() {
            let dir = entry.unwrap().path().join(sub);
            if dir.is_dir() {
                dirs.push(dir);
            }
        }
    }
    assert!(dirs.len() >= 9, "{dirs:?}");
    for dir in dirs {
        let m = load_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
        assert!(m.warnings.is_empty(), "{}: {:?}", dir.display(), m.warnings);
        assert!(
            !m.pools.is_empty() && !m.services.is_empty(),
            "{}: nothing loaded",
            dir.display()
        );
    }
}

#[test]
fn many_warnings_are_counted_not_listed() {
    let dir = tempdir("many-warnings");
    let docs: Vec<String> = (0..3000)
        .map(|i| service(None, &format!("web-{i}")).replace("{type:", "{futureField: 1, type:"))
        .collect();
    write(&dir, "svc.yaml", &text(docs.join("---\n")));
    let (m, took) = load(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    let m = m.unwrap();
    println!("3000 Services with an unknown field: {took:.1?}");
    assert_eq!(m.services.len(), 3000);
    assert_eq!(m.warnings.len(), 101);
    assert!(m.warnings[99].contains("document 100: Service: unknown field spec.futureField"));
    assert_eq!(m.warnings[100], "… and 2900 more warnings");
}
