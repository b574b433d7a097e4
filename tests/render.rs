//! Rendering without a cluster: golden files pin every template's output for every example,
//! the daemons' own parsers accept it, and hostile input never reaches the fragment.

mod support {
    pub mod files;
}

use std::path::{Path, PathBuf};
use std::process::Command;

use routelb::manifests::{Manifests, load_dir, load_str};
use routelb::offline;
use routelb::render::{DaemonKind, Templates};
use support::files::root;

fn examples() -> Vec<(&'static str, DaemonKind)> {
    vec![
        ("bgp", DaemonKind::Frr),
        ("bgp", DaemonKind::Bird),
        ("frr-k8s", DaemonKind::Frr),
        ("ospf", DaemonKind::Frr),
        ("ospf", DaemonKind::Bird),
        ("isis", DaemonKind::Frr),
        ("rip", DaemonKind::Frr),
        ("rip", DaemonKind::Bird),
    ]
}

fn render_example(name: &str, daemon: DaemonKind) -> String {
    let dir = root().join("examples").join(name);
    let m = load_dir(&dir).unwrap();
    let (_, base) = offline::base_in_dir(&dir, daemon).expect("example has a base config");
    let inst = offline::instances_from_base(daemon, &base);
    let out = offline::render(
        &m,
        &Templates::embedded(daemon).unwrap(),
        None,
        "kube-lb0",
        &inst,
    )
    .unwrap();
    assert!(
        out.problems.is_empty(),
        "{name}/{daemon:?}: {:?}",
        out.problems
    );
    out.fragment
}

#[test]
fn golden_files_pin_every_template() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut drifted = Vec::new();
    for (name, daemon) in examples() {
        let got = render_example(name, daemon);
        let path = root()
            .join("tests/golden")
            .join(format!("{name}.{}.conf", daemon.name()));
        if update {
            std::fs::write(&path, &got).unwrap();
        } else if std::fs::read_to_string(&path).unwrap_or_default() != got {
            drifted.push(path.display().to_string());
        }
    }
    assert!(
        drifted.is_empty(),
        "rendered output differs from {drifted:?}; review and refresh with UPDATE_GOLDEN=1"
    );
}

fn routelb(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_routelb"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn check_accepts_every_example_with_the_daemons_own_parsers() {
    for (name, daemon) in examples() {
        let dir = root().join("examples").join(name);
        let out = routelb(&[
            "check",
            "--config",
            dir.to_str().unwrap(),
            "--daemon",
            daemon.name(),
        ]);
        assert!(
            out.status.success(),
            "{name}/{daemon:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = routelb(&[
            "render",
            "--config",
            dir.to_str().unwrap(),
            "--daemon",
            daemon.name(),
        ]);
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            render_example(name, daemon)
        );
    }
}

#[test]
fn check_fails_with_the_daemons_message() {
    let dir = tempdir("badtemplate");
    std::fs::create_dir_all(dir.join("frr")).unwrap();
    // A template that renders a line FRR does not know.
    std::fs::write(
        dir.join("frr/base.conf.tera"),
        "{#- routelb-contract: 1 -#}\nroute-map ROUTELB-X permit 10\n frobnicate\nexit\n",
    )
    .unwrap();
    let out = routelb(&[
        "check",
        "--config",
        root().join("examples/bgp").to_str().unwrap(),
        "--daemon",
        "frr",
        "--templates",
        dir.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("frobnicate") && err.contains("Unknown command"),
        "{err}"
    );
}

fn tempdir(name: &str) -> PathBuf {
    support::files::scratch(&format!("test-{name}"))
}

#[test]
fn templates_declare_their_contract() {
    let dir = tempdir("contract");
    std::fs::create_dir_all(dir.join("bird")).unwrap();
    std::fs::write(
        dir.join("bird/bgp.conf.tera"),
        "{#- routelb-contract: 0 -#}\n",
    )
    .unwrap();
    let err = Templates::from_dir(DaemonKind::Bird, &dir)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("contract 0") && err.contains("contract 1"),
        "{err}"
    );
    std::fs::write(dir.join("bird/bgp.conf.tera"), "function x() {}\n").unwrap();
    let err = Templates::from_dir(DaemonKind::Bird, &dir)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("routelb-contract"), "{err}");
    std::fs::write(
        dir.join("bird/bgp.conf.tera"),
        "{#- routelb-contract: 1 -#}\n{% for x in %}\n",
    )
    .unwrap();
    let err = Templates::from_dir(DaemonKind::Bird, &dir)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("bird/bgp"), "{err}");
}

const HOSTILE: &str = r#"
apiVersion: routelb.io/v1alpha1
kind: AddressPool
metadata: {name: web}
spec: {addresses: ["203.0.113.0/28"]}
---
apiVersion: routelb.io/v1alpha1
kind: RoutingPolicy
metadata: {name: good}
spec:
  protocols: [bgp]
  bgp: {communities: ["64512:1"]}
  serviceOverrides: {bgpCommunities: ["64512:100-64512:199"]}
---
apiVersion: routelb.io/v1alpha1
kind: RoutingPolicy
metadata: {name: injected}
spec:
  protocols: [bgp, ospf]
  bgp:
    communities: ["64512:1\nrouter bgp 666\n neighbor 6.6.6.6 remote-as 666", "1:1!", "2:2}"]
    largeCommunities: ["1:2:3\"; }"]
    vrf: "red\n}"
---
apiVersion: v1
kind: Service
metadata:
  name: api
  namespace: default
  annotations:
    routelb.io/bgp-communities: "64512:150,64512:151\nexit\nrouter bgp 666, 64512:9999, }, \"x\", 99999999999999999999999999:1"
spec: {type: LoadBalancer, ports: [{port: 443, protocol: TCP}]}
"#;

#[test]
fn names_that_kubernetes_would_refuse_are_refused_in_files_too() {
    for doc in [
        "apiVersion: routelb.io/v1alpha1\nkind: AddressPool\nmetadata: {name: \"evil\\nrouter bgp 1\"}\nspec: {addresses: []}\n",
        "apiVersion: v1\nkind: Service\nmetadata: {name: ok, namespace: \"a b\"}\n",
        "apiVersion: v1\nkind: Service\nmetadata: {name: \"x}\"}\n",
    ] {
        let mut m = Manifests::default();
        let err = load_str(doc, Path::new("f.yaml"), &mut m)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a valid Kubernetes name"), "{err}");
    }
}

#[test]
fn hostile_input_never_reaches_the_fragment() {
    let mut m = Manifests::default();
    load_str(HOSTILE, Path::new("hostile.yaml"), &mut m).unwrap();
    for daemon in [DaemonKind::Frr, DaemonKind::Bird, DaemonKind::Bird1] {
        let inst = offline::assume_all_instances(64512);
        let out = offline::render(
            &m,
            &Templates::embedded(daemon).unwrap(),
            None,
            "kube-lb0",
            &inst,
        )
        .unwrap();
        let f = &out.fragment;
        for bad in ["666", "6.6.6.6", "evil", "9999", "\"x\"", "1:1!", "2:2}"] {
            assert!(
                !f.contains(bad),
                "{daemon:?}: {bad:?} reached the fragment:\n{f}"
            );
        }
        // The valid parts are there: the good policy, and the allowed service communities.
        assert!(f.contains("64512:1") || f.contains("64512, 1"), "{f}");
        assert!(f.contains("64512:150") || f.contains("64512, 150"), "{f}");
        // The injected policy is refused as a whole and says why.
        let invalid: Vec<_> = out
            .problems
            .iter()
            .filter(|p| p.policy.as_deref() == Some("injected"))
            .collect();
        assert!(!invalid.is_empty(), "{:?}", out.problems);
        assert!(
            invalid[0].message.contains("communities"),
            "{}",
            invalid[0].message
        );
        // Refused service communities are reported, not silently dropped.
        assert!(
            out.notes.iter().any(
                |n| n.starts_with("default/api: routelb.io/bgp-communities: ")
                    && n.contains("9999")
            ),
            "{:?}",
            out.notes
        );
        // Every line is one a template wrote: a fixed keyword first.
        for line in f.lines() {
            let t = line.trim_start();
            let known = [
                "!",
                "#",
                "ip prefix-list ROUTELB-",
                "ipv6 prefix-list ROUTELB-",
                "route-map ROUTELB-",
                "description ",
                "match ",
                "set ",
                "exit",
                "router ",
                "address-family",
                "redistribute ",
                "exit-address-family",
                "protocol direct",
                "ipv4;",
                "ipv6;",
                "ipv4 { preference 250; };",
                "ipv6 { preference 250; };",
                "preference 250;",
                "interface \"kube-lb0\"",
                "}",
                "define ROUTELB_",
                "function routelb_",
                "{",
                "if ",
                "bgp_",
                "ospf_",
                "rip_",
                "return ",
            ];
            assert!(
                t.is_empty() || known.iter().any(|k| t.starts_with(k)),
                "{daemon:?}: unexpected line {line:?}"
            );
        }
    }
    // And FRR's parser accepts what is left.
    let mut frr = Manifests::default();
    load_str(HOSTILE, Path::new("hostile.yaml"), &mut frr).unwrap();
    let out = offline::render(
        &frr,
        &Templates::embedded(DaemonKind::Frr).unwrap(),
        None,
        "kube-lb0",
        &offline::assume_all_instances(64512),
    )
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(
        routelb::daemon::frr::FrrDriver::new(None, routelb::daemon::frr::FrrApply::Diff)
            .validate(&out.fragment),
    )
    .unwrap();
}

#[test]
fn missing_instances_are_reported_not_invented() {
    let dir = root().join("examples/bgp");
    let m = load_dir(&dir).unwrap();
    // A base config with OSPF only: the BGP policy has nowhere to go.
    let inst = offline::instances_from_base(
        DaemonKind::Frr,
        "router ospf\n ospf router-id 1.1.1.1\nexit\n",
    );
    let out = offline::render(
        &m,
        &Templates::embedded(DaemonKind::Frr).unwrap(),
        None,
        "kube-lb0",
        &inst,
    )
    .unwrap();
    assert!(!out.fragment.contains("router bgp"), "{}", out.fragment);
    let p = out
        .problems
        .iter()
        .find(|p| p.reason == "InstanceMissing")
        .expect("reported");
    assert_eq!(p.policy.as_deref(), Some("upstream"));
    assert!(p.message.contains("BGP"));
}

/// Where `integration/run-tests.sh` (and `lab.sh up --node bird1`) unpack Debian's BIRD 1.6.
fn bird1_sbin() -> PathBuf {
    let dir = std::env::var_os("ROUTELB_BIRD1_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/routelb/bird1")
        });
    dir.join("usr/sbin")
}

/// A bird.conf / bird6.conf in BIRD 1.x syntax that includes `include` and calls every
/// function the fragment defines, the way a network team's filters would.
fn bird1_base(include: &Path, neighbor: &str) -> String {
    format!(
        "router id 10.0.0.1;\ninclude \"{}\";\n\
         filter to_peers {{ if routelb_export_bgp() then accept; reject; }}\n\
         protocol bgp up {{ local as 64512; neighbor {neighbor} as 64500; export filter to_peers; }}\n\
         protocol ospf {{ export where routelb_export_ospf(); area 0 {{ interface \"eth0\"; }}; }}\n\
         protocol rip {{ export where routelb_export_rip(); interface \"eth0\"; }}\n",
        include.display()
    )
}

/// BIRD 1.x fragments: pinned by golden files, and both halves load in BIRD 1.6's own parsers
/// (`bird -p` for IPv4, `bird6 -p` for IPv6).
#[test]
fn bird1_fragments_are_pinned_and_load_in_bird_1_6() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let sbin = bird1_sbin();
    assert!(
        sbin.join("bird").exists() && sbin.join("bird6").exists(),
        "BIRD 1.6 is not unpacked in {} (integration/run-tests.sh does it: apt-get download bird; dpkg -x)",
        sbin.display()
    );
    let dir = tempdir("bird1-parse");
    for name in ["bgp", "ospf", "rip"] {
        let m = load_dir(&root().join("examples").join(name)).unwrap();
        let out = offline::render(
            &m,
            &Templates::embedded(DaemonKind::Bird1).unwrap(),
            None,
            "kube-lb0",
            &offline::assume_all_instances(64512),
        )
        .unwrap();
        let path = root().join(format!("tests/golden/{name}.bird1.conf"));
        if update {
            std::fs::write(&path, &out.fragment).unwrap();
        } else {
            assert_eq!(
                std::fs::read_to_string(&path).unwrap_or_default(),
                out.fragment,
                "{} differs; review and refresh with UPDATE_GOLDEN=1",
                path.display()
            );
        }
        let (v4, v6) = routelb::render::split_bird1(&out.fragment);
        assert!(!v4.is_empty() && !v6.is_empty(), "{}", out.fragment);
        parse_bird1_halves(&dir, name, v4, v6);
    }
}

/// Each half of a BIRD 1.x fragment, included by [`bird1_base`], in its daemon's parser
/// (`bird -p` for IPv4, `bird6 -p` for IPv6).
fn parse_bird1_halves(dir: &Path, name: &str, v4: &str, v6: &str) {
    let sbin = bird1_sbin();
    for (daemon, part, neighbor) in [("bird", v4, "10.0.0.2"), ("bird6", v6, "fd00::2")] {
        let include = dir.join(format!("{name}-{daemon}-routelb.conf"));
        std::fs::write(&include, part).unwrap();
        let conf = dir.join(format!("{name}-{daemon}.conf"));
        std::fs::write(&conf, bird1_base(&include, neighbor)).unwrap();
        let run = Command::new(sbin.join(daemon))
            .args(["-p", "-c", conf.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{name}: {daemon} -p refused its half: {}\n{part}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
}

/// `routelb check --daemon bird1` parses each half with BIRD 1.6 against bird.conf and the
/// bird6.conf beside it, and names the daemon whose parser refused its half.
#[test]
fn check_validates_bird1_fragments_against_both_bases() {
    let sbin = bird1_sbin();
    let dir = tempdir("bird1-check");
    let include = dir.join("routelb.conf");
    std::fs::write(dir.join("bird.conf"), bird1_base(&include, "10.0.0.2")).unwrap();
    let include6 = dir.join("routelb6.conf");
    std::fs::write(dir.join("bird6.conf"), bird1_base(&include6, "fd00::2")).unwrap();
    let check = || {
        Command::new(env!("CARGO_BIN_EXE_routelb"))
            .args(["check", "--daemon", "bird1", "--config"])
            .arg(root().join("examples/bgp"))
            .arg("--base")
            .arg(dir.join("bird.conf"))
            .env("ROUTELB_BIRD1_SBIN", &sbin)
            .output()
            .unwrap()
    };
    let out = check();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // bird6's base calls a function nobody defines: bird6's parser refuses, and says so.
    let broken = bird1_base(&include6, "fd00::2").replace(
        "export where routelb_export_rip();",
        "export where routelb_export_nothing();",
    );
    std::fs::write(dir.join("bird6.conf"), broken).unwrap();
    let out = check();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("bird6: ") && err.contains("not a function"),
        "{err}"
    );
}

/// Where the base already redistributes connected routes, each of routelb's route-maps there
/// ends with `permit 65535`, which reproduces the base's line (its metric, metric type and
/// route-map), and FRR's parser accepts it; every protocol routelb redistributes into.
#[test]
fn the_bases_own_redistribution_gets_a_fallback_entry() {
    let cases = [
        (
            "bgp",
            " address-family ipv4 unicast\n",
            "  redistribute connected metric 7 route-map LOOPBACKS\n",
            "ROUTELB-BGP-V4",
        ),
        (
            "ospf",
            "\nrouter ospf\n",
            " redistribute connected metric 30 metric-type 1 route-map LOOPBACKS\n",
            "ROUTELB-OSPF-V4",
        ),
        (
            "ospf",
            "\nrouter ospf6\n",
            " redistribute connected metric 30 route-map LOOPBACKS\n",
            "ROUTELB-OSPF-V6",
        ),
        (
            "isis",
            "\nrouter isis core\n",
            " redistribute ipv6 connected level-2 metric 30 route-map LOOPBACKS\n",
            "ROUTELB-ISIS-L2-V6",
        ),
        (
            "rip",
            "\nrouter rip\n",
            " redistribute connected metric 3 route-map LOOPBACKS\n",
            "ROUTELB-RIP-V4",
        ),
        (
            "rip",
            "\nrouter ripng\n",
            " redistribute connected route-map LOOPBACKS\n",
            "ROUTELB-RIP-V6",
        ),
    ];
    let rt = tokio::runtime::Runtime::new().unwrap();
    for (example, after, line, map) in cases {
        let dir = root().join("examples").join(example);
        let m = load_dir(&dir).unwrap();
        let (_, base) = offline::base_in_dir(&dir, DaemonKind::Frr).unwrap();
        assert!(base.contains(after), "{example}: {after:?}");
        let base = base.replacen(after, &format!("{after}{line}"), 1);
        let inst = offline::instances_from_base(DaemonKind::Frr, &base);
        let out = offline::render(
            &m,
            &Templates::embedded(DaemonKind::Frr).unwrap(),
            None,
            "kube-lb0",
            &inst,
        )
        .unwrap();
        let f = &out.fragment;
        let entry = f
            .split(&format!("route-map {map} permit 65535\n"))
            .nth(1)
            .unwrap_or_else(|| panic!("{example}: no fallback in {map}:\n{f}"));
        let entry = entry.split("exit\n").next().unwrap();
        let want_description = format!(" description base: {}", line.trim());
        assert!(entry.starts_with(&want_description), "{entry}");
        assert!(entry.ends_with(" call LOOPBACKS\n"), "{entry}");
        let metric = line.split(" metric ").nth(1).map(|r| r.split(' ').next());
        if let Some(Some(m)) = metric {
            assert!(entry.contains(&format!(" set metric {m}\n")), "{entry}");
        }
        assert_eq!(
            entry.contains(" set metric-type type-1\n"),
            line.contains("metric-type 1")
        );
        // The fallback comes after every entry routelb numbers itself.
        let seqs: Vec<u32> = f
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("route-map {map} permit ")))
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(seqs.iter().max(), Some(&65_535), "{seqs:?}");
        rt.block_on(
            routelb::daemon::frr::FrrDriver::new(None, routelb::daemon::frr::FrrApply::Diff)
                .validate(f),
        )
        .unwrap();
    }
}

/// `weightedEcmp`'s link-bandwidth lines load in BIRD 1.6's parsers, both halves (BIRD 2 and
/// FRR apply them in the lab: tests/routing_features.rs).
#[test]
fn weights_load_in_bird_1_6() {
    use routelb::render::model::RenderInput;
    let dir = tempdir("bird1-weights");
    let mut m = load_dir(&root().join("examples").join("bgp")).unwrap();
    for p in &mut m.policies {
        p.spec
            .bgp
            .get_or_insert_with(Default::default)
            .weighted_ecmp = true;
    }
    let services = offline::assignments(&m);
    let endpoints = services
        .iter()
        .flat_map(|s| &s.addresses)
        .zip([3, 9, 1, 40].into_iter().cycle())
        .map(|(a, n)| (*a, n))
        .collect();
    let data = routelb::render::build(&RenderInput {
        node: None,
        local_endpoints: &endpoints,
        node_labels: &Default::default(),
        lb_interface: "kube-lb0",
        pools: &m.pools,
        policies: &m.policies,
        services: &services,
        instances: &offline::assume_all_instances(64512),
    })
    .data;
    assert!(!data.bgp[0].weights.is_empty(), "{:?}", data.bgp);
    let fragment = Templates::embedded(DaemonKind::Bird1)
        .unwrap()
        .render(&data)
        .unwrap();
    let (v4, v6) = routelb::render::split_bird1(&fragment);
    for part in [v4, v6] {
        assert!(
            part.contains("bgp_ext_community.add((generic, 0x0004FC00, "),
            "{part}"
        );
    }
    parse_bird1_halves(&dir, "weights", v4, v6);
}

/// `routelb peer-config` for each example: FRR's parser (`vtysh --dryrun`) takes it beside the
/// router's own `router bgp` and peer-group, BIRD's (`bird -p`) with the filter and limits
/// used in a node's channels.
#[test]
fn peer_config_loads_in_the_routers_parsers() {
    let dir = tempdir("peer-config");
    for name in ["bgp", "frr-k8s"] {
        let config = root().join("examples").join(name);
        let config = config.to_str().unwrap();
        let out = routelb(&[
            "peer-config",
            "--config",
            config,
            "--daemon",
            "frr",
            "--router-as",
            "64500",
            "--peer-group",
            "NODES",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let frr = String::from_utf8(out.stdout).unwrap();
        assert!(frr.contains("maximum-prefix"), "{frr}");
        let conf = dir.join(format!("{name}-frr.conf"));
        std::fs::write(
            &conf,
            format!(
                "router bgp 64500\n neighbor NODES peer-group\n neighbor NODES remote-as 64512\n \
                 address-family ipv6 unicast\n  neighbor NODES activate\n exit-address-family\nexit\n{frr}"
            ),
        )
        .unwrap();
        let run = Command::new("vtysh")
            .args(["--dryrun", "-f"])
            .arg(&conf)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{name}: vtysh --dryrun refused it: {}{}\n{frr}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        );

        let out = routelb(&["peer-config", "--config", config, "--daemon", "bird"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bird = String::from_utf8(out.stdout).unwrap();
        let include = dir.join(format!("{name}-peer.conf"));
        std::fs::write(&include, &bird).unwrap();
        let channel = |family: &str, limit: &str| {
            if bird.contains(limit) {
                format!(
                    "{family} {{ import filter routelb_peer_in; import limit {limit} action restart; export none; }};"
                )
            } else {
                String::new()
            }
        };
        let conf = dir.join(format!("{name}-bird.conf"));
        std::fs::write(
            &conf,
            format!(
                "router id 10.0.0.254;\ninclude \"{}\";\nprotocol device {{}}\n\
                 protocol bgp node1 {{ local as 64500; neighbor 10.0.0.1 as 64512; {} {} }}\n",
                include.display(),
                channel("ipv4", "ROUTELB_PEER_LIMIT_V4"),
                channel("ipv6", "ROUTELB_PEER_LIMIT_V6"),
            ),
        )
        .unwrap();
        let run = Command::new("bird")
            .args(["-p", "-c"])
            .arg(&conf)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{name}: bird -p refused it: {}\n{bird}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
}
