//! `kubectl routelb`, the shell of [`crate::views`]: reads one snapshot of the cluster with
//! the kubeconfig, context and namespace kubectl would use, and prints a view as a table (as
//! kubectl does), JSON or YAML. The binary is the plugin when it is called `kubectl-routelb`
//! (a link on PATH), and `routelb kubectl ...` runs the same.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, Service};
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde::Serialize;

use crate::api::{AddressPool, DEFAULT_LB_CLASS, NodeState, RoutingPolicy};
use crate::views::{self, Snapshot, table};

#[derive(Args, Debug)]
pub struct PluginArgs {
    #[command(subcommand)]
    view: View,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value = "table")]
    output: Output,
    /// Path to the kubeconfig file [default: $KUBECONFIG, ~/.kube/config, in-cluster].
    #[arg(long, global = true)]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    context: Option<String>,
    /// The kubeconfig cluster to use.
    #[arg(long, global = true)]
    cluster: Option<String>,
    /// The kubeconfig user to use.
    #[arg(long, global = true)]
    user: Option<String>,
    /// The namespace of the Services [default: the context's].
    #[arg(short = 'n', long, global = true)]
    namespace: Option<String>,
    /// Services of every namespace.
    #[arg(short = 'A', long, global = true)]
    all_namespaces: bool,
    /// The loadBalancerClass routelb serves (its allocator's --lb-class).
    #[arg(long, global = true, default_value = DEFAULT_LB_CLASS)]
    lb_class: String,
    /// Its allocator runs with --require-class.
    #[arg(long, global = true)]
    require_class: bool,
    /// Namespace of the agents' node Leases.
    #[arg(long, global = true, default_value = crate::membership::DEFAULT_NAMESPACE)]
    lease_namespace: String,
}

#[derive(Subcommand, Debug)]
enum View {
    /// Per Service: its addresses, pool, the nodes announcing it and the peers that get it,
    /// problems first.
    Status,
    /// Per node: its agent, addresses, daemon, last apply, sessions and what is wrong.
    Nodes,
    /// Per pool and family: how full it is, and Services waiting for it.
    Pools,
    /// The chain of reasons from a Service to the routers: why it has no address or is not
    /// announced, or where it is announced.
    Why {
        /// `name` (in the namespace of -n or the context) or `namespace/name`.
        service: String,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Output {
    Table,
    Json,
    Yaml,
}

/// Runs the plugin: reads, prints to stdout.
pub async fn run(args: PluginArgs) -> anyhow::Result<()> {
    let config = client_config(&args).await?;
    let default_namespace = config.default_namespace.clone();
    let client = Client::try_from(config).context("building the API client")?;
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| default_namespace.clone());
    let text = match &args.view {
        View::Status => {
            let only = (!args.all_namespaces).then_some(namespace.as_str());
            let s = read(&client, &args, only, None).await?;
            let rows = views::status(&s, only);
            print_as(args.output, &rows, || status_table(&rows, only))?
        }
        View::Nodes => {
            let s = read(&client, &args, None, None).await?;
            let rows = views::nodes(&s);
            print_as(args.output, &rows, || nodes_table(&rows, s.now))?
        }
        View::Pools => {
            let s = read(&client, &args, None, None).await?;
            let rows = views::pools(&s);
            print_as(args.output, &rows, || pools_table(&rows))?
        }
        View::Why { service } => {
            let (ns, name) = service
                .split_once('/')
                .unwrap_or((namespace.as_str(), service.as_str()));
            let s = read(&client, &args, Some(ns), Some(name)).await?;
            if s.services.is_empty() {
                // as kubectl: a NotFound is an error
                anyhow::bail!("services \"{name}\" not found in namespace {ns}");
            }
            let why = views::why(&s, ns, name);
            print_as(args.output, &why, || why_text(&why))?
        }
    };
    std::io::stdout().write_all(text.as_bytes())?;
    Ok(())
}

/// The kubeconfig as kubectl reads it: --kubeconfig, else $KUBECONFIG or ~/.kube/config,
/// else the pod's service account; --context/--cluster/--user pick inside it.
async fn client_config(args: &PluginArgs) -> anyhow::Result<Config> {
    let options = KubeConfigOptions {
        context: args.context.clone(),
        cluster: args.cluster.clone(),
        user: args.user.clone(),
    };
    match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Ok(Config::from_custom_kubeconfig(kubeconfig, &options).await?)
        }
        None if options.context.is_some()
            || options.cluster.is_some()
            || options.user.is_some() =>
        {
            Ok(Config::from_kubeconfig(&options).await?)
        }
        None => Ok(Config::infer().await?),
    }
}

/// One snapshot: the Services of `namespace` (all with `None`; only `service` when given),
/// with the cluster-scoped objects, node Leases and (for one Service) its Events. Leases and
/// Events are optional: without the right to read them the views say less, not nothing.
async fn read(
    client: &Client,
    args: &PluginArgs,
    namespace: Option<&str>,
    service: Option<&str>,
) -> anyhow::Result<Snapshot> {
    let lp = ListParams::default();
    let services: Api<Service> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let services = match service {
        Some(name) => services.get_opt(name).await?.into_iter().collect(),
        None => services.list(&lp).await.context("listing Services")?.items,
    };
    let events = match (namespace, service) {
        (Some(ns), Some(name)) => {
            let lp = ListParams::default().fields(&format!(
                "involvedObject.kind=Service,involvedObject.name={name}"
            ));
            optional(
                "Events",
                Api::<Event>::namespaced(client.clone(), ns).list(&lp).await,
            )
            .unwrap_or_default()
        }
        _ => Vec::new(),
    };
    Ok(Snapshot {
        services,
        pools: Api::<AddressPool>::all(client.clone())
            .list(&lp)
            .await
            .context("listing AddressPools (are routelb's CRDs installed?)")?
            .items,
        policies: Api::<RoutingPolicy>::all(client.clone())
            .list(&lp)
            .await
            .context("listing RoutingPolicies")?
            .items,
        node_states: Api::<NodeState>::all(client.clone())
            .list(&lp)
            .await
            .context("listing NodeStates")?
            .items,
        nodes: optional("Nodes", Api::<Node>::all(client.clone()).list(&lp).await),
        leases: optional(
            "node Leases",
            Api::<Lease>::namespaced(client.clone(), &args.lease_namespace)
                .list(
                    &ListParams::default()
                        .labels(&format!("{}=true", crate::membership::LEASE_LABEL)),
                )
                .await,
        ),
        events,
        class: args.lb_class.clone(),
        require_class: args.require_class,
        now: server_time(client).await,
    })
}

/// The API server's clock (its `Date` header), against which the agents' Lease renewals are
/// judged: this machine's clock may be off by more than a Lease lasts. This machine's clock
/// when the server does not say.
async fn server_time(client: &Client) -> Timestamp {
    let request = http::Request::get("/version").body(kube::client::Body::empty());
    let date = match request {
        Ok(r) => client.send(r).await.ok().and_then(|response| {
            let date = response.headers().get(http::header::DATE)?.to_str().ok()?;
            parse_http_date(date)
        }),
        Err(_) => None,
    };
    date.unwrap_or_else(Timestamp::now)
}

/// An HTTP `Date` (RFC 9110 IMF-fixdate: `Mon, 07 Dec 2026 13:06:01 GMT`).
fn parse_http_date(date: &str) -> Option<Timestamp> {
    k8s_openapi::jiff::fmt::rfc2822::parse(date)
        .ok()
        .map(|z| z.timestamp())
}

fn optional<T: Clone>(what: &str, r: kube::Result<kube::core::ObjectList<T>>) -> Option<Vec<T>> {
    match r {
        Ok(list) => Some(list.items),
        Err(e) => {
            eprintln!("warning: cannot read {what} ({e}): the view leaves them out");
            None
        }
    }
}

fn print_as<T: Serialize + ?Sized>(
    output: Output,
    value: &T,
    table: impl FnOnce() -> String,
) -> anyhow::Result<String> {
    Ok(match output {
        Output::Table => table(),
        Output::Json => serde_json::to_string_pretty(value)? + "\n",
        Output::Yaml => serde_yaml::to_string(value)?,
    })
}

/// `namespace`: the one listed, `None` for all (then a NAMESPACE column, as kubectl -A).
fn status_table(rows: &[views::ServiceRow], namespace: Option<&str>) -> String {
    let with_namespace = namespace.is_none();
    if rows.is_empty() {
        return match namespace {
            Some(ns) => format!("No LoadBalancer Services served by routelb in namespace {ns}.\n"),
            None => "No LoadBalancer Services served by routelb.\n".into(),
        };
    }
    let mut headers = vec![
        "NAME",
        "HEALTH",
        "ADDRESSES",
        "POOL",
        "ANNOUNCED BY",
        "PEERS",
        "PROBLEM",
    ];
    if with_namespace {
        headers.insert(0, "NAMESPACE");
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut c = vec![
                r.name.clone(),
                r.health.mark().into(),
                r.addresses.join(","),
                r.pool.clone().unwrap_or_default(),
                views::announcers_text(&r.announced_by),
                r.peers.join(", "),
                r.problem.clone().unwrap_or_default(),
            ];
            if with_namespace {
                c.insert(0, r.namespace.clone());
            }
            c
        })
        .collect();
    table::render(&headers, &cells)
}

fn nodes_table(rows: &[views::NodeRow], now: k8s_openapi::jiff::Timestamp) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let apply = r.last_apply.as_ref().map(|a| {
                match a.time.parse::<k8s_openapi::jiff::Timestamp>() {
                    Ok(t) => format!("{} {} ago", a.result, views::age(now, t)),
                    Err(_) => a.result.clone(),
                }
            });
            vec![
                r.name.clone(),
                r.health.mark().into(),
                r.agent.clone(),
                r.daemon.clone().unwrap_or_default(),
                r.addresses.len().to_string(),
                apply.unwrap_or_default(),
                r.sessions.clone().unwrap_or_default(),
                r.draining.clone().unwrap_or_default(),
                r.problems.join("; "),
            ]
        })
        .collect();
    table::render(
        &[
            "NAME",
            "HEALTH",
            "AGENT",
            "DAEMON",
            "ADDRESSES",
            "LAST APPLY",
            "SESSIONS",
            "DRAINING",
            "PROBLEMS",
        ],
        &cells,
    )
}

fn pools_table(rows: &[views::PoolRow]) -> String {
    if rows.is_empty() {
        return "No AddressPools found.\n".into();
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.health.mark().into(),
                r.mode.clone(),
                r.family.clone(),
                format!(
                    "{} {:>3.0}%",
                    views::bar(r.used_percent, 20),
                    r.used_percent
                ),
                r.allocated.to_string(),
                r.available.to_string(),
                r.waiting_services.to_string(),
                r.problem.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table::render(
        &[
            "NAME",
            "HEALTH",
            "MODE",
            "FAMILY",
            "USED",
            "ALLOCATED",
            "AVAILABLE",
            "WAITING",
            "PROBLEM",
        ],
        &cells,
    )
}

fn why_text(why: &views::Why) -> String {
    let mut out = format!("{}: {} {}\n", why.service, why.health.mark(), why.verdict);
    let cells: Vec<Vec<String>> = why
        .steps
        .iter()
        .map(|s| {
            vec![
                format!("  {}", s.health.mark()),
                s.what.clone(),
                s.fact.clone(),
            ]
        })
        .collect();
    for line in table::render(&["", "", ""], &cells).lines().skip(1) {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_date_header_parses() {
        let t = parse_http_date("Mon, 07 Dec 2026 13:06:01 GMT").unwrap();
        assert_eq!(t.to_string(), "2026-12-07T13:06:01Z");
        assert!(parse_http_date("yesterday").is_none());
    }
}
