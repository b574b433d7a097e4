use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use routelb::allocator::{self, leader::LeaseConfig};
use routelb::api::DEFAULT_LB_CLASS;
use routelb::crdgen;
use routelb::membership;
use routelb::metrics::{Health, Metrics};
use routelb::plugin::{self, PluginArgs};
use routelb::render::{DaemonKind, Templates};
use routelb::telemetry::{self, LogFormat};
use std::path::PathBuf;

/// routelb: LoadBalancer addresses for bare-metal Kubernetes, announced through the routing
/// daemon already on each node (FRR or BIRD).
#[derive(Parser)]
#[command(version, propagate_version = true)]
struct Cli {
    /// Log format.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "ROUTELB_LOG_FORMAT"
    )]
    log_format: LogFormat,
    /// Log filter (`info`, `routelb=debug,kube=warn`); RUST_LOG overrides it.
    #[arg(long, global = true, default_value = "info", env = "ROUTELB_LOG_LEVEL")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Give Services of type LoadBalancer their addresses from AddressPools (cluster role; run
    /// two replicas, one leads through a Lease).
    Allocator(AllocatorArgs),
    /// Print every routelb CustomResourceDefinition as multi-document YAML (`routelb crds | kubectl apply -f -`).
    Crds,
    /// Print the FRR or BIRD fragment for the AddressPool, RoutingPolicy and Service manifests in
    /// a directory. No cluster, no root, no daemon needed.
    Render(RenderArgs),
    /// Render the fragment, report what the base configuration would drop of it (outbound
    /// route-maps, prefix-lists, distribute-lists, BIRD export filters…), and validate it with
    /// the daemon's own parser (vtysh --dryrun, bird -p); exits non-zero on an error finding or
    /// when the daemon refuses it.
    Check(RenderArgs),
    /// Render the fragment for a directory of manifests against a running FRR or BIRD (its
    /// routing instances are read from it) and apply it once: validate, then send only what
    /// changed (FRR) or reconfigure with confirm (BIRD).
    Apply(ApplyArgs),
    /// Show what a change would do to the daemon before it is made: the exact lines and, for
    /// each, what the daemon does with it (FRR: which route-maps are re-evaluated for which
    /// peers, which peers get a ROUTE-REFRESH; BIRD: which protocols `configure` reconfigures,
    /// exports again or restarts). Offline from another directory of manifests (--from), or
    /// against the running daemon. Changes nothing.
    Plan(PlanArgs),
    /// Print what the upstream router needs to accept from routelb's nodes: an inbound
    /// prefix-list/filter with exactly the pools' prefixes at the lengths routelb announces
    /// them, a maximum-prefix limit from the pools' sizes with headroom, and the communities
    /// the policies attach. From a directory of manifests (--config), or from the cluster.
    PeerConfig(PeerConfigArgs),
    /// Run the whole pipeline on this host from a directory of manifests instead of a cluster:
    /// allocate, put addresses on interfaces, and apply the fragment to FRR or BIRD. The
    /// directory is watched; allocations persist in a state file.
    Standalone(StandaloneArgs),
    /// The node agent (one per node, beside FRR or BIRD): puts allocated addresses on this
    /// node's interfaces, elects holders of local addresses among live nodes, and applies the
    /// fragment to the daemon when policies change.
    Agent(AgentArgs),
    /// The kubectl plugin (`kubectl routelb`; link this binary as `kubectl-routelb` on PATH):
    /// where Services are announced, by which nodes, to which peers, and what is wrong.
    Kubectl(PluginArgs),
}

#[derive(Args)]
struct AgentArgs {
    /// This node's name (the Kubernetes Node name).
    #[arg(long, env = "NODE_NAME")]
    node_name: String,
    /// Which daemon announces the addresses.
    #[arg(long, value_parser = daemon_kind(), default_value = "frr")]
    daemon: DaemonKind,
    #[command(flatten)]
    daemon_args: DaemonArgs,
    /// Directory of templates (<dir>/frr/*.conf.tera, <dir>/bird/*.conf.tera) [default: built in]
    #[arg(long)]
    templates: Option<PathBuf>,
    /// Interface holding routed addresses (created as dummy, or ifb, where it must exist).
    #[arg(long, default_value = "kube-lb0")]
    lb_interface: String,
    /// The spec.loadBalancerClass served. Services of any other class are never touched.
    #[arg(long, default_value = DEFAULT_LB_CLASS)]
    lb_class: String,
    /// Ignore Services that have no spec.loadBalancerClass.
    #[arg(long, default_value_t = false)]
    require_class: bool,
    /// Namespace of the per-node Leases (the allocator's --node-lease-namespace must match).
    #[arg(
        long,
        default_value = membership::DEFAULT_NAMESPACE,
        env = "ROUTELB_NODE_LEASE_NAMESPACE"
    )]
    lease_namespace: String,
    /// A node whose Lease goes unrenewed this long is dead and its local addresses move: the
    /// hard-failover time. API load is one write per node per renew period.
    #[arg(long, default_value = "6s", value_parser = humantime::parse_duration)]
    lease_duration: Duration,
    /// How often this node renews its Lease.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    renew_period: Duration,
    /// Lifetime of addresses put on interfaces (refreshed every third of it), so a dead agent
    /// cannot hold them for ever. Above 1,000 addresses it grows with them (3 s per 100
    /// held), so that the routing daemon sees at most 100 renewals per second.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    address_lifetime: Duration,
    /// How often the daemon is checked for lost objects when nothing changed: FRR with the
    /// drift probe's few show commands, and a full read of its running configuration every
    /// 10th time (and after a daemon restart or a failed apply); BIRD read in full each time.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    resync: Duration,
    /// How often FRR's daemons are probed, with a few small show commands, for routelb objects
    /// another tool removed or changed (frr-reload.py, a person); 0 disables (they wait for
    /// the resync).
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    drift_probe: Duration,
    /// How long this node waits, after a Service appeared or its endpoints became ready (on
    /// this node, under externalTrafficPolicy: Local), before it starts announcing it:
    /// kube-proxy programs a change up to its --iptables-min-sync-period (1 s) plus the sync
    /// after routelb learns of it, and refuses or drops what it has not programmed yet.
    /// Withdrawals and what a node announces already are never delayed; 0 with a proxy that
    /// programs Services before their endpoints turn ready (or none).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    kube_proxy_grace: Duration,
    /// How long a node drains before it withdraws: cordoned, labelled
    /// node.kubernetes.io/exclude-from-external-load-balancers, tainted with a --drain-taint,
    /// or on SIGTERM, it first makes its routes less preferred (BGP GRACEFUL_SHUTDOWN
    /// community 65535:0, OSPF/IS-IS/RIP largest metric) and hands its local addresses over,
    /// then withdraws after this long. 0: withdraw at once. Keep the pod's
    /// terminationGracePeriodSeconds above it.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    drain_time: Duration,
    /// A taint key that drains this node like a cordon (repeatable).
    #[arg(long = "drain-taint")]
    drain_taints: Vec<String>,
    /// The BGP local preference a draining node's routes carry (besides the community), for
    /// peers that do not act on GRACEFUL_SHUTDOWN themselves.
    #[arg(long)]
    drain_local_preference: Option<u32>,
    /// The BGP MED a draining node's routes carry.
    #[arg(long)]
    drain_med: Option<u32>,
    /// How many times a draining node prepends its own AS to its routes.
    #[arg(long, default_value = "0")]
    drain_prepend: u8,
    #[command(flatten)]
    rollout: RolloutArgs,
    /// Address for /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:9091")]
    metrics_addr: SocketAddr,
}

/// Which staged rollout of routing changes both roles follow.
#[derive(Args)]
struct RolloutArgs {
    /// The RoutingRollout followed. While none of this name exists, every node renders the
    /// RoutingPolicies (and its templates) as they are, at once.
    #[arg(long, default_value = "default")]
    rollout: String,
    /// Namespace of the rollout's revisions (ControllerRevisions the allocator writes).
    #[arg(
        long,
        default_value = "routelb-system",
        env = "ROUTELB_ROLLOUT_NAMESPACE"
    )]
    rollout_namespace: String,
}

impl RolloutArgs {
    fn follow(self) -> routelb::rollout::Follow {
        routelb::rollout::Follow {
            name: self.rollout,
            namespace: self.rollout_namespace,
        }
    }
}

#[derive(Args)]
struct StandaloneArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Where allocations persist across restarts [default: <config>/.routelb-state.json]
    #[arg(long)]
    state: Option<PathBuf>,
    /// Which daemon announces the addresses.
    #[arg(long, value_parser = daemon_kind(), default_value = "frr")]
    daemon: DaemonKind,
    /// Converge once and exit (non-zero if anything failed).
    #[arg(long, default_value_t = false)]
    once: bool,
    /// Print which Service gets which address, the addresses per interface and the fragment;
    /// needs no root, changes nothing.
    #[arg(long, default_value_t = false)]
    dry_run: bool,
    /// Format of --dry-run's output.
    #[arg(long, value_enum, default_value = "text", requires = "dry_run")]
    output: OutputFormat,
    /// How often the daemon is checked for lost objects when nothing changed: FRR with the
    /// drift probe's few show commands, and a full read of its running configuration every
    /// 10th time (and after a daemon restart or a failed apply); BIRD read in full each time.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    resync: Duration,
    /// How often FRR's daemons are probed, with a few small show commands, for routelb objects
    /// another tool removed or changed (frr-reload.py, a person); 0 disables (they wait for
    /// the resync).
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    drift_probe: Duration,
    #[command(flatten)]
    daemon_args: DaemonArgs,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum OutputFormat {
    Text,
    Json,
}

#[derive(Args)]
struct DaemonArgs {
    /// FRR pathspace (vtysh -N NAME); default: the default FRR instance.
    #[arg(long)]
    frr_pathspace: Option<String>,
    /// Directory holding FRR's daemon vty sockets (<dir>/<daemon>.vty; with a pathspace,
    /// <dir>/<pathspace>/<daemon>.vty). Share it with the FRR container.
    #[arg(long, default_value = routelb::daemon::frr::DEFAULT_VTY_DIR)]
    frr_vty_dir: PathBuf,
    /// How FRR changes are applied.
    #[arg(long, value_enum, default_value = "diff")]
    frr_apply: routelb::daemon::frr::FrrApply,
    /// BIRD control socket.
    #[arg(long, default_value = "/run/bird/bird.ctl")]
    bird_socket: PathBuf,
    /// The file routelb owns, included by the base bird.conf.
    #[arg(long, default_value = "/etc/bird/routelb.conf")]
    bird_include: PathBuf,
    /// BIRD 1.x (--daemon bird1): bird6's control socket (IPv6).
    #[arg(long, default_value = "/run/bird/bird6.ctl")]
    bird6_socket: PathBuf,
    /// BIRD 1.x (--daemon bird1): the file routelb owns, included by the base bird6.conf.
    #[arg(long, default_value = "/etc/bird/routelb6.conf")]
    bird6_include: PathBuf,
}

impl DaemonArgs {
    fn driver(&self, daemon: DaemonKind) -> routelb::daemon::Driver {
        use routelb::daemon::{Driver, bird::BirdDriver, frr::FrrDriver};
        match daemon {
            DaemonKind::Frr => Driver::Frr(FrrDriver::with_vty_dir(
                self.frr_pathspace.clone(),
                self.frr_apply,
                self.frr_vty_dir.clone(),
            )),
            DaemonKind::Bird => Driver::Bird(BirdDriver::new(
                self.bird_socket.clone(),
                self.bird_include.clone(),
            )),
            DaemonKind::Bird1 => Driver::Bird(BirdDriver::bird1(
                self.bird_socket.clone(),
                self.bird_include.clone(),
                self.bird6_socket.clone(),
                self.bird6_include.clone(),
            )),
        }
    }
}

#[derive(Args)]
struct ApplyArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Which daemon.
    #[arg(long, value_parser = daemon_kind())]
    daemon: DaemonKind,
    #[command(flatten)]
    daemon_args: DaemonArgs,
}

/// Where manifests and templates come from, and the interface routed addresses live on.
#[derive(Args, Clone)]
struct SourceArgs {
    /// Directory of manifests (AddressPool, RoutingPolicy, Service; YAML, multi-document files).
    #[arg(long)]
    config: PathBuf,
    /// This node's name, for node selectors (its labels come from a Node manifest in the
    /// directory, if any); without it, node selectors are ignored.
    #[arg(long)]
    node: Option<String>,
    /// Directory of templates (<dir>/frr/*.conf.tera, <dir>/bird/*.conf.tera) [default: built in]
    #[arg(long)]
    templates: Option<PathBuf>,
    /// Interface holding routed addresses (created as dummy, or ifb, where it must exist).
    #[arg(long, default_value = "kube-lb0")]
    lb_interface: String,
}

impl SourceArgs {
    fn manifests_and_templates(
        &self,
        daemon: DaemonKind,
    ) -> anyhow::Result<(routelb::manifests::Manifests, Templates)> {
        routelb::render::model::validate_interface_name(&self.lb_interface)
            .map_err(anyhow::Error::msg)?;
        Ok((
            routelb::manifests::load_dir(&self.config)?,
            Templates::load(daemon, self.templates.as_deref())?,
        ))
    }
}

#[derive(Args, Clone)]
struct RenderArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Which daemon's fragment.
    #[arg(long, value_parser = daemon_kind())]
    daemon: DaemonKind,
    /// The network team's base configuration, to find routing instances in
    /// [default: frr.conf or bird.conf in the directory; without one, every instance is assumed]
    #[arg(long)]
    base: Option<PathBuf>,
    /// AS number assumed when there is no base configuration to read it from.
    #[arg(long, default_value_t = 64512)]
    assume_asn: u32,
}

#[derive(Args)]
struct PeerConfigArgs {
    /// Directory of manifests (AddressPool, RoutingPolicy) [default: the cluster's, through
    /// the kubeconfig]
    #[arg(long)]
    config: Option<PathBuf>,
    /// The router's daemon: frr, or bird (BIRD 2).
    #[arg(long, value_parser = daemon_kind())]
    daemon: DaemonKind,
    /// The router's AS: with --peer-group, the output applies the filter and limit in
    /// `router bgp <AS>` (FRR).
    #[arg(long, requires = "peer_group")]
    router_as: Option<u32>,
    /// The router's peer-group (or neighbor) of the nodes.
    #[arg(long, requires = "router_as")]
    peer_group: Option<String>,
    /// Headroom over the pools' sizes for the maximum-prefix limit, in percent.
    #[arg(long, default_value_t = 25)]
    headroom_percent: u32,
}

#[derive(Args)]
struct PlanArgs {
    /// Directory of manifests (AddressPool, RoutingPolicy, Service) to plan, offline or
    /// against this host's daemon. Without it, against the cluster: every node's plan for
    /// the revision its RoutingRollout rolls out (or holds paused).
    #[arg(long, requires = "daemon")]
    config: Option<PathBuf>,
    /// Which daemon's fragment (with --config).
    #[arg(long, value_parser = daemon_kind())]
    daemon: Option<DaemonKind>,
    /// This node's name, for node selectors (with --config).
    #[arg(long)]
    node: Option<String>,
    /// Directory of templates (with --config) [default: built in]
    #[arg(long)]
    templates: Option<PathBuf>,
    #[arg(long, default_value = "kube-lb0")]
    lb_interface: String,
    /// The base configuration (with --from) [default: frr.conf or bird.conf in --config]
    #[arg(long)]
    base: Option<PathBuf>,
    /// AS number assumed offline when there is no base configuration.
    #[arg(long, default_value_t = 64512)]
    assume_asn: u32,
    /// The RoutingRollout whose target revision the cluster's plan is for.
    #[arg(long, default_value = "default")]
    rollout: String,
    /// The manifests as they are now: plan offline, from their fragment to --config's, the
    /// base configuration (--base, or the directory's) standing for the rest of the daemon's.
    /// Without it, plan against the running daemon (its configuration, or BIRD's include).
    #[arg(long)]
    from: Option<PathBuf>,
    /// The templates of --from [default: --templates].
    #[arg(long)]
    from_templates: Option<PathBuf>,
    #[command(flatten)]
    daemon_args: DaemonArgs,
}

#[derive(Args)]
struct AllocatorArgs {
    /// The spec.loadBalancerClass served. Services of any other class are never touched.
    #[arg(long, default_value = DEFAULT_LB_CLASS)]
    lb_class: String,
    /// Ignore Services that have no spec.loadBalancerClass (by default they are served too).
    #[arg(long, default_value_t = false)]
    require_class: bool,
    /// Namespace of the leader-election Lease.
    #[arg(
        long,
        default_value = "routelb-system",
        env = "ROUTELB_LEADER_ELECTION_NAMESPACE"
    )]
    leader_election_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "routelb-allocator")]
    leader_election_lease: String,
    /// This replica's identity in the Lease [default: $POD_NAME, else hostname-pid].
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// How long the Lease is valid without renewal: a standby takes over after this.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    lease_duration: Duration,
    /// How often the leader renews the Lease (and a standby checks it).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    renew_period: Duration,
    /// Address for /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:9090")]
    metrics_addr: SocketAddr,
    /// Writes to the API server in flight at once.
    #[arg(long, default_value_t = 16)]
    write_concurrency: usize,
    /// Namespace of the agents' node Leases (read only: which agents are alive).
    #[arg(
        long,
        default_value = membership::DEFAULT_NAMESPACE,
        env = "ROUTELB_NODE_LEASE_NAMESPACE"
    )]
    node_lease_namespace: String,
    #[command(flatten)]
    rollout: RolloutArgs,
    /// The templates ConfigMap (in --rollout-namespace) the agents' templates come from: a
    /// revision then carries them, and an edit rolls out like a policy edit. Without it, each
    /// agent renders its own templates and their edits are not staged.
    #[arg(long)]
    templates_configmap: Option<String>,
}

/// `frr`, `bird` (BIRD 2) or `bird1` (BIRD 1.x: bird + bird6), listed in `--help` (the render
/// module knows nothing of clap).
fn daemon_kind() -> impl clap::builder::TypedValueParser<Value = DaemonKind> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(["frr", "bird", "bird1"]).map(|s| match s.as_str() {
        "frr" => DaemonKind::Frr,
        "bird1" => DaemonKind::Bird1,
        _ => DaemonKind::Bird,
    })
}

fn default_identity() -> String {
    let host =
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "routelb".into());
    format!("{}-{}", host.trim(), std::process::id())
}

/// Cancels the token on SIGTERM or SIGINT, so roles can withdraw and release what they hold.
fn cancel_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler installs");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("shutting down");
        t.cancel();
    });
    token
}

/// `kubectl routelb ...`: the binary, linked as `kubectl-routelb` on PATH.
#[derive(Parser)]
#[command(
    name = "kubectl-routelb",
    bin_name = "kubectl routelb",
    version,
    about = "Where routelb's Services are announced, by which nodes, to which peers, and what is wrong"
)]
struct PluginCli {
    #[command(flatten)]
    args: PluginArgs,
}

/// Whether this process was started as the kubectl plugin (`kubectl-routelb`, or a copy
/// named `kubectl-routelb-<something>`).
fn called_as_plugin() -> bool {
    std::env::args_os()
        .next()
        .map(PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .is_some_and(|n| n.starts_with("kubectl-routelb"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if called_as_plugin() {
        return plugin::run(PluginCli::parse().args).await;
    }
    let cli = Cli::parse();
    telemetry::init(cli.log_format, &cli.log_level);
    match cli.command {
        Command::Kubectl(args) => plugin::run(args).await,
        Command::Crds => {
            print!("{}", crdgen::multi_document());
            Ok(())
        }
        Command::Render(r) => {
            print!("{}", render_dir(&r)?.out.fragment);
            Ok(())
        }
        Command::Check(r) => check(r).await,
        Command::PeerConfig(a) => peer_config(a).await,
        Command::Standalone(a) => standalone(a).await,
        Command::Apply(a) => apply(a).await,
        Command::Plan(a) => plan(a).await,
        Command::Agent(a) => agent(a).await,
        Command::Allocator(a) => allocator(a).await,
    }
}

/// `routelb peer-config`: the pools and policies of a directory or the cluster, as every node
/// exports them (node selectors aside), turned into the router's side.
async fn peer_config(a: PeerConfigArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        a.daemon != DaemonKind::Bird1,
        "peer-config renders for an FRR or a BIRD 2 router (--daemon frr|bird)"
    );
    let (pools, policies) = match &a.config {
        Some(dir) => {
            let m = routelb::manifests::load_dir(dir)?;
            for w in &m.warnings {
                eprintln!("warning: {w}");
            }
            (m.pools, m.policies)
        }
        None => {
            let client = kube::Client::try_default()
                .await
                .context("no cluster to read (give --config DIR to read manifests instead)")?;
            let pools = kube::Api::<routelb::api::AddressPool>::all(client.clone());
            let policies = kube::Api::<routelb::api::RoutingPolicy>::all(client);
            let lp = kube::api::ListParams::default();
            (
                pools.list(&lp).await?.items,
                policies.list(&lp).await?.items,
            )
        }
    };
    let (filter, problems) = routelb::peer_config::from_manifests(&pools, &policies);
    for p in problems.iter().filter(|p| p.reason == "Invalid") {
        eprintln!("warning: {p}");
    }
    anyhow::ensure!(
        !filter.v4.is_empty() || !filter.v6.is_empty(),
        "no pool is exported through BGP by a valid RoutingPolicy: nothing to accept"
    );
    let router = routelb::peer_config::RouterSide {
        asn: a.router_as,
        peer_group: a.peer_group,
        headroom_percent: a.headroom_percent,
    };
    print!(
        "{}",
        routelb::peer_config::render(a.daemon, &filter, &router)
    );
    Ok(())
}

/// Renders, reports what the base would drop of it ([`routelb::analysis`]), then validates
/// with the daemon's own parser. Fails on invalid objects, on any finding that is an error, and
/// on a refusal by the parser.
async fn check(r: RenderArgs) -> anyhow::Result<()> {
    let rendered = render_dir(&r)?;
    anyhow::ensure!(
        rendered.invalid == 0,
        "check failed: {} invalid object(s) in {}, see the warnings above",
        rendered.invalid,
        r.source.config.display()
    );
    // The base's route-maps routelb inserts its permit entries into (RoutingPolicy
    // `spec.bgp.outboundRouteMaps` that the base has): they pass the pools' prefixes.
    let hooked = rendered
        .out
        .data
        .route_map_hooks
        .iter()
        .map(|h| h.route_map.clone())
        .collect();
    let findings = base_findings(&r, &rendered, &hooked);
    for f in &findings {
        eprintln!("{f}");
    }
    let base_dir = rendered
        .base
        .as_ref()
        .and_then(|(p, _)| p.parent())
        .map(|d| match d.as_os_str().is_empty() {
            true => std::path::Path::new("."),
            false => d,
        });
    let fragment = &rendered.out.fragment;
    let result = match (r.daemon, &rendered.base) {
        (DaemonKind::Frr, base) => {
            let full = format!(
                "{}\n{fragment}",
                base.as_ref().map(|(_, t)| t.as_str()).unwrap_or_default()
            );
            routelb::daemon::frr::FrrDriver::new(None, routelb::daemon::frr::FrrApply::Diff)
                .validate(&full)
                .await
        }
        (DaemonKind::Bird1, base) => {
            check_bird1(&r, base.as_ref().map(|(_, t)| t.clone()), fragment).await
        }
        (DaemonKind::Bird, Some((_, text))) if is_bird1(text) => {
            eprintln!(
                "note: the base is BIRD 1.x syntax; `bird -p` here is BIRD 2, so it was not run"
            );
            Ok(())
        }
        (DaemonKind::Bird, Some((_, text))) => {
            routelb::daemon::bird::BirdDriver::validate_with_base(text, base_dir, fragment).await
        }
        (DaemonKind::Bird, None) => anyhow::bail!(
            "checking a BIRD fragment needs the base bird.conf that includes it (--base)"
        ),
    };
    result.context("check failed")?;
    let errors = findings
        .iter()
        .filter(|f| f.severity == routelb::analysis::Severity::Error)
        .count();
    anyhow::ensure!(
        errors == 0,
        "check failed: the base configuration would drop routelb's prefixes ({errors} error(s) above)"
    );
    eprintln!(
        "ok: the {} fragment for {} is valid{}",
        r.daemon.name(),
        r.source.config.display(),
        match (&rendered.base, findings.is_empty()) {
            (None, _) => " (no base configuration to analyse)",
            (Some(_), true) => ", and the base passes routelb's prefixes",
            (Some(_), false) => "; see the warnings above",
        }
    );
    Ok(())
}

/// BIRD 1.x: bird.conf (the base) and the bird6.conf beside it, each with its half, parsed by
/// BIRD 1.x's `bird -p` / `bird6 -p` from $ROUTELB_BIRD1_SBIN (default /usr/sbin).
async fn check_bird1(
    r: &RenderArgs,
    base: Option<String>,
    fragment: &str,
) -> Result<(), routelb::daemon::DaemonError> {
    let missing = || {
        routelb::daemon::DaemonError::Invalid(
            "checking a BIRD 1.x fragment needs the base bird.conf and the bird6.conf beside it (--base)".into(),
        )
    };
    let base = base.ok_or_else(missing)?;
    let dir = r
        .base
        .as_ref()
        .and_then(|b| b.parent().map(std::path::Path::to_path_buf))
        .unwrap_or_else(|| r.source.config.clone());
    let base6 = std::fs::read_to_string(dir.join("bird6.conf")).map_err(|_| missing())?;
    let sbin = std::env::var_os("ROUTELB_BIRD1_SBIN").map_or("/usr/sbin".into(), PathBuf::from);
    routelb::daemon::bird::BirdDriver::validate_bird1(&base, &base6, fragment, &sbin).await
}

/// What the base configuration (if any) would drop of what was rendered.
fn base_findings(
    r: &RenderArgs,
    rendered: &Rendered,
    hooked: &std::collections::BTreeSet<String>,
) -> Vec<routelb::analysis::Finding> {
    let Some((path, text)) = &rendered.base else {
        return vec![];
    };
    let base = match r.daemon {
        DaemonKind::Frr => routelb::offline::Base::Frr(text.clone()),
        DaemonKind::Bird | DaemonKind::Bird1 => {
            routelb::offline::Base::Bird(routelb::offline::read_bird_base(path, text))
        }
    };
    routelb::offline::findings(&base, &rendered.out, &r.source.lb_interface, hooked)
}

fn is_bird1(text: &str) -> bool {
    let sources = routelb::analysis::bird::Sources {
        files: vec![("bird.conf".into(), Some(text.to_string()))],
    };
    routelb::analysis::bird::read(&sources).v1
}

async fn standalone(a: StandaloneArgs) -> anyhow::Result<()> {
    routelb::render::model::validate_interface_name(&a.source.lb_interface)
        .map_err(anyhow::Error::msg)?;
    let opts = routelb::standalone::Options {
        state: a
            .state
            .clone()
            .unwrap_or_else(|| a.source.config.join(".routelb-state.json")),
        config: a.source.config,
        daemon: a.daemon,
        driver: a.daemon_args.driver(a.daemon),
        templates: a.source.templates,
        lb_interface: a.source.lb_interface,
        node: a.source.node,
        resync: a.resync,
        drift_probe: a.drift_probe,
    };
    if a.dry_run {
        let d = routelb::standalone::dry_run(&opts)?;
        match a.output {
            OutputFormat::Text => print!("{}", d.text()),
            OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&d)?),
        }
        return Ok(());
    }
    routelb::standalone::run(opts, a.once, cancel_on_signal()).await
}

/// Renders against the running daemon's instances and applies once.
/// Renders a directory's manifests for the running daemon (its routing instances read from it).
async fn render_for_daemon(
    source: &SourceArgs,
    daemon: DaemonKind,
    driver: &routelb::daemon::Driver,
) -> anyhow::Result<routelb::offline::Offline> {
    let (manifests, templates) = source.manifests_and_templates(daemon)?;
    let instances = driver
        .instances()
        .await
        .context("reading the daemon's routing instances")?;
    let out = routelb::offline::render(
        &manifests,
        &templates,
        source.node.as_deref(),
        &source.lb_interface,
        &instances,
    )?;
    for p in &out.problems {
        tracing::warn!("{p}");
    }
    Ok(out)
}

/// `routelb plan`: offline from --from's fragment, against the running daemon, or (without
/// --config) the cluster's nodes' plans for their rollout's target revision.
async fn plan(a: PlanArgs) -> anyhow::Result<()> {
    let render = a
        .config
        .clone()
        .zip(a.daemon)
        .map(|(config, daemon)| RenderArgs {
            source: SourceArgs {
                config,
                node: a.node.clone(),
                templates: a.templates.clone(),
                lb_interface: a.lb_interface.clone(),
            },
            daemon,
            base: a.base.clone(),
            assume_asn: a.assume_asn,
        });
    let Some(render) = &render else {
        let client = kube::Client::try_default()
            .await
            .context("connecting to the Kubernetes API")?;
        print!(
            "{}",
            routelb::impact::cluster::plan(client, &a.rollout).await?
        );
        return Ok(());
    };
    let steps = match &a.from {
        Some(from) => {
            let new = render_dir(render)?;
            let mut old_args = render.clone();
            old_args.source.config = from.clone();
            old_args.source.templates = a.from_templates.clone().or(old_args.source.templates);
            old_args.base = new.base.as_ref().map(|(path, _)| path.clone());
            let old = render_dir(&old_args)?;
            let base = new.base.as_ref().map_or("", |(_, text)| text.as_str());
            match render.daemon {
                DaemonKind::Frr => routelb::impact::frr::plan(
                    &format!("{base}\n{}", old.out.fragment),
                    &new.out.fragment,
                ),
                DaemonKind::Bird => {
                    routelb::impact::bird::plan(base, &old.out.fragment, &new.out.fragment)
                }
                // BIRD 1.x: `bird` and `bird6` each get their half.
                DaemonKind::Bird1 => {
                    let (old4, old6) = routelb::render::split_bird1(&old.out.fragment);
                    let (new4, new6) = routelb::render::split_bird1(&new.out.fragment);
                    let mut steps = routelb::impact::bird::plan(base, old4, new4);
                    steps.extend(routelb::impact::bird::plan(base, old6, new6));
                    steps
                }
            }
        }
        None => {
            let driver = a.daemon_args.driver(render.daemon);
            let new = render_for_daemon(&render.source, render.daemon, &driver).await?;
            routelb::impact::live::plan(&driver, &new.fragment)
                .await
                .context("reading the daemon")?
        }
    };
    print!("{}", routelb::impact::text(&steps));
    Ok(())
}

async fn apply(a: ApplyArgs) -> anyhow::Result<()> {
    let driver = a.daemon_args.driver(a.daemon);
    let out = render_for_daemon(&a.source, a.daemon, &driver).await?;
    let outcome = driver
        .apply(&out.fragment)
        .await
        .context("applying the fragment")?;
    eprintln!(
        "{}: {} line(s) in {:.1} ms",
        if outcome.changed {
            "applied"
        } else {
            "unchanged"
        },
        outcome.commands,
        outcome.elapsed.as_secs_f64() * 1e3
    );
    Ok(())
}

/// A client of the API server named `component` in its User-Agent
/// (`routelb-agent/0.1.0`), so that audit logs and API Priority and Fairness tell each
/// component's requests apart (kube-rs sends none of its own).
async fn api_client(component: &str) -> anyhow::Result<kube::Client> {
    let mut config = kube::Config::infer()
        .await
        .context("connecting to the Kubernetes API")?;
    let agent = format!("{component}/{}", env!("CARGO_PKG_VERSION"));
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_str(&agent).context("a User-Agent")?,
    ));
    kube::Client::try_from(config).context("connecting to the Kubernetes API")
}

async fn agent(a: AgentArgs) -> anyhow::Result<()> {
    routelb::render::model::validate_interface_name(&a.lb_interface).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        a.renew_period < a.lease_duration,
        "--renew-period must be shorter than --lease-duration"
    );
    anyhow::ensure!(
        a.address_lifetime >= Duration::from_secs(3),
        "--address-lifetime must be at least 3s"
    );
    let client = api_client("routelb-agent").await?;
    let metrics = Arc::new(routelb::metrics::AgentMetrics::new());
    let health = Arc::new(Health::default());
    let cancel = cancel_on_signal();
    let server = tokio::spawn(routelb::metrics::serve(
        a.metrics_addr,
        metrics.clone(),
        health.clone(),
    ));
    let cfg = routelb::agent::Config {
        node: a.node_name,
        class: a.lb_class,
        require_class: a.require_class,
        lease_namespace: a.lease_namespace,
        lease_duration: a.lease_duration,
        renew_period: a.renew_period,
        address_lifetime: a.address_lifetime,
        lb_interface: a.lb_interface,
        driver: a.daemon_args.driver(a.daemon),
        daemon: a.daemon,
        templates: a.templates,
        resync: a.resync,
        drift_probe: a.drift_probe,
        kube_proxy_grace: a.kube_proxy_grace,
        drain: routelb::agent::DrainConfig {
            time: a.drain_time,
            taints: a.drain_taints,
            attributes: routelb::render::drain::DrainAttributes {
                local_preference: a.drain_local_preference,
                med: a.drain_med,
                prepend: a.drain_prepend,
            },
        },
        rollout: a.rollout.follow(),
    };
    tokio::select! {
        r = routelb::agent::run(client, cfg, metrics, health, cancel) => r,
        r = server => r.context("metrics server")?.context("metrics server"),
    }
}

async fn allocator(a: AllocatorArgs) -> anyhow::Result<()> {
    let client = api_client("routelb-allocator").await?;
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::default());
    let cancel = cancel_on_signal();
    let server = tokio::spawn(routelb::metrics::serve(
        a.metrics_addr,
        metrics.clone(),
        health.clone(),
    ));
    let cfg = allocator::Config {
        class: a.lb_class,
        require_class: a.require_class,
        lease: LeaseConfig {
            namespace: a.leader_election_namespace,
            name: a.leader_election_lease,
            identity: a.identity.unwrap_or_else(default_identity),
            lease_duration: a.lease_duration,
            renew_period: a.renew_period,
        },
        write_concurrency: a.write_concurrency,
        node_lease_namespace: a.node_lease_namespace,
        rollout: a.rollout.follow(),
        templates_configmap: a.templates_configmap,
    };
    tokio::select! {
        r = allocator::run(client, cfg, metrics, health, cancel) => r,
        r = server => r.context("metrics server")?.context("metrics server"),
    }
}

/// What [`render_dir`] rendered.
struct Rendered {
    /// The base configuration's path and text, if there is one.
    base: Option<(PathBuf, String)>,
    out: routelb::offline::Offline,
    /// How many pools and policies are invalid.
    invalid: usize,
}

/// Renders the directory's manifests against the base configuration (if any). Problems
/// (invalid pools and policies, missing instances, services without addresses) go to stderr.
fn render_dir(r: &RenderArgs) -> anyhow::Result<Rendered> {
    let (manifests, templates) = r.source.manifests_and_templates(r.daemon)?;
    let base = match &r.base {
        Some(p) => Some((
            p.clone(),
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        )),
        None => routelb::offline::base_in_dir(&r.source.config, r.daemon),
    };
    let instances = match &base {
        Some((_, text)) => routelb::offline::instances_from_base(r.daemon, text),
        None => {
            eprintln!(
                "note: no base configuration; assuming every routing instance exists (BGP AS {})",
                r.assume_asn
            );
            routelb::offline::assume_all_instances(r.assume_asn)
        }
    };
    let out = routelb::offline::render(
        &manifests,
        &templates,
        r.source.node.as_deref(),
        &r.source.lb_interface,
        &instances,
    )?;
    for w in manifests
        .warnings
        .iter()
        .chain(&out.invalid_pools)
        .chain(&out.notes)
    {
        eprintln!("warning: {w}");
    }
    for p in &out.problems {
        eprintln!("warning: {p}");
    }
    let invalid = out.invalid_pools.len()
        + out
            .problems
            .iter()
            .filter(|p| p.reason == "Invalid")
            .count();
    Ok(Rendered { base, out, invalid })
}
