//! What operators watch, checked against the real components: the Prometheus rules with
//! promtool (syntax and their unit tests), then a real Prometheus scraping the allocator and
//! the agents of a lab run, loaded with those rules: every rule evaluates without error, and
//! every metric a rule or a dashboard panel names is exported, with the labels the query uses.
//! Needs root, FRR, the test API server (KUBECONFIG) and Debian's `prometheus`, as CI provides.

mod support {
    pub mod allocator;
    pub mod api;
    pub mod apiproxy;
    #[allow(dead_code)] // what the agent tests use of it
    pub mod cluster;
    pub mod daemon;
    pub mod files;
    pub mod lock;
    pub mod objects;
    pub mod script;
    #[allow(dead_code)] // what the agent tests use of it
    pub mod setup;
    pub mod wait;
}

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use routelb::api::annotations;
use serde_json::{Value, json};
use support::allocator::{free_port, http_get, http_get_any};
use support::apiproxy::PortForward;
use support::cluster::Cluster;
use support::objects::{create_service, service, wait_annotation};
use support::setup::{Setup, logs};
use support::{files, lock, wait};

fn monitoring_dir() -> PathBuf {
    files::root().join("deploy/optional/monitoring")
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(monitoring_dir())
        .output()
        .expect("promtool runs (Debian package prometheus)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

#[test]
fn promtool_checks_the_rules_and_passes_their_unit_tests() {
    let checked = promtool(&["check", "rules", "routelb.rules.yaml"]);
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tested = promtool(&["test", "rules", "routelb.rules.test.yaml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

// ----------------------------------------------------------------- what the files query --

/// `(where, PromQL)` of every rule in routelb.rules.yaml, and the names it records.
fn rule_queries() -> (Vec<(String, String)>, BTreeSet<String>) {
    let text = std::fs::read_to_string(monitoring_dir().join("routelb.rules.yaml")).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let mut queries = Vec::new();
    let mut recorded = BTreeSet::new();
    for group in doc["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let name = rule["record"]
                .as_str()
                .or(rule["alert"].as_str())
                .unwrap()
                .to_string();
            if rule["record"].is_string() {
                recorded.insert(name.clone());
            }
            queries.push((
                format!("rule {name}"),
                rule["expr"].as_str().unwrap().to_string(),
            ));
        }
    }
    (queries, recorded)
}

/// `(where, PromQL)` of every panel target of the dashboard.
fn panel_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(monitoring_dir().join("routelb-overview.json")).unwrap();
    let dash: Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().into_iter().flatten() {
            out.push((
                format!("panel {:?}", panel["title"].as_str().unwrap()),
                t["expr"].as_str().unwrap().to_string(),
            ));
        }
    }
    assert!(out.len() > 10, "the dashboard has its panels");
    out
}

/// What a query names: routelb metrics (and recording rules), each with its label matchers
/// (`name`, operator, value), and the label lists of `by (...)` / `on (...)` clauses.
#[derive(Debug, Default)]
struct Names {
    metrics: BTreeMap<String, Vec<(String, String, String)>>,
    grouping: BTreeSet<String>,
}

fn names_in(expr: &str) -> Names {
    let mut names = Names::default();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    while i < chars.len() {
        let c = chars[i];
        if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += 1 + usize::from(chars[i] == '\\');
            }
            i += 1;
            continue;
        }
        if c == '[' {
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            continue;
        }
        if !(c.is_ascii_alphabetic() || c == '_') {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && ident(chars[i]) {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        let mut j = i;
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        let block = |open: char, close: char| -> Option<(String, usize)> {
            (j < chars.len() && chars[j] == open).then(|| {
                let end = (j..chars.len()).find(|&k| chars[k] == close).unwrap();
                (chars[j + 1..end].iter().collect(), end + 1)
            })
        };
        if word.starts_with("routelb") {
            let mut matchers = Vec::new();
            if let Some((inner, end)) = block('{', '}') {
                for m in inner.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                    let op_at = m.find(['=', '!']).unwrap();
                    let op_len = if m[op_at..].starts_with("=~")
                        || m[op_at..].starts_with("!=")
                        || m[op_at..].starts_with("!~")
                    {
                        2
                    } else {
                        1
                    };
                    matchers.push((
                        m[..op_at].trim().to_string(),
                        m[op_at..op_at + op_len].to_string(),
                        m[op_at + op_len..].trim().trim_matches('"').to_string(),
                    ));
                }
                i = end;
            }
            names.metrics.entry(word).or_default().extend(matchers);
        } else if matches!(word.as_str(), "by" | "on" | "without")
            && let Some((inner, end)) = block('(', ')')
        {
            names.grouping.extend(
                inner
                    .split(',')
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(String::from),
            );
            i = end;
        }
    }
    names
}

#[test]
fn the_query_reader_finds_metrics_matchers_and_groupings() {
    let n = names_in(
        r#"sum by (pool, family) (routelb:x{state="allocated"}) / on(instance) group_left() rate(routelb_y_total{a=~"b|c"}[5m]) and foo{job="routelb_z"}"#,
    );
    assert_eq!(
        n.metrics.keys().collect::<Vec<_>>(),
        ["routelb:x", "routelb_y_total"]
    );
    assert_eq!(
        n.metrics["routelb:x"],
        [("state".into(), "=".into(), "allocated".into())]
    );
    assert_eq!(n.metrics["routelb_y_total"][0].1, "=~");
    assert_eq!(
        n.grouping.into_iter().collect::<Vec<_>>(),
        ["family", "instance", "pool"]
    );
}

// ------------------------------------------------------------------- a real Prometheus --

/// Prometheus on loopback scraping `targets` (job → host:port) every second, evaluating
/// routelb.rules.yaml every second. Killed when dropped.
struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(targets: &[(&str, Vec<String>)]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let jobs: Vec<Value> = targets
            .iter()
            .map(|(job, t)| json!({ "job_name": job, "static_configs": [{ "targets": t }] }))
            .collect();
        let config = json!({
            "global": { "scrape_interval": "1s", "evaluation_interval": "1s" },
            "rule_files": [monitoring_dir().join("routelb.rules.yaml")],
            "scrape_configs": jobs,
        });
        // YAML is a superset of JSON
        let path = dir.path().join("prometheus.yml");
        std::fs::write(&path, config.to_string()).unwrap();
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("prometheus runs (Debian package prometheus)");
        Prometheus {
            child,
            port,
            _dir: dir,
        }
    }

    async fn api(&self, path_and_query: &str) -> Value {
        let body = http_get(self.port, path_and_query)
            .await
            .unwrap_or_else(|| panic!("Prometheus answers {path_and_query}"));
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "success", "{path_and_query}: {v}");
        v["data"].clone()
    }

    /// The result of an instant query; the error Prometheus gives for a bad one.
    async fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let path = format!("/api/v1/query?query={}", encode(expr));
        let (_, body) = http_get_any(self.port, &path)
            .await
            .ok_or("Prometheus does not answer")?;
        let v: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
        if v["status"] != "success" {
            return Err(format!("{}: {}", v["errorType"], v["error"]));
        }
        Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
    }

    /// The label sets of every series of `metric`.
    async fn series(&self, metric: &str) -> Vec<BTreeMap<String, String>> {
        let data = self
            .api(&format!("/api/v1/series?match[]={}", encode(metric)))
            .await;
        serde_json::from_value(data).unwrap()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The metric family a sample name belongs to, as Prometheus's metadata names it.
fn family(sample: &str) -> &str {
    ["_total", "_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| sample.strip_suffix(s))
        .unwrap_or(sample)
}

/// Waits until `expr` has a series in Prometheus.
async fn wait_series(prom: &Prometheus, expr: &str, agents: &[support::cluster::Agent]) {
    wait::up_to(Duration::from_secs(45))
        .until(|| async { (!prom.query(expr).await.ok()?.is_empty()).then_some(()) })
        .await
        .unwrap_or_else(|| panic!("no {expr}\n{}", logs(agents)));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_prometheus_scrapes_a_lab_and_every_rule_and_panel_query_holds() {
    let api_server = lock::api_server();
    let c = Cluster::up("mon", 2, "bgp", "frr");
    let s = Setup::new(&api_server, &c, "bgp").await;
    let agents = s.agents(&c, &[]).await;
    // An announced Service, and one that cannot get an address.
    s.service("web", &s.routed, json!({})).await;
    s.wait_announcing("web", |a| a.split(',').count() == 2)
        .await;
    create_service(
        &s.client,
        service(
            &s.ns,
            "lost",
            json!({ "metadata": { "annotations": { annotations::POOL: "no-such-pool" } } }),
        ),
    )
    .await;
    wait_annotation(
        &s.client,
        &s.ns,
        "lost",
        annotations::ALLOCATION_ERROR,
        |v| v.is_some(),
    )
    .await;

    let forwards: Vec<PortForward> = (1..=c.nodes)
        .map(|i| PortForward::start(c.node_var(i, "NS"), 9091))
        .collect();
    let prom = Prometheus::start(&[
        (
            "routelb-allocator",
            vec![format!("127.0.0.1:{}", s.allocator.metrics_port)],
        ),
        (
            "routelb-agent",
            forwards
                .iter()
                .map(|f| format!("127.0.0.1:{}", f.host_port))
                .collect(),
        ),
    ]);
    // Every target scraped, the rules evaluated over the scrapes.
    wait::up_to(Duration::from_secs(60))
        .until(|| async {
            let up = prom.query("up == 1").await.ok()?;
            let recorded = prom
                .query(r#"routelb:services:leader{state="announced"} >= 1"#)
                .await
                .ok()?;
            (up.len() == 1 + c.nodes && !recorded.is_empty()).then_some(())
        })
        .await
        .unwrap_or_else(|| panic!("Prometheus never scraped everything\n{}", logs(&agents)));

    // What exports its counters only once it happens: a routing session going down and up,
    // and a routelb object another tool removed from FRR (the drift probe restores it).
    let link = c.node_var(1, "RTR_IF").to_string();
    c.ip_in(c.var("CLUSTER_RTR_NS"), &["link", "set", &link, "down"]);
    wait_series(
        &prom,
        r#"routelb_agent_routing_session_transitions_total{change="down"}"#,
        &agents,
    )
    .await;
    c.ip_in(c.var("CLUSTER_RTR_NS"), &["link", "set", &link, "up"]);
    let vtysh = Command::new("vtysh")
        .args(["-N", c.node_var(1, "FRR")])
        .args(["-c", "configure terminal"])
        .args([
            "-c",
            &format!("no ip prefix-list ROUTELB-POOL-{}-V4", s.routed),
        ])
        .output()
        .unwrap();
    assert!(vtysh.status.success(), "{vtysh:?}");
    wait_series(&prom, "routelb_agent_drift_repairs_total", &agents).await;

    // Exported: scraped with samples (Prometheus keeps their metadata), or declared in an
    // exposition without any yet (a counter of errors that did not happen).
    let mut exported: BTreeSet<String> = prom
        .api("/api/v1/metadata")
        .await
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let mut ports = vec![s.allocator.metrics_port];
    ports.extend(forwards.iter().map(|f| f.host_port));
    for port in ports {
        let text = http_get(port, "/metrics").await.unwrap_or_default();
        exported.extend(
            text.lines()
                .filter_map(|l| l.strip_prefix("# TYPE "))
                .filter_map(|l| l.split_whitespace().next())
                .map(String::from),
        );
    }
    let (rules, recorded) = rule_queries();
    let mut problems = Vec::new();
    for (place, expr) in rules.iter().chain(panel_queries().iter()) {
        if let Err(e) = prom.query(expr).await {
            problems.push(format!("{place}: Prometheus refuses the query: {e}"));
            continue;
        }
        let names = names_in(expr);
        let mut label_sets = Vec::new();
        for (metric, matchers) in &names.metrics {
            let known = if metric.contains(':') {
                recorded.contains(metric)
            } else {
                exported.contains(family(metric))
            };
            if !known {
                problems.push(format!("{place}: {metric} is not exported (nor recorded)"));
                continue;
            }
            let series = prom.series(metric).await;
            if series.is_empty() && !matchers.is_empty() {
                problems.push(format!(
                    "{place}: {metric} has no series to check its matchers against (make the lab produce one)"
                ));
            }
            for (label, op, value) in matchers.iter().filter(|_| !series.is_empty()) {
                if !series.iter().any(|s| s.contains_key(label)) {
                    problems.push(format!("{place}: {metric} has no label {label}"));
                } else if op == "="
                    && !value.is_empty()
                    && !series.iter().any(|s| s.get(label) == Some(value))
                {
                    problems.push(format!("{place}: no {metric} has {label}=\"{value}\""));
                }
            }
            label_sets.extend(series);
        }
        for label in &names.grouping {
            if !label_sets.is_empty() && !label_sets.iter().any(|s| s.contains_key(label)) {
                problems.push(format!(
                    "{place}: groups by {label}, which none of its metrics has"
                ));
            }
        }
    }
    // The rules evaluate without error.
    let groups = prom.api("/api/v1/rules").await;
    for g in groups["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            if r["health"] != "ok" {
                problems.push(format!(
                    "rule {}: {} {}",
                    r["name"], r["health"], r["lastError"]
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // And they say what the lab shows: one Service without an address (pending: the alert
    // waits its `for`), both daemons configured, the routed pool in use.
    let no_address = prom
        .query(r#"routelb:services:leader{state="no_address"}"#)
        .await
        .unwrap();
    assert_eq!(no_address[0]["value"][1], "1", "{no_address:?}");
    wait::up_to(Duration::from_secs(20))
        .until(|| async {
            let a = prom
                .query(r#"ALERTS{alertname="RoutelbServiceWithoutAddress"}"#)
                .await
                .ok()?;
            (!a.is_empty()).then_some(())
        })
        .await
        .expect("RoutelbServiceWithoutAddress pending");
    let configured = prom
        .query("count(routelb_agent_daemon_configured == 1)")
        .await
        .unwrap();
    assert_eq!(
        configured[0]["value"][1],
        c.nodes.to_string(),
        "{configured:?}"
    );
    let usage = prom
        .query(&format!(
            r#"routelb:pool_usage:ratio{{pool="{}"}} > 0"#,
            s.routed
        ))
        .await
        .unwrap();
    assert!(!usage.is_empty(), "the routed pool's usage is recorded");
    drop(prom);
    drop(forwards);
    drop(agents);
    s.cleanup().await;
}
