//! Standalone mode end to end: `routelb standalone` inside a lab node (FRR, BGP) watching a
//! directory; a Service file added → its route at the upstream router; deleted → withdrawn;
//! a restart keeps every address. Needs root, iproute2 and frr.

mod support {
    pub mod daemon;
    pub mod files;
    pub mod lab;
    pub mod lock;
    pub mod script;
    pub mod wait;
}

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::files::{root, scratch};
use support::lab::Lab;
use support::wait;

fn service(dir: &Path, name: &str) {
    std::fs::write(
        dir.join(format!("svc-{name}.yaml")),
        format!("apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\nspec: {{type: LoadBalancer, ports: [{{port: 80, protocol: TCP}}]}}\n"),
    )
    .unwrap();
}

/// `routelb standalone` in the lab's node, its log in a file beside the directory; killed when
/// dropped.
struct Standalone {
    child: Child,
    log: PathBuf,
}

impl Standalone {
    fn start(lab: &Lab, dir: &Path, state: &Path) -> Standalone {
        Self::start_with(lab, dir, state, &[])
    }

    fn start_with(lab: &Lab, dir: &Path, state: &Path, extra: &[&str]) -> Standalone {
        let log = dir.with_extension("log");
        let stderr = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", lab.var("LAB_NODE_NS")])
            .arg(env!("CARGO_BIN_EXE_routelb"))
            .args([
                "standalone",
                "--config",
                dir.to_str().unwrap(),
                "--state",
                state.to_str().unwrap(),
            ])
            .args(lab.daemon().flags())
            .args(extra)
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        Standalone { child, log }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- routelb standalone ({}):\n{}",
                self.log.display(),
                self.log_text()
            );
        }
    }
}

/// Polls `f` every 10 ms until it holds, for at most `limit`.
fn until(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    wait::up_to(limit)
        .every(Duration::from_millis(10))
        .until_blocking(|| f().then_some(()))
        .map(|w| w.took)
}

fn node_has_address(lab: &Lab, dev: &str, addr: &str) -> bool {
    node_addresses_on(lab, dev).contains(addr)
}

fn bgpd_config(lab: &Lab) -> String {
    let out = Command::new("vtysh")
        .args([
            "-N",
            lab.var("LAB_NODE_FRR"),
            "-d",
            "bgpd",
            "-c",
            "show running-config",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// How long until the prefix is present (or absent) at the router; fails after 30 s.
fn wait(lab: &Lab, prefix: &str, present: bool) -> Duration {
    until(Duration::from_secs(30), || {
        lab.router_has(prefix) == present
    })
    .unwrap_or_else(|| {
        panic!(
            "{prefix} never became {}",
            if present { "present" } else { "absent" }
        )
    })
}

fn node_addresses(lab: &Lab) -> String {
    node_addresses_on(lab, "kube-lb0")
}

fn node_addresses_on(lab: &Lab, dev: &str) -> String {
    let out = Command::new("ip")
        .args([
            "-n",
            lab.var("LAB_NODE_NS"),
            "-br",
            "addr",
            "show",
            "dev",
            dev,
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn files_in_routes_out_frr() {
    files_in_routes_out("tsf", "frr");
}

#[test]
fn files_in_routes_out_bird() {
    files_in_routes_out("tsb", "bird");
}

fn files_in_routes_out(name: &str, node: &str) {
    let lab = Lab::up(name, node, "bgp");
    let dir = scratch(&format!("standalone-{name}"));
    let state = dir.join("state.json");
    demo_pool(&dir);
    let running = Standalone::start(&lab, &dir, &state);

    service(&dir, "a");
    let t = wait(&lab, "203.0.113.1/32", true);
    println!(
        "service file a written → route at the router after {t:?} (first pass applies the fragment too)"
    );
    service(&dir, "b");
    let t = wait(&lab, "203.0.113.2/32", true);
    println!("{node}: service file b written → route at the router after {t:?}");
    std::fs::remove_file(dir.join("svc-a.yaml")).unwrap();
    let t = wait(&lab, "203.0.113.1/32", false);
    println!("{node}: service file a deleted → withdrawn after {t:?}");
    assert!(lab.router_has("203.0.113.2/32"));

    // Restart with a new service added while down: b keeps its address, c gets the free one.
    running.stop();
    service(&dir, "c");
    let running = Standalone::start(&lab, &dir, &state);
    std::fs::write(dir.join("touch.yaml"), "").unwrap();
    wait(&lab, "203.0.113.1/32", true);
    assert!(
        lab.router_has("203.0.113.2/32"),
        "b was renumbered: {}",
        node_addresses(&lab)
    );
    let held = std::fs::read_to_string(&state).unwrap();
    assert!(
        held.contains("default/b") && held.contains("203.0.113.2"),
        "{held}"
    );

    // A directory that stops parsing withdraws nothing.
    std::fs::write(
        dir.join("broken.yaml"),
        "kind: Service\nmetadata: {name: \"x y\"}\n",
    )
    .unwrap();
    // Not a sleep but the event: standalone has read the broken directory and said it changes
    // nothing. That pass touched neither the node's addresses nor the daemon, so both routes
    // are still announced.
    until(Duration::from_secs(10), || {
        running
            .log_text()
            .contains("nothing changes until the directory parses again")
    })
    .unwrap_or_else(|| panic!("the broken file was not reported:\n{}", running.log_text()));
    let held = node_addresses(&lab);
    assert!(
        held.contains("203.0.113.1/32") && held.contains("203.0.113.2/32"),
        "{held}"
    );
    assert!(lab.router_has("203.0.113.1/32") && lab.router_has("203.0.113.2/32"));

    running.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn dry_run_needs_nothing() {
    let out = Command::new(env!("CARGO_BIN_EXE_routelb"))
        .args([
            "standalone",
            "--config",
            root().join("examples/quickstart").to_str().unwrap(),
            "--dry-run",
        ])
        .args(["--state", "/nonexistent/state.json"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("kube-lb0\t203.0.113.1/32") && text.contains("router bgp"),
        "{text}"
    );
    // Which Service got which address, before anything runs.
    assert!(
        text.contains("default/dns\t203.0.113.1\tpool quickstart")
            && text.contains("default/web\t203.0.113.2,2001:db8:ffff::\tpool quickstart"),
        "{text}"
    );
}

fn routelb(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_routelb"))
        .args(args)
        .output()
        .unwrap()
}

/// A state file that cannot be read is refused, named, and left as it is: it is the only
/// record of who holds which address, so routelb never guesses or replaces it.
#[test]
fn an_unreadable_state_file_is_refused_and_kept() {
    let dir = scratch("badstate");
    let config = root().join("examples/quickstart");
    let good = routelb(&[
        "standalone",
        "--config",
        config.to_str().unwrap(),
        "--dry-run",
        "--output",
        "json",
        "--state",
        dir.join("none.json").to_str().unwrap(),
    ]);
    assert!(good.status.success());
    let valid: serde_json::Value = serde_json::from_slice(&good.stdout).unwrap();
    let truncated = {
        let mut v1 = serde_json::Map::new();
        for s in valid["services"].as_array().unwrap() {
            v1.insert(
                s["service"].as_str().unwrap().into(),
                serde_json::json!({ "pool": s["pool"], "addresses": s["addresses"] }),
            );
        }
        let text = serde_json::to_string(&v1).unwrap();
        text[..text.len() / 2].to_string()
    };
    for (case, text, why) in [
        ("empty", String::new(), "empty"),
        ("truncated", truncated, "not valid JSON"),
        (
            "garbage",
            "\u{7f}ELF\u{2}\u{1}".to_string(),
            "not valid JSON",
        ),
        (
            "schema",
            "{\"version\": 2, \"services\": []}".to_string(),
            "not a state file",
        ),
        ("future", "{\"version\": 9}".to_string(), "version 9"),
    ] {
        let state = dir.join(format!("{case}.json"));
        std::fs::write(&state, &text).unwrap();
        for mode in ["--dry-run", "--once"] {
            let out = routelb(&[
                "standalone",
                "--config",
                config.to_str().unwrap(),
                "--state",
                state.to_str().unwrap(),
                mode,
            ]);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{case} {mode}: accepted");
            assert!(
                err.contains(state.to_str().unwrap())
                    && err.contains(why)
                    && err.contains("will not guess"),
                "{case} {mode}: {err}"
            );
            assert_eq!(
                std::fs::read_to_string(&state).unwrap(),
                text,
                "{case} {mode}: replaced"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two routelb on one state file would hand out the same addresses: the second is refused
/// before it touches anything.
#[test]
fn a_second_instance_on_one_state_file_is_refused() {
    let dir = scratch("locked");
    let state = dir.join("state.json");
    let _held = routelb::standalone::state::lock(&state).unwrap();
    let out = routelb(&[
        "standalone",
        "--config",
        root().join("examples/quickstart").to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
        "--once",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("another routelb") && err.contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    assert!(!state.exists(), "the state file was written");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A local address needs no daemon: with FRR down, a Service in a local pool still gets its
/// address on the interface, and loses it when deleted.
#[test]
fn addresses_do_not_wait_for_a_daemon_that_is_down() {
    let lab = Lab::up("tsd", "frr", "bgp");
    let dir = scratch("daemon-down");
    let subnet = lab
        .var("LAB_NODE_V4")
        .rsplit_once('.')
        .unwrap()
        .0
        .to_string();
    std::fs::write(
        dir.join("pool.yaml"),
        format!(
            "apiVersion: routelb.io/v1alpha1\nkind: AddressPool\nmetadata: {{name: lan}}\nspec: {{mode: local, addresses: [\"{subnet}.200-{subnet}.210\"]}}\n"
        ),
    )
    .unwrap();
    lab.stop_daemon("bgpd");
    lab.stop_daemon("zebra");
    let running =
        Standalone::start_with(&lab, &dir, &dir.join("state.json"), &["--resync", "300s"]);
    service(&dir, "lan");
    let want = format!("{subnet}.200/24");
    let placed = until(Duration::from_secs(15), || {
        node_has_address(&lab, lab.var("LAB_NODE_IF"), &want)
    });
    println!("FRR down: local address placed after {placed:?}");
    assert!(placed.is_some(), "{want} not placed while FRR is down");
    std::fs::remove_file(dir.join("svc-lan.yaml")).unwrap();
    let removed = until(Duration::from_secs(15), || {
        !node_has_address(&lab, lab.var("LAB_NODE_IF"), &want)
    });
    assert!(removed.is_some(), "{want} not removed while FRR is down");
    running.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The pool `demo` (203.0.113.0/28) and a RoutingPolicy exporting it over BGP.
fn demo_pool(dir: &Path) {
    std::fs::write(
        dir.join("pool.yaml"),
        "apiVersion: routelb.io/v1alpha1\nkind: AddressPool\nmetadata: {name: demo}\nspec: {addresses: [\"203.0.113.0/28\"], avoidBuggyIPs: true}\n---\n\
         apiVersion: routelb.io/v1alpha1\nkind: RoutingPolicy\nmetadata: {name: demo}\nspec: {protocols: [bgp]}\n",
    )
    .unwrap();
}

/// A restarted daemon comes back without routelb's objects; they are back within a second of
/// its start, not at the next resync (five minutes here).
#[test]
fn a_restarted_daemon_is_repaired_at_once() {
    let lab = Lab::up("tsr", "frr", "bgp");
    let dir = scratch("daemon-restart");
    demo_pool(&dir);
    service(&dir, "a");
    let running =
        Standalone::start_with(&lab, &dir, &dir.join("state.json"), &["--resync", "300s"]);
    wait(&lab, "203.0.113.1/32", true);
    let repaired = |c: &str| {
        c.contains("ip prefix-list ROUTELB-POOL-demo-V4")
            && c.contains("redistribute connected route-map ROUTELB-BGP-V4")
    };
    assert!(repaired(&bgpd_config(&lab)));
    for round in 0..3 {
        let t = Instant::now();
        lab.restart_daemon("bgpd");
        let restart = t.elapsed();
        let back = until(Duration::from_secs(20), || repaired(&bgpd_config(&lab)));
        println!(
            "bgpd restart {round} (kill, start, load frr.conf: {restart:?}) → routelb's objects back {back:?} later"
        );
        assert!(back.is_some(), "not repaired:\n{}", bgpd_config(&lab));
        let route = wait(&lab, "203.0.113.1/32", true);
        println!("  → route at the router again after {route:?} (BGP session re-established)");
    }
    running.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The periodic resync asks bgpd a few small show commands (the drift probe's), not its whole
/// running configuration: objects removed by hand are restored from what the probe found,
/// with the drift probe itself off.
#[test]
fn the_resync_probes_and_restores_without_a_full_read() {
    let lab = Lab::up("tsp", "frr", "bgp");
    let dir = scratch("resync-probe");
    demo_pool(&dir);
    service(&dir, "a");
    let running = Standalone::start_with(
        &lab,
        &dir,
        &dir.join("state.json"),
        &["--resync", "1s", "--drift-probe", "0"],
    );
    wait(&lab, "203.0.113.1/32", true);
    let held = |c: &str| c.contains("ip prefix-list ROUTELB-POOL-demo-V4");
    assert!(held(&bgpd_config(&lab)));
    let out = Command::new("vtysh")
        .args(["-N", lab.var("LAB_NODE_FRR"), "-c", "configure terminal"])
        .args(["-c", "no ip prefix-list ROUTELB-POOL-demo-V4"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let back = until(Duration::from_secs(20), || held(&bgpd_config(&lab)));
    println!("prefix-list removed by hand → restored by the resync's probe {back:?} later");
    assert!(back.is_some(), "not restored:\n{}", bgpd_config(&lab));
    let log = running.log_text();
    assert!(
        log.contains("removed or changed by another tool: restored"),
        "restored by a full read, not the probe:\n{log}"
    );
    running.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A full disk names the file that could not be written, and loses nothing: the state file
/// keeps its last complete content.
#[test]
fn a_full_disk_names_the_file_and_keeps_the_state() {
    let dir = scratch("fulldisk");
    let mount = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=8k",
            "tmpfs",
            dir.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(mount.success(), "mounting a tmpfs needs root");
    let path = dir.join("state.json");
    let mut state = routelb::standalone::State::default();
    state.services.insert(
        "default/a".into(),
        routelb::offline::HeldAddresses {
            pool: "p".into(),
            addresses: vec!["203.0.113.1".parse().unwrap()],
        },
    );
    routelb::standalone::state::save(&path, &state).unwrap();
    for i in 0..2000 {
        state.services.insert(
            format!("default/s{i}"),
            routelb::offline::HeldAddresses {
                pool: "p".into(),
                addresses: vec!["203.0.113.2".parse().unwrap()],
            },
        );
    }
    let err = routelb::standalone::state::save(&path, &state)
        .unwrap_err()
        .to_string();
    let kept = routelb::standalone::state::load(&path).map(|s| s.services.len());
    let leftovers = std::fs::read_dir(&dir).unwrap().count();
    let _ = Command::new("umount").arg(&dir).status();
    assert_eq!(kept.ok(), Some(1), "the last complete state is gone");
    assert_eq!(leftovers, 1, "a temporary file was left behind");
    assert!(
        err.contains(path.to_str().unwrap()) && err.contains("No space left"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
