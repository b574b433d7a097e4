//! `routelb plan` against a cluster (shell): each node's agent plans the revision its
//! rollout rolls out before it gets it (`NodeState.status.pendingRevision`); this reads them.

use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};

use crate::api::{NodeState, RoutingRollout};

/// The rollout's state and every node's plan, as text.
pub async fn plan(client: Client, rollout: &str) -> anyhow::Result<String> {
    let rollouts: Api<RoutingRollout> = Api::all(client.clone());
    let Some(r) = rollouts.get_opt(rollout).await? else {
        anyhow::bail!(
            "no RoutingRollout {rollout}: without one, every node renders an edit at once and \
             nothing is planned ahead (plan offline with --config and --from)"
        );
    };
    let status = r.status.unwrap_or_default();
    let Some(target) = status.target_revision.clone() else {
        return Ok(format!(
            "rollout {rollout}: {} on {}; nothing to roll out\n",
            status.phase.as_deref().unwrap_or("no status yet"),
            status.stable_revision.as_deref().unwrap_or("no revision")
        ));
    };
    let mut out = format!(
        "rollout {rollout}: {} {target} (stable {}), {} nodes updated{}\n",
        status.phase.as_deref().unwrap_or_default(),
        status.stable_revision.as_deref().unwrap_or_default(),
        status.updated.as_deref().unwrap_or_default(),
        status
            .message
            .as_ref()
            .map(|m| format!(": {m}"))
            .unwrap_or_default()
    );
    let states: Api<NodeState> = Api::all(client);
    let mut nodes = states.list(&ListParams::default()).await?.items;
    nodes.sort_by_key(|n| n.name_any());
    for n in nodes {
        let name = n.name_any();
        let st = n.status.unwrap_or_default();
        let rendering = st.revision.as_ref().map(|r| r.name.as_str());
        match st.pending_revision.filter(|p| p.name == target) {
            _ if rendering == Some(target.as_str()) => {
                out.push_str(&format!("\nnode {name}: has {target}\n"));
            }
            None => out.push_str(&format!("\nnode {name}: no plan for {target} yet\n")),
            Some(p) => {
                out.push_str(&format!("\nnode {name}: {}\n", p.summary));
                if let Some(e) = &p.error {
                    out.push_str(&format!("  could not plan: {e}\n"));
                }
                for s in &p.steps {
                    out.push_str(&format!("  {}\n", s.object));
                    for l in &s.lines {
                        out.push_str(&format!("      {l}\n"));
                    }
                    if s.more_lines > 0 {
                        out.push_str(&format!("      … {} more line(s)\n", s.more_lines));
                    }
                    for e in &s.effects {
                        out.push_str(&format!("    → {e}\n"));
                    }
                }
            }
        }
    }
    Ok(out)
}
