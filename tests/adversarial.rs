//! Hostile and careless input, one row each: valid-but-extreme names, floods of attributes,
//! pools that would announce what is not theirs, huge values. Every row is rendered for FRR and
//! BIRD and each fragment must pass the daemon's own parser (`vtysh --dryrun`, `bird -p`
//! against the BGP example's base), so one tenant's input can never freeze routing for all;
//! and every refusal must say what was refused without echoing a huge value.

mod support {
    pub mod files;
}

use std::path::Path;

use routelb::daemon::bird::BirdDriver;
use routelb::daemon::frr::{FrrApply, FrrDriver};
use routelb::manifests::{Manifests, load_str};
use routelb::offline;
use routelb::render::{DaemonKind, Templates};
use support::files::{root, scratch};

const POLICY: &str = r#"
apiVersion: routelb.io/v1alpha1
kind: RoutingPolicy
metadata: {name: tenants}
spec:
  protocols: [bgp]
  bgp: {communities: ["64512:100"]}
  serviceOverrides: {bgpCommunities: ["64512:0-64512:65535"]}
"#;

fn pool(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: routelb.io/v1alpha1\nkind: AddressPool\nmetadata: {{name: {name}}}\nspec: {{addresses: [\"203.0.113.0/24\", \"2001:db8:5::/120\"]{extra}}}\n"
    )
}

fn service(ns: &str, name: &str, pool: &str, communities: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {ns}\n  annotations:\n    routelb.io/pool: {pool}\n    routelb.io/bgp-communities: \"{communities}\"\nspec: {{type: LoadBalancer, ipFamilyPolicy: PreferDualStack, ports: [{{port: 80, protocol: TCP}}]}}\n"
    )
}

/// A 253-character pool name (DNS-1123 subdomain: labels of up to 63, dotted).
fn longest_pool_name() -> String {
    let label = |c: char| c.to_string().repeat(63);
    format!(
        "{}.{}.{}.{}",
        label('a'),
        label('b'),
        label('c'),
        "d".repeat(61)
    )
}

struct Row {
    name: &'static str,
    docs: Vec<String>,
    /// Each must appear in some problem, note or invalid-pool message.
    reported: &'static [&'static str],
    /// None of these may appear in either fragment.
    absent: &'static [&'static str],
}

fn rows() -> Vec<Row> {
    let long = longest_pool_name();
    let ns = "n".repeat(63);
    let svc = "s".repeat(63);
    let flood: Vec<String> = (0..60).map(|i| format!("64512:{}", 1000 + i)).collect();
    let huge = "64512:1,".repeat(20_000);
    let flood300: Vec<String> = (0..300).map(|i| format!("64512:{}", 2000 + i)).collect();
    vec![
        Row {
            name: "the longest legal pool name",
            docs: vec![
                pool(&long, ""),
                POLICY.into(),
                service("default", "web", &long, ""),
            ],
            reported: &[],
            absent: &[],
        },
        Row {
            name: "the longest namespace and Service name, with communities",
            docs: vec![
                pool("web", ""),
                POLICY.into(),
                service(&ns, &svc, "web", "64512:7"),
            ],
            reported: &[],
            absent: &[],
        },
        Row {
            name: "60 allowed communities on one Service",
            docs: vec![
                pool("web", ""),
                POLICY.into(),
                service("default", "greedy", "web", &flood.join(",")),
                service("default", "modest", "web", "64512:7"),
            ],
            reported: &["routelb.io/bgp-communities: 60 values; at most 32 per Service"],
            absent: &["64512:1059", "64512, 1059"],
        },
        Row {
            name: "300 allowed communities on one Service (FRR refuses such a line)",
            docs: vec![
                pool("web", ""),
                POLICY.into(),
                service("default", "greedy", "web", &flood300.join(",")),
            ],
            reported: &["3299 bytes; at most 2048"],
            absent: &["64512:2299", "64512, 2299"],
        },
        Row {
            name: "a 160 KB communities annotation",
            docs: vec![
                pool("web", ""),
                POLICY.into(),
                service("default", "huge", "web", &huge),
            ],
            reported: &["160000 bytes; at most 2048"],
            absent: &[],
        },
        Row {
            name: "an aggregate of length 0 (a default route)",
            docs: vec![
                pool("web", ", aggregation: {ipv4: 0}"),
                POLICY.into(),
                service("default", "web", "web", ""),
            ],
            reported: &["spec.aggregation.ipv4 0 is shorter than the pool's block 203.0.113.0/24"],
            absent: &["0.0.0.0/0", "0.0.0.0/0{"],
        },
        Row {
            name: "an aggregate wider than the pool",
            docs: vec![
                pool("web", ", aggregation: {ipv4: 16, ipv6: 64}"),
                POLICY.into(),
                service("default", "web", "web", ""),
            ],
            reported: &["ipv4 16 is shorter", "ipv6 64 is shorter"],
            absent: &["203.0.0.0/16", "2001:db8:5::/64"],
        },
    ]
}

fn bird_base() -> String {
    std::fs::read_to_string(root().join("examples/bgp/bird.conf")).unwrap()
}

fn check(row: &Row, daemon: DaemonKind, rt: &tokio::runtime::Runtime) -> Result<(), String> {
    let mut m = Manifests::default();
    load_str(&row.docs.join("---\n"), Path::new("row.yaml"), &mut m)
        .map_err(|e| format!("does not load: {e}"))?;
    let out = offline::render(
        &m,
        &Templates::embedded(daemon).unwrap(),
        None,
        "kube-lb0",
        &offline::assume_all_instances(64512),
    )
    .map_err(|e| format!("does not render: {e}"))?;
    let said: Vec<String> = out
        .problems
        .iter()
        .map(ToString::to_string)
        .chain(out.notes.iter().cloned())
        .chain(out.invalid_pools.iter().cloned())
        .collect();
    for want in row.reported {
        if !said.iter().any(|s| s.contains(want)) {
            return Err(format!("{want:?} not reported; said {said:?}"));
        }
    }
    if let Some(long) = said.iter().find(|s| s.len() > 600) {
        return Err(format!("a message of {} bytes echoes input", long.len()));
    }
    for bad in row.absent {
        if out.fragment.contains(bad) {
            return Err(format!("{bad:?} reached the fragment"));
        }
    }
    let parsed = match daemon {
        DaemonKind::Frr => {
            rt.block_on(FrrDriver::new(None, FrrApply::Diff).validate(&out.fragment))
        }
        DaemonKind::Bird => {
            let words = out
                .fragment
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("ROUTELB_"));
            if let Some(w) = words.clone().find(|w| w.len() > 64) {
                return Err(format!("BIRD symbol of {} characters: {w}", w.len()));
            }
            rt.block_on(BirdDriver::validate_with_base(
                &bird_base(),
                None,
                &out.fragment,
            ))
        }
        DaemonKind::Bird1 => return Err("BIRD 1.x is parsed by tests/render.rs".into()),
    };
    parsed.map_err(|e| format!("the daemon's parser refuses the fragment: {e}"))
}

#[test]
fn hostile_rows_render_what_the_daemons_accept_and_say_what_was_refused() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut failures = Vec::new();
    for row in rows() {
        for daemon in [DaemonKind::Frr, DaemonKind::Bird] {
            if let Err(e) = check(&row, daemon, &rt) {
                failures.push(format!("{} ({}): {e}", row.name, daemon.name()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A bad entry in a pool that no Service uses yet is reported by `render` and fails `check`.
#[test]
fn check_fails_on_an_invalid_pool_nobody_uses_yet() {
    let dir = scratch("badpool");
    std::fs::write(
        dir.join("pool.yaml"),
        format!(
            "{}---\n{POLICY}",
            pool("web", "").replace(
                "\"203.0.113.0/24\"",
                "\"203.0.113.0/24\", \"203.0.113.300\""
            )
        ),
    )
    .unwrap();
    let run = |cmd: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_routelb"))
            .args([cmd, "--config", dir.to_str().unwrap(), "--daemon", "frr"])
            .output()
            .unwrap()
    };
    let rendered = run("render");
    let err = String::from_utf8_lossy(&rendered.stderr);
    assert!(rendered.status.success(), "{err}");
    assert!(
        err.contains("AddressPool web is invalid") && err.contains("203.0.113.300"),
        "{err}"
    );
    let checked = run("check");
    let err = String::from_utf8_lossy(&checked.stderr);
    assert!(!checked.status.success(), "check passed: {err}");
    assert!(err.contains("1 invalid object"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
