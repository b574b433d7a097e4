//! `routelb check` on bases in the shapes users run (tests/fixtures/check/): each fails as
//! given, naming the neighbor or protocol and the object that drops routelb's prefixes, and
//! passes once the lines its `hand-added.txt` documents (two at most) are added.

mod support {
    pub mod files;
}

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::files::{root, scratch};

/// A copy of a fixture directory, to add lines to.
fn copy_fixture(name: &str, test: &str) -> PathBuf {
    let from = root().join("tests/fixtures/check").join(name);
    let to = scratch(&format!("check-{test}-{name}"));
    for entry in std::fs::read_dir(&from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
    to
}

/// `routelb check` on a directory; BIRD bases go through `--base`.
fn check(dir: &Path, daemon: &str) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_routelb"));
    cmd.args(["check", "--config"])
        .arg(dir)
        .args(["--daemon", daemon]);
    if daemon == "bird" {
        cmd.arg("--base").arg(dir.join("bird.conf"));
    }
    let Output { status, stderr, .. } = cmd.env("RUST_BACKTRACE", "0").output().unwrap();
    (
        status.success(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// Adds the lines `hand-added.txt` documents (`file:`, then `after:` an existing line, `add:`
/// the new one); returns how many.
fn add_documented_lines(dir: &Path, default_file: &str) -> usize {
    let doc = std::fs::read_to_string(dir.join("hand-added.txt")).unwrap();
    let mut file = default_file.to_string();
    let mut after = None;
    let mut added = 0;
    for line in doc.lines().filter(|l| !l.starts_with('#')) {
        if let Some(f) = line.strip_prefix("file: ") {
            file = f.to_string();
        } else if let Some(a) = line.strip_prefix("after: ") {
            after = Some(a.to_string());
        } else if let Some(new) = line.strip_prefix("add: ") {
            let path = dir.join(&file);
            let text = std::fs::read_to_string(&path).unwrap();
            let anchor = after.as_deref().expect("an `after:` line first");
            let mut lines: Vec<&str> = text.lines().collect();
            let at = lines
                .iter()
                .position(|l| l.trim() == anchor.trim())
                .unwrap_or_else(|| panic!("{file} has no line {anchor:?}"));
            lines.insert(at + 1, new);
            std::fs::write(&path, lines.join("\n") + "\n").unwrap();
            added += 1;
        }
    }
    added
}

/// Fails as given with every `expected` line part, passes with the documented lines.
fn fails_then_passes(name: &str, daemon: &str, expected: &[&str]) {
    let dir = copy_fixture(name, "passes");
    let (ok, err) = check(&dir, daemon);
    assert!(!ok, "{name}: check passed as given:\n{err}");
    for e in expected {
        assert!(err.contains(e), "{name}: no {e:?} in:\n{err}");
    }
    let added = add_documented_lines(&dir, &format!("{daemon}.conf"));
    assert!((1..=2).contains(&added), "{name}: {added} lines added");
    let (ok, err) = check(&dir, daemon);
    assert!(ok, "{name}: check fails with the documented lines:\n{err}");
    assert!(!err.contains("error:"), "{name}:\n{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn frr_k8s_style_route_maps_permitting_only_their_own_prefixes() {
    fails_then_passes(
        "frr-k8s",
        "frr",
        &[
            "error: neighbor 10.0.0.2 (vrf default): route-map 10.0.0.2-out denies 198.51.100.",
            "then implicit deny",
            "ipv6 prefix-list 10.0.0.2-pl-ipv4 seq 2 deny any",
            "check failed: the base configuration would drop routelb's prefixes (2 error(s)",
        ],
    );
}

#[test]
fn unnumbered_leaf_with_a_peer_group_route_map() {
    fails_then_passes(
        "unnumbered-leaf",
        "frr",
        &[
            "error: neighbor swp51 (interface, vrf default): route-map FABRIC-OUT (from peer-group FABRIC) denies 198.51.100.",
            "error: neighbor swp52 (interface, vrf default): route-map FABRIC-OUT (from peer-group FABRIC) denies 2001:db8:100::",
        ],
    );
}

#[test]
fn ospf_distribute_list_out_connected() {
    fails_then_passes(
        "ospf-distribute-list",
        "frr",
        &["error: router ospf: distribute-list NODE-ROUTES out (access-list) denies 198.51.100."],
    );
}

#[test]
fn calico_style_bird2_export_filter_ending_in_reject() {
    fails_then_passes(
        "calico-bird2",
        "bird",
        &[
            "error: protocol bgp Node_10_0_0_254 (ipv4 channel): export filter calico_export_to_bgp_peers (from template bgp_template) rejects 198.51.100.",
            "`reject` at bird_ipam.conf:16",
            "error: protocol bgp Node_10_0_0_254 (ipv6 channel)",
            "warning: protocol direct (unnamed): covers kube-lb0 (interface pattern \"*\")",
        ],
    );
}

#[test]
fn calico_style_bird1_bird_and_bird6() {
    fails_then_passes(
        "calico-bird1",
        "bird",
        &[
            "error: protocol bgp Global_10_0_0_254: export filter calico_export_to_bgp_peers (from template bgp_template) rejects 198.51.100.",
            "`reject` at bird_ipam.cfg:6",
            "error: protocol bgp Global_fd00__254: export filter calico_export_to_bgp_peers (from template bgp_template) rejects 2001:db8:100::",
            "`reject` at bird6_ipam.cfg:6",
        ],
    );
}

/// BIRD's parser reads the base's relative includes from the base's own directory: a broken
/// included file fails the check with BIRD's message about that file.
#[test]
fn bird_validates_the_base_with_its_relative_includes() {
    let dir = copy_fixture("calico-bird2", "includes");
    add_documented_lines(&dir, "bird.conf");
    assert!(check(&dir, "bird").0);
    let ipam = dir.join("bird_ipam.conf");
    let text = std::fs::read_to_string(&ipam).unwrap();
    std::fs::write(
        &ipam,
        text.replace("reject;\n}", "reject;\n}\nfrobnicate;\n"),
    )
    .unwrap();
    let (ok, err) = check(&dir, "bird");
    assert!(!ok, "{err}");
    assert!(
        err.contains("bird_ipam.conf") && err.contains("refused by the daemon's parser"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn frr_k8s_style_passes_with_no_added_line_when_the_policy_hooks_its_route_map() {
    let dir = copy_fixture("frr-k8s", "hooked");
    let policy = dir.join("policy.yaml");
    let text = std::fs::read_to_string(&policy).unwrap();
    std::fs::write(
        &policy,
        text + "  bgp:\n    outboundRouteMaps: [\"10.0.0.2-out\"]\n",
    )
    .unwrap();
    let (ok, err) = check(&dir, "frr");
    assert!(ok, "check fails with the hook:\n{err}");
    assert!(!err.contains("error:"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
