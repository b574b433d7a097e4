//! The RBAC of `deploy/base`, on the test API server (real RBAC authorization): creates the
//! Roles, ClusterRoles and bindings of `rbac-agent.yaml` and `rbac-allocator.yaml` (under
//! names of this run's own), then acts as each ServiceAccount by impersonation and checks what
//! it may write.
//!
//! What matters (issue "agents can write every Lease in routelb-system"): an agent, which runs
//! on every node, must not reach the allocator's leader Lease or anything else in
//! `routelb-system`; its Lease rights are in `routelb-node-lease` only. The allocator reads
//! node Leases and never writes them. Writes that must be refused are sent as dry runs, so that
//! manifests that wrongly allow them change nothing on the shared API server.
//!
//! Per-node scoping (an agent writes only its own node's Lease and NodeState) is beyond RBAC:
//! `deploy/optional/node-bound-writes` (a ValidatingAdmissionPolicy, Kubernetes 1.30+) does it,
//! and the test API server (v1.20) cannot run it.

mod support {
    pub mod api;
    pub mod files;
    pub mod lock;
    pub mod wait;
}

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Node};
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
    PostParams,
};
use kube::{Api, Client};
use routelb::api::NodeState;
use routelb::api::RoutingRollout;
use routelb::election::Member;
use routelb::membership;
use serde::Deserialize;
use serde_json::{Value, json};
use support::files::root;
use support::{api, lock, wait};

const SYSTEM: &str = "routelb-system";
const LEADER_LEASE: &str = "routelb-allocator";
const AGENT: &str = "system:serviceaccount:routelb-system:routelb-agent";
const ALLOCATOR: &str = "system:serviceaccount:routelb-system:routelb-allocator";
/// Set on every RBAC object this test creates, with the run's suffix as value.
const TEST_LABEL: &str = "routelb-test-rbac";

/// Every document of a multi-document YAML file, as JSON.
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .filter(|v| !v.is_null())
        .collect()
}

/// The namespaces and RBAC objects of deploy/base, as kustomize renders them (the base and the
/// overlays set no `namespace:`, see [`no_kustomization_moves_objects_between_namespaces`]).
fn base_rbac() -> Vec<Value> {
    ["namespace.yaml", "rbac-allocator.yaml", "rbac-agent.yaml"]
        .iter()
        .flat_map(|f| documents(&root().join("deploy/base").join(f)))
        .collect()
}

fn kind(v: &Value) -> &str {
    v["kind"].as_str().unwrap_or_default()
}

fn is_rbac(v: &Value) -> bool {
    matches!(
        kind(v),
        "ClusterRole" | "ClusterRoleBinding" | "Role" | "RoleBinding"
    )
}

fn api_for(client: &Client, v: &Value) -> Api<DynamicObject> {
    let (group, version) = match v["apiVersion"].as_str().unwrap().split_once('/') {
        Some((g, ver)) => (g.to_string(), ver.to_string()),
        None => (String::new(), v["apiVersion"].as_str().unwrap().to_string()),
    };
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(&group, &version, kind(v)));
    match v["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

/// A client that acts as `user`, with the groups a ServiceAccount's token carries.
async fn impersonating(user: &str) -> Client {
    let mut cfg = kube::Config::infer().await.expect("kubeconfig loads");
    cfg.auth_info.impersonate = Some(user.into());
    cfg.auth_info.impersonate_groups = Some(vec![
        "system:serviceaccounts".into(),
        format!("system:serviceaccounts:{SYSTEM}"),
        "system:authenticated".into(),
    ]);
    Client::try_from(cfg).expect("impersonating client")
}

/// Deletes RBAC objects that earlier runs of this test left behind (a run that crashed before
/// its cleanup). Only those older than a few minutes: a concurrent run keeps its own.
async fn remove_stale_rbac(admin: &Client, suffix: &str) {
    let rbac = |kind: &str| {
        ApiResource::from_gvk(&GroupVersionKind::gvk(
            "rbac.authorization.k8s.io",
            "v1",
            kind,
        ))
    };
    let now = SystemTime::now();
    for kind in ["ClusterRoleBinding", "ClusterRole", "RoleBinding", "Role"] {
        let api: Api<DynamicObject> = Api::all_with(admin.clone(), &rbac(kind));
        let Ok(list) = api.list(&ListParams::default().labels(TEST_LABEL)).await else {
            continue;
        };
        for o in list.items {
            let theirs = o.metadata.labels.as_ref().and_then(|l| l.get(TEST_LABEL));
            let created = o.metadata.creation_timestamp.as_ref().map(|t| t.0);
            let old = created.is_some_and(|t| {
                now.duration_since(SystemTime::from(t)).unwrap_or_default()
                    > Duration::from_secs(600)
            });
            if theirs.map(String::as_str) == Some(suffix) || !old {
                continue;
            }
            let ns = o.metadata.namespace.clone();
            let name = o.metadata.name.clone().unwrap_or_default();
            let api: Api<DynamicObject> = match ns {
                Some(ns) => Api::namespaced_with(admin.clone(), &ns, &rbac(kind)),
                None => Api::all_with(admin.clone(), &rbac(kind)),
            };
            let _ = api.delete(&name, &DeleteParams::default()).await;
        }
    }
}

/// Bindings for the routelb ServiceAccounts that this test did not create (a real install on
/// the test API server, say): they add rights, and explain unexpected results.
async fn foreign_bindings(admin: &Client) -> Vec<String> {
    let mut found = Vec::new();
    for kind in ["ClusterRoleBinding", "RoleBinding"] {
        let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(
            "rbac.authorization.k8s.io",
            "v1",
            kind,
        ));
        let api: Api<DynamicObject> = Api::all_with(admin.clone(), &ar);
        let Ok(list) = api.list(&ListParams::default()).await else {
            continue;
        };
        for b in list.items {
            if b.metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(TEST_LABEL))
            {
                continue;
            }
            let subjects = b.data["subjects"].as_array().cloned().unwrap_or_default();
            let ours = subjects.iter().any(|s| {
                s["kind"] == "ServiceAccount"
                    && s["namespace"] == SYSTEM
                    && (s["name"] == "routelb-agent" || s["name"] == "routelb-allocator")
            });
            if ours {
                found.push(format!(
                    "{kind} {}/{}",
                    b.metadata.namespace.as_deref().unwrap_or("-"),
                    b.metadata.name.as_deref().unwrap_or_default()
                ));
            }
        }
    }
    found
}

/// Waits until the API server's authorizer applies `binding` (RBAC caches lag behind writes):
/// until a SubjectAccessReview for its subject, on its role's first rule, is allowed.
async fn wait_effective(admin: &Client, binding: &Value, docs: &[Value]) {
    let role_ref = &binding["roleRef"];
    let role = docs
        .iter()
        .find(|d| {
            kind(d) == role_ref["kind"]
                && d["metadata"]["name"] == role_ref["name"]
                && (kind(d) == "ClusterRole"
                    || d["metadata"]["namespace"] == binding["metadata"]["namespace"])
        })
        .unwrap_or_else(|| panic!("no role for binding {binding}"));
    let rule = &role["rules"][0];
    let (resource, sub) = match rule["resources"][0].as_str().unwrap().split_once('/') {
        Some((r, s)) => (r.to_string(), s.to_string()),
        None => (
            rule["resources"][0].as_str().unwrap().to_string(),
            String::new(),
        ),
    };
    let subject = &binding["subjects"][0];
    let user = format!(
        "system:serviceaccount:{}:{}",
        subject["namespace"].as_str().unwrap(),
        subject["name"].as_str().unwrap()
    );
    let sar: SubjectAccessReview = serde_json::from_value(json!({
        "spec": {
            "user": user,
            "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{SYSTEM}"), "system:authenticated"],
            "resourceAttributes": {
                "namespace": binding["metadata"]["namespace"].as_str().unwrap_or(""),
                "group": rule["apiGroups"][0],
                "resource": resource,
                "subresource": sub,
                "verb": rule["verbs"][0],
                "name": rule["resourceNames"][0].as_str().unwrap_or(""),
            },
        }
    }))
    .unwrap();
    let api: Api<SubjectAccessReview> = Api::all(admin.clone());
    wait::up_to(Duration::from_secs(20))
        .until(|| async {
            let r = api.create(&PostParams::default(), &sar).await.ok()?;
            r.status?.allowed.then_some(())
        })
        .await
        .unwrap_or_else(|| panic!("binding {} never took effect", binding["metadata"]["name"]));
}

/// Results of the checks, as failures to report all at once.
#[derive(Default)]
struct Checks {
    failures: Vec<String>,
    done: usize,
}

/// An error in one line: the API server's message rather than the whole Status.
fn brief(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} {}: {}", s.code, s.reason, s.message),
        e => e.to_string(),
    }
}

/// A routing revision, as the allocator writes them.
fn revision(suffix: &str) -> ControllerRevision {
    serde_json::from_value(json!({
        "metadata": { "name": format!("rbac-{suffix}"), "labels": { "routelb.io/routing-rollout": "rbac" } },
        "data": { "policies": {} },
        "revision": 1,
    }))
    .unwrap()
}

impl Checks {
    fn allowed<T>(&mut self, what: &str, r: Result<T, kube::Error>) {
        self.done += 1;
        if let Err(e) = r {
            self.failures
                .push(format!("{what}: must be allowed, got {}", brief(&e)));
        }
    }

    fn forbidden<T>(&mut self, what: &str, r: Result<T, kube::Error>) {
        self.done += 1;
        match r {
            Err(kube::Error::Api(s)) if s.is_forbidden() => {}
            Err(e) => self.failures.push(format!(
                "{what}: must be Forbidden, but RBAC let it through to {}",
                brief(&e)
            )),
            Ok(_) => self
                .failures
                .push(format!("{what}: must be Forbidden, but was allowed")),
        }
    }
}

#[tokio::test]
async fn base_rbac_keeps_agents_out_of_routelb_system_leases() {
    // RBAC objects and the leader Lease are cluster-wide, and `api::client` tidies up.
    let api_server = lock::api_server();
    let admin = api::client(&api_server).await;
    let suffix = api::unique("rbac");
    remove_stale_rbac(&admin, &suffix).await;
    let node_ns = membership::DEFAULT_NAMESPACE;

    // deploy/base's namespaces and RBAC, the roles and bindings renamed for this run.
    let mut docs = base_rbac();
    for d in docs.iter_mut().filter(|d| is_rbac(d)) {
        let name = format!("{}-{suffix}", d["metadata"]["name"].as_str().unwrap());
        d["metadata"]["name"] = json!(name);
        d["metadata"]["labels"] = json!({ TEST_LABEL: suffix });
        if d.get("roleRef").is_some() {
            let role = format!("{}-{suffix}", d["roleRef"]["name"].as_str().unwrap());
            d["roleRef"]["name"] = json!(role);
        }
    }
    // The agents' Lease namespace exists whatever the manifests say (so that the checks below
    // are about rights, not about a missing namespace).
    api::ensure_namespace(&admin, node_ns, &[]).await;
    let apply = PatchParams::apply("routelb-tests").force();
    for d in &docs {
        let name = d["metadata"]["name"].as_str().unwrap();
        if kind(d) == "Namespace" {
            api::ensure_namespace(&admin, name, &[]).await;
            continue;
        }
        api_for(&admin, d)
            .patch(name, &apply, &Patch::Apply(d))
            .await
            .unwrap_or_else(|e| panic!("applying {} {name}: {e}", kind(d)));
    }
    for b in docs.iter().filter(|d| kind(d).ends_with("Binding")) {
        wait_effective(&admin, b, &docs).await;
    }

    // The allocator's leader Lease, as a running allocator would have it.
    let leases_system: Api<Lease> = Api::namespaced(admin.clone(), SYSTEM);
    let created_leader = if leases_system.get_opt(LEADER_LEASE).await.unwrap().is_none() {
        let l: Lease = serde_json::from_value(json!({
            "metadata": { "name": LEADER_LEASE },
            "spec": { "holderIdentity": "rbac-test", "leaseDurationSeconds": 15 },
        }))
        .unwrap();
        leases_system
            .create(&PostParams::default(), &l)
            .await
            .expect("leader lease");
        true
    } else {
        false
    };

    let node = format!("{suffix}-node");
    let own_lease = membership::lease_name(&node);
    let member = Member {
        node: node.clone(),
        subnets: vec![("eth0".into(), "192.0.2.0/24".parse().unwrap())],
        routed_pools: BTreeSet::new(),
        ..Default::default()
    };
    let lease_object =
        |ns: &str| membership::lease_object(&member, ns, Duration::from_secs(6), SystemTime::now());
    let dry_merge = PatchParams {
        dry_run: true,
        ..Default::default()
    };
    let dry_delete = DeleteParams {
        dry_run: true,
        ..Default::default()
    };
    let dry_post = PostParams {
        dry_run: true,
        field_manager: None,
    };
    let grab = Patch::Merge(json!({ "spec": { "holderIdentity": "intruder" } }));
    let mut checks = Checks::default();

    // The agent: its own node Lease, as it renews it (server-side apply), and every node's
    // Lease read; nothing at all in routelb-system.
    let agent = impersonating(AGENT).await;
    let agent_node_leases: Api<Lease> = Api::namespaced(agent.clone(), node_ns);
    let agent_system_leases: Api<Lease> = Api::namespaced(agent.clone(), SYSTEM);
    let renew = PatchParams::apply("routelb-agent").force();
    checks.allowed(
        &format!("agent creates its Lease {node_ns}/{own_lease}"),
        agent_node_leases
            .patch(&own_lease, &renew, &Patch::Apply(lease_object(node_ns)))
            .await,
    );
    checks.allowed(
        &format!("agent renews its Lease {node_ns}/{own_lease}"),
        agent_node_leases
            .patch(&own_lease, &renew, &Patch::Apply(lease_object(node_ns)))
            .await,
    );
    checks.allowed(
        &format!("agent lists the node Leases in {node_ns}"),
        agent_node_leases.list(&ListParams::default()).await,
    );
    checks.forbidden(
        &format!("agent patches the leader Lease {SYSTEM}/{LEADER_LEASE}"),
        agent_system_leases
            .patch(LEADER_LEASE, &dry_merge, &grab)
            .await,
    );
    checks.forbidden(
        &format!("agent deletes the leader Lease {SYSTEM}/{LEADER_LEASE}"),
        agent_system_leases.delete(LEADER_LEASE, &dry_delete).await,
    );
    checks.forbidden(
        &format!("agent creates a Lease in {SYSTEM}"),
        agent_system_leases
            .create(
                &dry_post,
                &serde_json::from_value(lease_object(SYSTEM)).unwrap(),
            )
            .await,
    );
    checks.forbidden(
        &format!("agent reads the leader Lease {SYSTEM}/{LEADER_LEASE}"),
        agent_system_leases.get(LEADER_LEASE).await,
    );
    checks.allowed(
        &format!("agent applies NodeState {node}"),
        Api::<NodeState>::all(agent.clone())
            .patch(
                &node,
                &PatchParams {
                    dry_run: true,
                    ..PatchParams::apply("routelb-agent")
                },
                &Patch::Apply(json!({
                    "apiVersion": "routelb.io/v1alpha1", "kind": "NodeState",
                    "metadata": { "name": node }, "spec": {},
                })),
            )
            .await,
    );

    // Staged rollout: the agent reads the rollout and its revisions, writes neither.
    let agent_revisions: Api<ControllerRevision> = Api::namespaced(agent.clone(), SYSTEM);
    checks.allowed(
        &format!("agent lists the routing revisions in {SYSTEM}"),
        agent_revisions.list(&ListParams::default()).await,
    );
    checks.allowed(
        "agent lists the RoutingRollouts",
        Api::<RoutingRollout>::all(agent.clone())
            .list(&ListParams::default())
            .await,
    );
    checks.forbidden(
        &format!("agent creates a routing revision in {SYSTEM}"),
        agent_revisions.create(&dry_post, &revision(&suffix)).await,
    );
    checks.forbidden(
        "agent writes a RoutingRollout's status",
        Api::<RoutingRollout>::all(agent.clone())
            .patch_status("default", &dry_merge, &Patch::Merge(json!({"status": {}})))
            .await,
    );

    // The allocator: reads node Leases, writes none; keeps its leader Lease.
    let allocator = impersonating(ALLOCATOR).await;
    let alloc_node_leases: Api<Lease> = Api::namespaced(allocator.clone(), node_ns);
    checks.allowed(
        &format!("allocator lists the node Leases in {node_ns}"),
        alloc_node_leases.list(&ListParams::default()).await,
    );
    checks.allowed(
        &format!("allocator reads {node_ns}/{own_lease}"),
        alloc_node_leases.get(&own_lease).await,
    );
    checks.forbidden(
        &format!("allocator patches the node Lease {node_ns}/{own_lease}"),
        alloc_node_leases.patch(&own_lease, &dry_merge, &grab).await,
    );
    checks.forbidden(
        &format!("allocator deletes the node Lease {node_ns}/{own_lease}"),
        alloc_node_leases.delete(&own_lease, &dry_delete).await,
    );
    checks.forbidden(
        &format!("allocator creates a Lease in {node_ns}"),
        alloc_node_leases
            .create(
                &dry_post,
                &serde_json::from_value(lease_object(node_ns))
                    .map(|mut l: Lease| {
                        l.metadata.name = Some(format!("{own_lease}-forged"));
                        l
                    })
                    .unwrap(),
            )
            .await,
    );
    let alloc_revisions: Api<ControllerRevision> = Api::namespaced(allocator.clone(), SYSTEM);
    checks.allowed(
        &format!("allocator creates a routing revision in {SYSTEM}"),
        alloc_revisions.create(&dry_post, &revision(&suffix)).await,
    );
    checks.allowed(
        &format!("allocator lists the routing revisions in {SYSTEM}"),
        alloc_revisions.list(&ListParams::default()).await,
    );
    checks.allowed(
        &format!("allocator lists ConfigMaps in {SYSTEM} (the templates)"),
        Api::<ConfigMap>::namespaced(allocator.clone(), SYSTEM)
            .list(&ListParams::default())
            .await,
    );
    checks.allowed(
        "allocator lists Nodes (canary node selectors)",
        Api::<Node>::all(allocator.clone())
            .list(&ListParams::default())
            .await,
    );
    checks.allowed(
        "allocator lists the RoutingRollouts",
        Api::<RoutingRollout>::all(allocator.clone())
            .list(&ListParams::default())
            .await,
    );
    checks.allowed(
        &format!("allocator renews its leader Lease {SYSTEM}/{LEADER_LEASE}"),
        Api::<Lease>::namespaced(allocator.clone(), SYSTEM)
            .patch(LEADER_LEASE, &dry_merge, &grab)
            .await,
    );

    // Last: the agent deletes its Lease on shutdown.
    checks.allowed(
        &format!("agent deletes its Lease {node_ns}/{own_lease}"),
        agent_node_leases
            .delete(&own_lease, &DeleteParams::default())
            .await,
    );

    // Cleanup (before judging, so that a failure leaves nothing behind).
    let foreign = foreign_bindings(&admin).await;
    let _ = Api::<Lease>::namespaced(admin.clone(), node_ns)
        .delete(&own_lease, &DeleteParams::default())
        .await;
    if created_leader {
        let _ = leases_system
            .delete(LEADER_LEASE, &DeleteParams::default())
            .await;
    }
    for d in docs.iter().filter(|d| is_rbac(d)) {
        let _ = api_for(&admin, d)
            .delete(
                d["metadata"]["name"].as_str().unwrap(),
                &DeleteParams::default(),
            )
            .await;
    }

    assert!(
        checks.failures.is_empty(),
        "deploy/base RBAC: {} of {} checks failed:\n  {}{}",
        checks.failures.len(),
        checks.done,
        checks.failures.join("\n  "),
        if foreign.is_empty() {
            String::new()
        } else {
            format!(
                "\n(bindings for the routelb ServiceAccounts that this test did not create, \
                 which add rights: {})",
                foreign.join(", ")
            )
        }
    );
}

/// kustomize's `namespace:` would move every namespaced object into one namespace, the Roles
/// and RoleBindings of `routelb-node-lease` included (and kustomize v5 renames both Namespace
/// objects to one). So no kustomization shipped sets it, and every namespaced object in
/// deploy/base names its namespace itself: what [`base_rbac_keeps_agents_out_of_routelb_system_leases`]
/// reads from the files is what kustomize renders.
#[test]
fn no_kustomization_moves_objects_between_namespaces() {
    let mut kustomizations = vec![root().join("deploy/base/kustomization.yaml")];
    for dir in ["deploy/overlays", "deploy/optional", "containerlab"] {
        for e in std::fs::read_dir(root().join(dir)).unwrap() {
            let k = e.unwrap().path().join("kustomization.yaml");
            if k.exists() {
                kustomizations.push(k);
            }
        }
    }
    assert!(kustomizations.len() >= 8, "found {kustomizations:?}");
    for k in &kustomizations {
        let doc = &documents(k)[0];
        assert!(
            doc.get("namespace").is_none(),
            "{} sets `namespace:`: it would move the Roles of routelb-node-lease",
            k.display()
        );
    }
    let cluster_scoped = [
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
    ];
    for e in std::fs::read_dir(root().join("deploy/base")).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_none_or(|x| x != "yaml")
            || path.file_name().unwrap() == "kustomization.yaml"
        {
            continue;
        }
        for d in documents(&path) {
            if cluster_scoped.contains(&kind(&d)) {
                continue;
            }
            assert!(
                d["metadata"]["namespace"].is_string(),
                "{}: {} {} names no namespace",
                path.display(),
                kind(&d),
                d["metadata"]["name"]
            );
        }
    }
}
