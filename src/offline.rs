//! The pipeline without a cluster: manifests from a directory → IPAM → data contract →
//! fragment. Used by `routelb render`, `routelb check` and the golden-file tests.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use kube::ResourceExt;

use crate::analysis::{self, Finding, bird};
use crate::api::DEFAULT_LB_CLASS;
use crate::attributes;
use crate::daemon::{bird_config, frr_config};
use crate::ipam::{self, Pool, PoolInput, ServiceRequest};
use crate::manifests::Manifests;
use crate::render::attributes::Judge;
use crate::render::model::{BgpInstance, Instances, Problem, RenderInput};
use crate::render::{DaemonKind, FragmentData, Templates, build};
use crate::service::ServiceAddresses;

/// Instances found in a base configuration file, for rendering without a running daemon.
/// BIRD: protocols that take `local as` from a template count too.
pub fn instances_from_base(daemon: DaemonKind, text: &str) -> Instances {
    match daemon {
        DaemonKind::Frr => frr_config::instances(&frr_config::parse(text)),
        DaemonKind::Bird => bird_config::instances_from_config(text),
        DaemonKind::Bird1 => bird_config::instances_in(text, bird_config::Dialect::Bird1V4),
    }
}

/// Every instance, for rendering with no base configuration at hand.
pub fn assume_all_instances(asn: u32) -> Instances {
    Instances {
        bgp: vec![BgpInstance { asn, vrf: None }],
        ospf: true,
        ospf6: true,
        isis: vec!["routelb".into()],
        rip: true,
        ripng: true,
        ..Instances::default()
    }
}

/// Runs IPAM over the manifests' pools and services, as the allocator would.
pub fn assignments(m: &Manifests) -> Vec<ServiceAddresses> {
    assignments_with(m, &Held::new()).assigned
}

/// What IPAM decided for a directory of manifests.
#[derive(Clone, Debug, Default)]
pub struct Assigned {
    pub assigned: Vec<ServiceAddresses>,
    /// What IPAM read of each assigned Service, in the same order.
    pub requests: Vec<ServiceRequest>,
    /// Why services got no address, and what is worth knowing although they did, as
    /// `namespace/name: message`.
    pub notes: Vec<String>,
    /// `AddressPool NAME is invalid: why`, for every pool that does not parse.
    pub invalid_pools: Vec<String>,
}

/// What services held before (standalone mode's state file), by `namespace/name`.
pub type Held = BTreeMap<String, HeldAddresses>;

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeldAddresses {
    pub pool: String,
    pub addresses: Vec<std::net::IpAddr>,
}

/// IPAM with what services held before, so nothing is renumbered.
pub fn assignments_with(m: &Manifests, held: &Held) -> Assigned {
    let pools: Vec<PoolInput> = m
        .pools
        .iter()
        .map(|p| (p.name_any(), Pool::from_spec(&p.name_any(), &p.spec)))
        .collect();
    let ns_labels: BTreeMap<String, BTreeMap<String, String>> = m
        .namespaces
        .iter()
        .map(|n| (n.name_any(), n.labels().clone()))
        .collect();
    let empty = BTreeMap::new();
    let served: Vec<_> = m
        .services
        .iter()
        .filter(|s| ipam::serves(s, DEFAULT_LB_CLASS, false))
        .collect();
    let requests: Vec<ServiceRequest> = served
        .iter()
        .map(|s| {
            let ns = s.namespace().unwrap_or_default();
            let mut r = ServiceRequest::from_service(s, ns_labels.get(&ns).unwrap_or(&empty));
            if let Some(h) = held.get(&r.key.to_string())
                && r.current.is_empty()
            {
                r.current = h.addresses.clone();
                r.current_pool = Some(h.pool.clone());
            }
            r
        })
        .collect();
    let outcome = ipam::allocate(&pools, &requests);
    let invalid_pools: Vec<String> = outcome
        .pools
        .iter()
        .filter_map(|(name, report)| {
            let why = report.invalid.as_ref()?;
            Some(format!("AddressPool {name} is invalid: {why}"))
        })
        .collect();
    let mut notes = Vec::new();
    for (k, d) in &outcome.services {
        match d {
            ipam::Decision::Failed(e) => notes.push(format!("{k}: {e}")),
            ipam::Decision::Assigned(a) => {
                notes.extend(a.warnings.iter().map(|w| format!("{k}: {w}")))
            }
        }
    }
    let (assigned, requests): (Vec<ServiceAddresses>, Vec<ServiceRequest>) = served
        .iter()
        .zip(requests)
        .filter_map(|(svc, req)| {
            let a = outcome.services.get(&req.key)?.assignment()?;
            let addresses = ServiceAddresses {
                key: req.key.clone(),
                pool: a.pool.clone(),
                addresses: a.addresses.clone(),
                attributes: attributes::Request::of(svc, &req),
                admitted: a.admitted,
            };
            Some((addresses, req))
        })
        .unzip();
    let judge = Judge::new(&m.pools, &m.policies);
    for s in &assigned {
        let refused = judge.refusals(&s.attributes, &s.pool, s.admitted);
        notes.extend(refused.iter().map(|r| format!("{}: {r}", s.key)));
    }
    Assigned {
        assigned,
        requests,
        notes,
        invalid_pools,
    }
}

pub struct Offline {
    pub data: FragmentData,
    pub fragment: String,
    pub problems: Vec<Problem>,
    /// From IPAM (see [`Assigned`]); empty from [`render_assigned`].
    pub invalid_pools: Vec<String>,
    pub notes: Vec<String>,
    /// The addresses of the Services rendered.
    pub addresses: Vec<IpAddr>,
}

/// Renders a directory's manifests; `problems` also name invalid pools and why services have
/// no address, so a bad entry is reported even before any Service uses it.
pub fn render(
    m: &Manifests,
    templates: &Templates,
    node: Option<&str>,
    lb_interface: &str,
    instances: &Instances,
) -> Result<Offline, crate::render::TemplateError> {
    let assigned = assignments_with(m, &Held::new());
    let mut out = render_assigned(
        m,
        Decided {
            pools: &m.pools,
            policies: &m.policies,
            services: &assigned.assigned,
        },
        templates,
        node,
        lb_interface,
        instances,
    )?;
    out.invalid_pools = assigned.invalid_pools;
    out.notes = assigned.notes;
    Ok(out)
}

/// What to render from: pools and policies (the manifests' own, or with last valid
/// definitions in place of broken ones) and Services with their addresses decided.
pub struct Decided<'a> {
    pub pools: &'a [crate::api::AddressPool],
    pub policies: &'a [crate::api::RoutingPolicy],
    pub services: &'a [ServiceAddresses],
}

/// Renders what was decided.
pub fn render_assigned(
    m: &Manifests,
    Decided {
        pools,
        policies,
        services,
    }: Decided,
    templates: &Templates,
    node: Option<&str>,
    lb_interface: &str,
    instances: &Instances,
) -> Result<Offline, crate::render::TemplateError> {
    let node_labels = node
        .and_then(|n| m.nodes.iter().find(|x| x.name_any() == n))
        .map(|x| x.labels().clone())
        .unwrap_or_default();
    let built = build(&RenderInput {
        local_endpoints: &Default::default(),
        node,
        node_labels: &node_labels,
        lb_interface,
        pools,
        policies,
        services,
        instances,
    });
    let fragment = templates.render(&built.data)?;
    Ok(Offline {
        data: built.data,
        fragment,
        problems: built.problems,
        invalid_pools: vec![],
        notes: vec![],
        addresses: services
            .iter()
            .flat_map(|s| s.addresses.iter().copied())
            .collect(),
    })
}

/// The base configuration shipped beside manifests: `frr.conf` or `bird.conf` in the directory.
pub fn base_in_dir(dir: &Path, daemon: DaemonKind) -> Option<(std::path::PathBuf, String)> {
    let path = dir.join(match daemon {
        DaemonKind::Frr => "frr.conf",
        DaemonKind::Bird | DaemonKind::Bird1 => "bird.conf",
    });
    std::fs::read_to_string(&path).ok().map(|t| (path, t))
}

/// A base configuration as `check` reads it: FRR's text, or BIRD's files (each main file with
/// the files it includes, and the family a BIRD 1.x file carries).
pub enum Base {
    Frr(String),
    Bird(Vec<(bird::Sources, analysis::Family)>),
}

/// What the base would drop of what `out` exports (see [`crate::analysis`]). `hooked`: the
/// base's route-maps routelb inserts its permit entries into (they permit its prefixes).
pub fn findings(
    base: &Base,
    out: &Offline,
    lb_interface: &str,
    hooked: &BTreeSet<String>,
) -> Vec<Finding> {
    let exports = analysis::exports(&out.data, &out.addresses);
    match base {
        Base::Frr(text) => analysis::frr::check(&analysis::frr::parse_base(text), &exports, hooked),
        Base::Bird(files) => {
            let v1 = files.iter().any(|(s, _)| bird::read(s).v1);
            let mut out: Vec<Finding> = files
                .iter()
                .enumerate()
                // BIRD 2 carries both families in one file: only the first is read.
                .filter(|(i, _)| v1 || *i == 0)
                .flat_map(|(_, (s, family))| bird::check(s, &exports, *family, lb_interface))
                .collect();
            for family in analysis::Family::BOTH {
                let exported = exports.iter().any(|e| !e.prefixes(family).is_empty());
                if v1 && exported && !files.iter().any(|(_, f)| *f == family) {
                    out.push(Finding::warning(
                        "BIRD 1.x",
                        format!(
                            "{} routes are another daemon's (bird / bird6) and its configuration was not found beside the base: routelb's {} prefixes were not checked",
                            family.name(),
                            family.name()
                        ),
                    ));
                }
            }
            out
        }
    }
}

/// Reads a BIRD base and the files it includes (relative paths from the including file's
/// directory, as BIRD resolves them; routelb's own include is not read), and, beside a
/// `bird.conf` (Calico: `bird.cfg`), BIRD 1.x's `bird6.conf` (`bird6.cfg`).
pub fn read_bird_base(path: &Path, text: &str) -> Vec<(bird::Sources, analysis::Family)> {
    let mut out = vec![(bird_sources(path, text), family_of_file(path))];
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if let Some(ext) = name.strip_prefix("bird.") {
        let six = path.with_file_name(format!("bird6.{ext}"));
        if let Ok(t) = std::fs::read_to_string(&six) {
            out.push((bird_sources(&six, &t), analysis::Family::V6));
        }
    }
    out
}

fn family_of_file(path: &Path) -> analysis::Family {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    match name.contains('6') {
        true => analysis::Family::V6,
        false => analysis::Family::V4,
    }
}

fn bird_sources(path: &Path, text: &str) -> bird::Sources {
    let mut files = vec![(path.display().to_string(), Some(text.to_string()))];
    let mut queue: Vec<(PathBuf, String)> = vec![(path.to_path_buf(), text.to_string())];
    while let Some((from, text)) = queue.pop() {
        for inc in bird::includes(&text) {
            if bird::is_routelb_include(&inc) || files.len() > 64 {
                continue;
            }
            let p = from.parent().unwrap_or(Path::new(".")).join(&inc);
            let shown = p.display().to_string();
            if files.iter().any(|(f, _)| *f == shown) {
                continue;
            }
            let read = std::fs::read_to_string(&p).ok();
            if let Some(t) = &read {
                queue.push((p.clone(), t.clone()));
            }
            files.push((shown, read));
        }
    }
    files
        .iter_mut()
        .for_each(|(f, _)| *f = f.rsplit('/').next().unwrap_or(f).to_string());
    bird::Sources { files }
}
