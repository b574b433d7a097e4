//! `--dry-run`: what a pass would do, touching nothing.

use serde::Serialize;

use super::{Options, allocate, render, state, templates};
use crate::manifests;
use crate::offline;
use crate::plan;

/// What `--dry-run` shows.
#[derive(Serialize)]
pub struct DryRun {
    /// Which Service gets which addresses, from which pool.
    pub services: Vec<DryRunService>,
    /// Interface → addresses this node would hold (`address/length`).
    pub interfaces: std::collections::BTreeMap<String, Vec<String>>,
    pub notes: Vec<String>,
    pub daemon: &'static str,
    pub fragment: String,
}

#[derive(Serialize)]
pub struct DryRunService {
    pub service: String,
    pub pool: String,
    pub addresses: Vec<std::net::IpAddr>,
}

/// Computes what a pass would do, touching nothing; needs no root.
pub fn dry_run(opts: &Options) -> anyhow::Result<DryRun> {
    let m = manifests::load_dir(&opts.config)?;
    let instances = match offline::base_in_dir(&opts.config, opts.daemon) {
        Some((_, text)) => offline::instances_from_base(opts.daemon, &text),
        None => offline::assume_all_instances(64512),
    };
    let a = allocate(&m, &state::load(&opts.state)?);
    let planned = plan::plan(&a.assigned, &a.pools, &opts.lb_interface, &[]);
    let rendered = render(
        &m,
        &a,
        &templates(opts)?,
        opts.node.as_deref(),
        &opts.lb_interface,
        &instances,
    )?;
    let mut notes = m.warnings.clone();
    notes.extend(a.notes.iter().cloned());
    notes.extend(planned.unplaced.iter().cloned());
    notes.extend(rendered.problems.iter().map(ToString::to_string));
    Ok(DryRun {
        services: a
            .assigned
            .iter()
            .map(|s| DryRunService {
                service: s.key.to_string(),
                pool: s.pool.clone(),
                addresses: s.addresses.clone(),
            })
            .collect(),
        interfaces: planned
            .interfaces
            .iter()
            .map(|(i, addrs)| {
                (
                    i.clone(),
                    addrs
                        .iter()
                        .map(|(ip, len)| format!("{ip}/{len}"))
                        .collect(),
                )
            })
            .collect(),
        notes,
        daemon: opts.daemon.name(),
        fragment: rendered.fragment,
    })
}

impl DryRun {
    /// The plain-text form: one section per question a user asks before running it.
    pub fn text(&self) -> String {
        let mut out = String::from("# services\n");
        for s in &self.services {
            let addrs: Vec<String> = s.addresses.iter().map(ToString::to_string).collect();
            out.push_str(&format!(
                "{}\t{}\tpool {}\n",
                s.service,
                addrs.join(","),
                s.pool
            ));
        }
        out.push_str("\n# addresses this node would hold\n");
        for (iface, addrs) in &self.interfaces {
            for a in addrs {
                out.push_str(&format!("{iface}\t{a}\n"));
            }
        }
        for n in &self.notes {
            out.push_str(&format!("# note: {n}\n"));
        }
        out.push_str(&format!("\n# {} fragment\n{}", self.daemon, self.fragment));
        out
    }
}
