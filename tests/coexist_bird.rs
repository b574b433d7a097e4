//! routelb next to Calico-style BIRD configurations (tests/corpus/calico-bird1: BIRD 1.6's
//! `bird` + `bird6`; tests/corpus/calico-bird2: the same in BIRD 2 syntax, ADD-PATH off and
//! on). For each base, in the namespace lab: the base alone announces its own routes; with the
//! two hand-added lines and `routelb standalone`, a dual-stack Service reaches the FRR router in
//! both families, even though the base's own direct protocol held the Service's addresses
//! before `routelb_direct` existed; no BGP session resets; the base's routes stay; a Service's
//! removal withdraws only its prefix; a base rewritten without the include is reported as
//! `BaseConfigNoInclude`. Needs root, iproute2, frr, bird2 and BIRD 1.6 unpacked by
//! integration/run-tests.sh.

mod support {
    pub mod files;
    pub mod lock;
    pub mod script;
    pub mod wait;
}

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use routelb::daemon::bird_config::{self, Dialect};
use routelb::daemon::bird_daemon::PLACEHOLDER;
use support::files::{root, scratch};
use support::{lock, script, wait};

/// The base's own routes (Calico's IPAM blocks, as blackhole statics it exports).
const BASE_V4: &str = "10.244.17.0/26";
const BASE_V6: &str = "fd10:244:0:11::/122";
/// The Service addresses routelb will pick first from the pool below.
const WEB_V4: &str = "203.0.113.1/32";
const WEB_V6: &str = "2001:db8:ffff::/128";
const POOL: &str = "apiVersion: routelb.io/v1alpha1\nkind: AddressPool\nmetadata: {name: lb}\nspec: {addresses: [\"203.0.113.0/28\", \"2001:db8:ffff::/120\"], avoidBuggyIPs: true}\n---\n\
     apiVersion: routelb.io/v1alpha1\nkind: RoutingPolicy\nmetadata: {name: lb}\nspec: {protocols: [bgp]}\n";

fn corpus(path: &str) -> PathBuf {
    root().join("tests/corpus").join(path)
}

/// A lab whose node runs one of the corpus bases; torn down when dropped.
struct CorpusLab {
    name: String,
    env: HashMap<String, String>,
    _held: lock::Held,
}

impl CorpusLab {
    fn up(name: &str, node: &str, confs: &[(&str, PathBuf)]) -> CorpusLab {
        let held = lock::lab(name);
        let mut args = vec!["up", name, "--node", node, "--proto", "bgp", "--fresh"];
        let paths: Vec<(String, String)> = confs
            .iter()
            .map(|(flag, p)| (flag.to_string(), p.display().to_string()))
            .collect();
        for (flag, p) in &paths {
            args.extend([flag.as_str(), p.as_str()]);
        }
        let out = script::run_ok("lab.sh", &args);
        CorpusLab {
            name: name.to_string(),
            env: script::variables(&out.stdout),
            _held: held,
        }
    }

    fn var(&self, k: &str) -> &str {
        self.env
            .get(k)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("lab did not report {k}"))
    }

    fn is_bird1(&self) -> bool {
        self.var("LAB_NODE_KIND") == "bird1"
    }

    /// Each BIRD daemon's (birdc wrapper, base config, include).
    fn daemons(&self) -> Vec<(String, String, String)> {
        let mut d = vec![(
            self.var("LAB_BIRDC").to_string(),
            self.var("LAB_BIRD_CONF").to_string(),
            self.var("LAB_BIRD_INCLUDE").to_string(),
        )];
        if self.is_bird1() {
            d.push((
                self.var("LAB_BIRDC6").to_string(),
                self.var("LAB_BIRD6_CONF").to_string(),
                self.var("LAB_BIRD6_INCLUDE").to_string(),
            ));
        }
        d
    }

    /// routelb's flags for the node's BIRD.
    fn daemon_flags(&self) -> Vec<String> {
        let mut f = vec![
            "--daemon".to_string(),
            (if self.is_bird1() { "bird1" } else { "bird" }).to_string(),
            "--bird-socket".into(),
            self.var("LAB_BIRD_SOCKET").into(),
            "--bird-include".into(),
            self.var("LAB_BIRD_INCLUDE").into(),
        ];
        if self.is_bird1() {
            f.extend([
                "--bird6-socket".into(),
                self.var("LAB_BIRD6_SOCKET").into(),
                "--bird6-include".into(),
                self.var("LAB_BIRD6_INCLUDE").into(),
            ]);
        }
        f
    }

    fn node_ip(&self, args: &[&str]) {
        let st = Command::new("ip")
            .args(["-n", self.var("LAB_NODE_NS")])
            .args(args)
            .status()
            .unwrap();
        assert!(st.success(), "ip {args:?}");
    }

    /// The prefixes the router's kernel has from BGP, both families.
    fn router_bgp_routes(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for family in ["-4", "-6"] {
            let o = Command::new("ip")
                .args([
                    "-n",
                    self.var("LAB_RTR_NS"),
                    family,
                    "route",
                    "show",
                    "proto",
                ])
                .arg("bgp")
                .output()
                .unwrap();
            for line in String::from_utf8_lossy(&o.stdout).lines() {
                let p = line.split_whitespace().next().unwrap_or_default();
                out.insert(normalize(p));
            }
        }
        out
    }

    /// Waits until the router has (or lacks) the prefix; how long it took.
    fn wait_router(&self, prefix: &str, present: bool) -> Duration {
        wait::up_to(Duration::from_secs(30))
            .every(Duration::from_millis(5))
            .until_blocking(|| (self.router_bgp_routes().contains(prefix) == present).then_some(()))
            .unwrap_or_else(|| {
                panic!(
                    "{}: {prefix} never became {} at the router: {:?}",
                    self.name,
                    if present { "present" } else { "absent" },
                    self.router_bgp_routes()
                )
            })
            .took
    }

    /// The router's established-session counters per neighbour; they grow on a reset.
    fn connections(&self) -> String {
        let out = Command::new("vtysh")
            .args([
                "-N",
                self.var("LAB_RTR_FRR"),
                "-c",
                "show bgp neighbors json",
            ])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let mut c: Vec<String> = v
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, n)| format!("{k}={}", n["connectionsEstablished"]))
                    .collect()
            })
            .unwrap_or_default();
        c.sort();
        c.join(",")
    }
}

impl Drop for CorpusLab {
    fn drop(&mut self) {
        let _ = script::run("lab.sh", &["down", &self.name]);
    }
}

/// `ip route` prints host routes without their length.
fn normalize(p: &str) -> String {
    if p.contains('/') {
        p.to_string()
    } else if p.contains(':') {
        format!("{p}/128")
    } else {
        format!("{p}/32")
    }
}

fn birdc(birdc: &str, args: &[&str]) -> String {
    let out = Command::new(birdc).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// `birdc configure`, as another tool reloads BIRD.
fn reconfigure(birdc_path: &str) {
    let out = birdc(birdc_path, &["configure"]);
    assert!(
        out.contains("Reconfigured") || out.contains("Reconfiguration in progress"),
        "{out}"
    );
}

/// `routelb standalone` in the lab's node, logging to a file; killed when dropped.
struct Standalone {
    child: Child,
    log: PathBuf,
}

impl Standalone {
    fn start(lab: &CorpusLab, dir: &Path) -> Standalone {
        let log = dir.with_extension("log");
        let stderr = File::create(&log).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", lab.var("LAB_NODE_NS")])
            .arg(env!("CARGO_BIN_EXE_routelb"))
            .args(["standalone", "--config", dir.to_str().unwrap()])
            .args(["--resync", "1s"])
            .args(lab.daemon_flags())
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
}

impl Drop for Standalone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- routelb standalone:\n{}", self.log_text());
        }
    }
}

fn service(dir: &Path, name: &str, dual: bool) {
    let policy = if dual {
        "ipFamilyPolicy: PreferDualStack, "
    } else {
        ""
    };
    std::fs::write(
        dir.join(format!("svc-{name}.yaml")),
        format!("apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\nspec: {{type: LoadBalancer, {policy}ports: [{{port: 80, protocol: TCP}}]}}\n"),
    )
    .unwrap();
}

/// The base's own direct protocol holds the Service's addresses before `routelb_direct`
/// exists: routelb's include exports nothing and defines no protocol yet.
fn addresses_before_routelb_direct(lab: &CorpusLab) {
    for (birdc_path, _, include) in lab.daemons() {
        std::fs::write(&include, PLACEHOLDER).unwrap();
        reconfigure(&birdc_path);
        wait::up_to(Duration::from_secs(10))
            .every(Duration::from_millis(20))
            .until_blocking(|| {
                (!birdc(&birdc_path, &["show", "protocols"]).contains("routelb_direct"))
                    .then_some(())
            })
            .expect("routelb_direct goes with the include that defined it");
    }
    lab.node_ip(&["addr", "add", WEB_V4, "dev", "kube-lb0"]);
    lab.node_ip(&["addr", "add", WEB_V6, "dev", "kube-lb0", "nodad"]);
    let daemons = lab.daemons();
    let v6_birdc = &daemons.last().unwrap().0;
    for (birdc_path, prefix) in [(&daemons[0].0, WEB_V4), (v6_birdc, WEB_V6)] {
        wait::up_to(Duration::from_secs(10))
            .every(Duration::from_millis(20))
            .until_blocking(|| {
                birdc(birdc_path, &["show", "route", prefix, "all"])
                    .contains("direct1")
                    .then_some(())
            })
            .unwrap_or_else(|| panic!("the base's direct protocol never held {prefix}"));
    }
}

/// What every corpus base must show: see the module comment.
fn coexist(lab: &CorpusLab) {
    lab.wait_router(BASE_V4, true);
    lab.wait_router(BASE_V6, true);
    let sessions = lab.connections();
    let base_routes = lab.router_bgp_routes();
    addresses_before_routelb_direct(lab);

    let dir = scratch(&format!("coexist-{}", lab.name));
    std::fs::write(dir.join("pool.yaml"), POOL).unwrap();
    service(&dir, "web", true);
    let started = Instant::now();
    let routelb = Standalone::start(lab, &dir);
    lab.wait_router(WEB_V4, true);
    lab.wait_router(WEB_V6, true);
    println!(
        "{}: routelb started → web's IPv4 and IPv6 routes at the router after {:?}",
        lab.name,
        started.elapsed()
    );
    let best = birdc(&lab.daemons()[0].0, &["show", "route", WEB_V4]);
    assert!(
        best.lines()
            .any(|l| l.contains("routelb_direct") && l.contains('*')),
        "routelb_direct's copy must be the best route: {best}"
    );

    service(&dir, "dns", false);
    let took = lab.wait_router("203.0.113.2/32", true);
    println!(
        "{}: Service file written → route at the router after {took:?}",
        lab.name
    );
    std::fs::remove_file(dir.join("svc-dns.yaml")).unwrap();
    let took = lab.wait_router("203.0.113.2/32", false);
    println!(
        "{}: Service file removed → withdrawn after {took:?}",
        lab.name
    );
    let mut expected = base_routes.clone();
    expected.extend([WEB_V4.to_string(), WEB_V6.to_string()]);
    assert_eq!(
        lab.router_bgp_routes(),
        expected,
        "only routelb's prefix may go; the base's routes and web's stay"
    );
    assert_eq!(lab.connections(), sessions, "a BGP session was reset");

    base_rewritten_without_the_include(lab, &routelb);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Another tool (confd) writes the base again without the user's lines and reconfigures:
/// routelb's next resync reports it.
fn base_rewritten_without_the_include(lab: &CorpusLab, routelb: &Standalone) {
    let before = routelb.log_text().len();
    for (birdc_path, conf, _) in lab.daemons() {
        let text = std::fs::read_to_string(&conf).unwrap();
        let rewritten: String = text
            .lines()
            .filter(|l| !l.contains("# routelb: added"))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&conf, rewritten).unwrap();
        reconfigure(&birdc_path);
    }
    let took = wait::up_to(Duration::from_secs(20))
        .every(Duration::from_millis(50))
        .until_blocking(|| {
            routelb.log_text()[before..]
                .contains("BaseConfigNoInclude")
                .then_some(())
        })
        .unwrap_or_else(|| {
            panic!(
                "a base without the include was never reported:\n{}",
                routelb.log_text()
            )
        })
        .took;
    println!(
        "{}: base rewritten without the include → reported after {took:?}",
        lab.name
    );
    let since = routelb.log_text()[before..].to_string();
    assert!(
        !since.contains("fragment applied"),
        "a base without the include must never count as applied:\n{since}"
    );
}

#[test]
fn corpus_bases_need_at_most_two_added_lines_and_inherit_their_as() {
    for (file, dialect) in [
        ("calico-bird1/bird.conf", Dialect::Bird1V4),
        ("calico-bird1/bird6.conf", Dialect::Bird1V6),
        ("calico-bird2/bird.conf", Dialect::Bird2),
        ("calico-bird2/bird-addpath.conf", Dialect::Bird2),
    ] {
        let text = std::fs::read_to_string(corpus(file)).unwrap();
        let added = text
            .lines()
            .filter(|l| l.contains("# routelb: added") && !l.trim_start().starts_with('#'))
            .count();
        assert!((1..=2).contains(&added), "{file}: {added} added lines");
        // `local as` lives in the template the peers inherit from.
        let found = bird_config::instances_in(&text.replace("@NODE_AS@", "64512"), dialect);
        assert_eq!(found.bgp.len(), 1, "{file}: {found:?}");
        assert_eq!(found.bgp[0].asn, 64512, "{file}");
    }
}

#[test]
fn next_to_calico_bird1_dual_stack() {
    let lab = CorpusLab::up(
        "bdc1",
        "bird1",
        &[
            ("--node-conf", corpus("calico-bird1/bird.conf")),
            ("--node6-conf", corpus("calico-bird1/bird6.conf")),
        ],
    );
    coexist(&lab);
}

/// Calico writes `add paths on;`; towards a peer without ADD-PATH, BIRD 1.6 sends only the best
/// of the two direct copies: the same base with ADD-PATH off.
#[test]
fn next_to_calico_bird1_without_add_path() {
    let dir = scratch("bird1-no-add-path");
    let mut confs = Vec::new();
    for (flag, file) in [("--node-conf", "bird.conf"), ("--node6-conf", "bird6.conf")] {
        let text = std::fs::read_to_string(corpus(&format!("calico-bird1/{file}"))).unwrap();
        assert!(text.contains("add paths on;"));
        std::fs::write(
            dir.join(file),
            text.replace("add paths on;", "add paths off;"),
        )
        .unwrap();
        confs.push((flag, dir.join(file)));
    }
    let lab = CorpusLab::up("bdc4", "bird1", &confs);
    coexist(&lab);
}

#[test]
fn next_to_calico_bird2_without_add_path() {
    let lab = CorpusLab::up(
        "bdc2",
        "bird",
        &[("--node-conf", corpus("calico-bird2/bird.conf"))],
    );
    coexist(&lab);
}

#[test]
fn next_to_calico_bird2_with_add_path() {
    let lab = CorpusLab::up(
        "bdc3",
        "bird",
        &[("--node-conf", corpus("calico-bird2/bird-addpath.conf"))],
    );
    coexist(&lab);
}

/// The BIRD 1.x driver on its own: instances from both daemons (`local as` from a template),
/// a fragment whose IPv6 half bird6 refuses changes neither daemon, and a BIRD 2 driver
/// pointed at BIRD 1.6 says which flag to use.
#[tokio::test]
async fn bird1_driver_checks_both_halves_before_touching_either() {
    use routelb::daemon::DaemonError;
    use routelb::daemon::bird::BirdDriver;
    let lab = CorpusLab::up("bdd1", "bird1", &[]);
    let driver = BirdDriver::bird1(
        lab.var("LAB_BIRD_SOCKET").into(),
        lab.var("LAB_BIRD_INCLUDE").into(),
        lab.var("LAB_BIRD6_SOCKET").into(),
        lab.var("LAB_BIRD6_INCLUDE").into(),
    );
    let instances = driver.instances().await.unwrap();
    assert_eq!(instances.bgp.len(), 1, "{instances:?}");
    assert_eq!(instances.bgp[0].asn, 64512);

    let m = routelb::manifests::load_dir(&root().join("examples/bgp")).unwrap();
    let templates = routelb::render::Templates::embedded(routelb::render::DaemonKind::Bird1);
    let good = routelb::offline::render(&m, &templates.unwrap(), None, "kube-lb0", &instances)
        .unwrap()
        .fragment;
    assert!(driver.apply(&good).await.unwrap().changed);
    assert!(driver.in_sync(&good).await.unwrap());

    let broken = format!("{good}function routelb_broken( {{\n");
    let err = driver.apply(&broken).await.unwrap_err();
    assert!(matches!(err, DaemonError::Invalid(_)), "{err}");
    let (v4, v6) = routelb::render::split_bird1(&good);
    assert_eq!(
        std::fs::read_to_string(lab.var("LAB_BIRD_INCLUDE")).unwrap(),
        v4
    );
    assert_eq!(
        std::fs::read_to_string(lab.var("LAB_BIRD6_INCLUDE")).unwrap(),
        v6
    );
    assert!(driver.in_sync(&good).await.unwrap());

    let bird2 = BirdDriver::new(
        lab.var("LAB_BIRD_SOCKET").into(),
        lab.var("LAB_BIRD_INCLUDE").into(),
    );
    let err = bird2.instances().await.unwrap_err().to_string();
    assert!(
        err.contains("BIRD 1.6") && err.contains("--daemon bird1"),
        "{err}"
    );
}

/// Announcements verified at the daemons on the Calico base: bird answers for IPv4 and bird6
/// for IPv6 (`show route export <protocol>`), each Service prefix found leaving towards the
/// router in its family.
#[tokio::test]
async fn calico_bird1_announcements_verified_per_daemon() {
    use routelb::daemon::advertised::{self, Family, Protocol};
    use routelb::daemon::{Driver, bird::BirdDriver, observe};
    let lab = CorpusLab::up(
        "bdv1",
        "bird1",
        &[
            ("--node-conf", corpus("calico-bird1/bird.conf")),
            ("--node6-conf", corpus("calico-bird1/bird6.conf")),
        ],
    );
    let driver = Driver::Bird(BirdDriver::bird1(
        lab.var("LAB_BIRD_SOCKET").into(),
        lab.var("LAB_BIRD_INCLUDE").into(),
        lab.var("LAB_BIRD6_SOCKET").into(),
        lab.var("LAB_BIRD6_INCLUDE").into(),
    ));
    let dir = scratch("bird1-verify");
    std::fs::write(dir.join("pool.yaml"), POOL).unwrap();
    let m = routelb::manifests::load_dir(&dir).unwrap();
    let templates = routelb::render::Templates::embedded(routelb::render::DaemonKind::Bird1);
    let instances = driver.instances().await.unwrap();
    let fragment = routelb::offline::render(&m, &templates.unwrap(), None, "kube-lb0", &instances)
        .unwrap()
        .fragment;
    driver.apply(&fragment).await.unwrap();
    lab.node_ip(&["addr", "add", WEB_V4, "dev", "kube-lb0"]);
    lab.node_ip(&["addr", "add", WEB_V6, "dev", "kube-lb0"]);
    let prefixes: BTreeSet<ipnet::IpNet> = [WEB_V4, WEB_V6]
        .iter()
        .map(|p| p.parse().unwrap())
        .collect();
    let expected: advertised::Expected = [((Protocol::Bgp, None), prefixes)].into();
    let deadline = Instant::now() + Duration::from_secs(15);
    let (observed, verification) = loop {
        let o = observe::observe(&driver, &expected).await.unwrap();
        let v = advertised::verify(&expected, &o.exits);
        if v.verdict.ok || Instant::now() > deadline {
            break (o, v);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(observed.unverified.is_empty(), "{:?}", observed.unverified);
    assert!(verification.verdict.ok, "{verification:#?}");
    for (family, prefix) in [(Family::V4, WEB_V4), (Family::V6, WEB_V6)] {
        let exits: Vec<_> = observed
            .exits
            .iter()
            .filter(|e| e.family == family)
            .collect();
        assert!(
            !exits.is_empty(),
            "no {family:?} exit: {:?}",
            observed.exits
        );
        assert!(
            exits
                .iter()
                .all(|e| e.advertised.contains(&prefix.parse().unwrap())),
            "{exits:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
