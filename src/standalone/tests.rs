//! The pure part of a standalone pass: what a directory and a state file allocate, and which
//! file events wake it.

use std::path::Path;

use super::*;
use crate::render::model::Instances;
use crate::{manifests, plan};

fn manifests(yaml: &str) -> Manifests {
    let mut m = Manifests::default();
    manifests::load_str(yaml, Path::new("test.yaml"), &mut m).unwrap();
    m
}

const POLICY: &str = "apiVersion: routelb.io/v1alpha1\nkind: RoutingPolicy\nmetadata: {name: all}\nspec: {protocols: [bgp]}\n";

fn pool(addresses: &str) -> String {
    format!(
        "apiVersion: routelb.io/v1alpha1\nkind: AddressPool\nmetadata: {{name: web}}\nspec: {{addresses: [{addresses}]}}\n"
    )
}

fn service(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\nspec: {{type: LoadBalancer, ports: [{{port: 80, protocol: TCP}}]}}\n"
    )
}

fn dir(parts: &[&str]) -> Manifests {
    manifests(&parts.join("---\n"))
}

fn fragment(m: &Manifests, a: &Allocated) -> String {
    let instances = Instances {
        bgp: vec![crate::render::model::BgpInstance {
            asn: 64512,
            vrf: None,
        }],
        ..Default::default()
    };
    render(
        m,
        a,
        &Templates::load(DaemonKind::Frr, None).unwrap(),
        None,
        "kube-lb0",
        &instances,
    )
    .unwrap()
    .fragment
}

fn addresses(a: &Allocated) -> Vec<(String, String)> {
    a.assigned
        .iter()
        .map(|s| (s.key.to_string(), s.addresses[0].to_string()))
        .collect()
}

#[test]
fn a_bad_pool_entry_keeps_the_last_valid_definition_across_restarts() {
    let good = dir(&[&pool("\"203.0.113.0/28\""), POLICY, &service("a")]);
    let first = allocate(&good, &State::default());
    let before = fragment(&good, &first);
    assert!(before.contains("203.0.113.0/28"), "{before}");

    // One bad entry added to the live pool: nothing is withdrawn, and it is said.
    let bad = dir(&[
        &pool("\"203.0.113.0/28\", \"203.0.113.300\""),
        POLICY,
        &service("a"),
        &service("b"),
    ]);
    let second = allocate(&bad, &first.state);
    assert_eq!(fragment(&bad, &second), before);
    assert!(
        second
            .notes
            .iter()
            .any(|n| n.contains("203.0.113.300") && n.contains("last valid definition")),
        "{:?}",
        second.notes
    );
    assert_eq!(
        addresses(&second)[0],
        ("default/a".into(), "203.0.113.0".into())
    );

    // The state file carries the last valid definition: a restart during the bad edit
    // withdraws nothing either.
    let reloaded = State::parse(&second.state.to_json()).unwrap();
    let third = allocate(&bad, &reloaded);
    assert_eq!(fragment(&bad, &third), before);
    assert_eq!(addresses(&third), addresses(&second));
}

#[test]
fn a_pool_invalid_from_the_start_is_reported() {
    let m = dir(&[&pool("\"203.0.113.0/28\", \"203.0.113.300\""), POLICY]);
    let a = allocate(&m, &State::default());
    assert!(
        a.notes
            .iter()
            .any(|n| n.contains("203.0.113.300") && n.contains("nothing is announced from it")),
        "{:?}",
        a.notes
    );
}

#[test]
fn state_entries_of_unknown_pools_are_not_placed() {
    let m = dir(&[&pool("\"203.0.113.0/28\""), &service("a")]);
    let mut forged = State::default();
    forged.services.insert(
        "default/a".into(),
        HeldAddresses {
            pool: "nosuch".into(),
            addresses: vec!["198.51.100.7".parse().unwrap()],
        },
    );
    let a = allocate(&m, &forged);
    assert_eq!(addresses(&a), [("default/a".into(), "203.0.113.0".into())]);
    assert!(
        a.notes
            .iter()
            .any(|n| n.contains("198.51.100.7") && n.contains("ignored"))
    );
}

#[test]
fn a_pool_edited_smaller_renumbers_nothing() {
    let before = dir(&[&pool("\"203.0.113.0/28\""), &service("a")]);
    let mut state = State::default();
    state.services.insert(
        "default/a".into(),
        HeldAddresses {
            pool: "web".into(),
            addresses: vec!["203.0.113.12".parse().unwrap()],
        },
    );
    let first = allocate(&before, &state);
    assert_eq!(addresses(&first)[0].1, "203.0.113.12");
    // A typo makes the pool a /29: the Service keeps its address, with a warning.
    let after = dir(&[&pool("\"203.0.113.0/29\""), &service("a")]);
    let second = allocate(&after, &first.state);
    assert_eq!(addresses(&second)[0].1, "203.0.113.12");
    assert!(
        second
            .notes
            .iter()
            .any(|n| n.contains("no longer in any pool")),
        "{:?}",
        second.notes
    );
    // Fixed again: still the same address.
    assert_eq!(
        addresses(&allocate(&before, &second.state))[0].1,
        "203.0.113.12"
    );
}

#[test]
fn a_never_valid_pool_places_nothing() {
    // An aggregate wider than the pool is refused: nothing of it reaches an interface.
    let m = dir(&[
        "apiVersion: routelb.io/v1alpha1\nkind: AddressPool\nmetadata: {name: web}\nspec: {addresses: [\"203.0.113.0/24\"], aggregation: {ipv4: 16}}\n",
        &service("a"),
    ]);
    let mut v1 = State::default();
    v1.services.insert(
        "default/a".into(),
        HeldAddresses {
            pool: "web".into(),
            addresses: vec!["203.0.113.1".parse().unwrap()],
        },
    );
    let a = allocate(&m, &v1);
    let planned = plan::plan(&a.assigned, &a.pools, "kube-lb0", &[]);
    assert!(
        planned.interfaces.values().all(|addrs| addrs.is_empty()),
        "{:?}",
        planned.interfaces
    );
    assert!(
        a.notes
            .iter()
            .any(|n| n.contains("nothing is announced from it"))
    );
}

#[test]
fn per_service_communities_survive_a_bad_pool_edit() {
    let policy = "apiVersion: routelb.io/v1alpha1\nkind: RoutingPolicy\nmetadata: {name: all}\nspec: {protocols: [bgp], serviceOverrides: {bgpCommunities: [\"64512:0-64512:999\"]}}\n";
    let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: default, annotations: {routelb.io/bgp-communities: \"64512:7\"}}\nspec: {type: LoadBalancer, ports: [{port: 80, protocol: TCP}]}\n";
    let good = dir(&[&pool("\"203.0.113.0/28\""), policy, svc]);
    let first = allocate(&good, &State::default());
    let before = fragment(&good, &first);
    assert!(before.contains("64512:7"), "{before}");
    let bad = dir(&[&pool("\"203.0.113.0/28\", \"203.0.113.300\""), policy, svc]);
    let second = allocate(&bad, &first.state);
    assert_eq!(fragment(&bad, &second), before);
}

#[test]
fn a_bad_policy_edit_keeps_announcing() {
    let good = dir(&[&pool("\"203.0.113.0/28\""), POLICY, &service("a")]);
    let first = allocate(&good, &State::default());
    let before = fragment(&good, &first);
    let bad_policy = "apiVersion: routelb.io/v1alpha1\nkind: RoutingPolicy\nmetadata: {name: all}\nspec: {protocols: [bgp], bgp: {asPathPrepend: 11}}\n";
    let bad = dir(&[&pool("\"203.0.113.0/28\""), bad_policy, &service("a")]);
    let second = allocate(&bad, &first.state);
    assert_eq!(fragment(&bad, &second), before);
    assert!(
        second
            .notes
            .iter()
            .any(|n| n.contains("RoutingPolicy all is invalid") && n.contains("last valid"))
    );
    // Across a restart too.
    let third = allocate(&bad, &State::parse(&second.state.to_json()).unwrap());
    assert_eq!(fragment(&bad, &third), before);
}

#[test]
fn the_state_file_pool_grants_no_admission() {
    // Overlapping pools; `premium` admits namespace `gold` only. A state file (or a
    // pool-used annotation) naming premium does not make premium this Service's pool.
    let premium = "apiVersion: routelb.io/v1alpha1\nkind: AddressPool\nmetadata: {name: premium}\nspec: {addresses: [\"203.0.113.0/28\"], allocation: {priority: 10, namespaces: [gold]}}\n";
    let m = dir(&[&pool("\"203.0.113.0/28\""), premium, &service("a")]);
    let mut claimed = State::default();
    claimed.services.insert(
        "default/a".into(),
        HeldAddresses {
            pool: "premium".into(),
            addresses: vec!["203.0.113.5".parse().unwrap()],
        },
    );
    let a = allocate(&m, &claimed);
    assert_eq!(
        a.assigned[0].addresses[0].to_string(),
        "203.0.113.5",
        "kept"
    );
    assert_eq!(a.assigned[0].pool, "web");
    assert!(a.assigned[0].admitted);
    assert_eq!(a.state.services["default/a"].pool, "web");
}

#[test]
fn only_edits_of_manifests_wake_a_pass() {
    use notify::event::{
        AccessKind, CreateKind, DataChange, MetadataKind, ModifyKind, RemoveKind, RenameMode,
    };
    use notify::{Event, EventKind};
    let state = Path::new("/cfg/.routelb-state.json");
    let ev = |kind, path: &str| Event::new(kind).add_path(path.into());
    use super::Edit::{Partial, Whole};
    for (kind, path, wakes) in [
        (EventKind::Access(AccessKind::Any), "/cfg/a.yaml", None),
        (
            EventKind::Access(AccessKind::Close(notify::event::AccessMode::Read)),
            "/cfg/a.yaml",
            None,
        ),
        (
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any)),
            "/cfg/a.yaml",
            None,
        ),
        (
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            "/cfg/.routelb-state.json",
            None,
        ),
        (
            EventKind::Create(CreateKind::File),
            "/cfg/.routelb-state.json.lock",
            None,
        ),
        (
            EventKind::Create(CreateKind::File),
            "/cfg/.a.yaml.swp",
            None,
        ),
        (
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            "/cfg/a.yaml",
            Some(Partial),
        ),
        (
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            "/cfg/a.yml",
            Some(Whole),
        ),
        (
            EventKind::Access(AccessKind::Close(notify::event::AccessMode::Write)),
            "/cfg/a.yaml",
            Some(Whole),
        ),
        (
            EventKind::Create(CreateKind::File),
            "/cfg/b.yaml",
            Some(Partial),
        ),
        (
            EventKind::Remove(RemoveKind::File),
            "/cfg/b.yaml",
            Some(Whole),
        ),
        (
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            "/cfg/..data",
            Some(Whole),
        ),
    ] {
        assert_eq!(edit_of(&ev(kind, path), state), wakes, "{kind:?} {path}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_whole_edit_is_read_at_once_and_a_write_in_place_once_closed() {
    use tokio::time::{Duration, Instant, sleep};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let t = Instant::now();
    whole(Edit::Whole, &mut rx).await;
    assert_eq!(
        t.elapsed(),
        Duration::ZERO,
        "a rename into place is read at once"
    );
    // Edits queued while a pass ran are taken by the next one.
    tx.send(Edit::Whole).unwrap();
    tx.send(Edit::Whole).unwrap();
    whole(Edit::Whole, &mut rx).await;
    assert!(rx.try_recv().is_err(), "one pass for all of them");
    assert_eq!(t.elapsed(), Duration::ZERO);
    // A write in place: read once the writer closes the file.
    let writer = {
        let tx = tx.clone();
        tokio::spawn(async move {
            sleep(Duration::from_millis(30)).await;
            tx.send(Edit::Partial).unwrap();
            sleep(Duration::from_millis(30)).await;
            tx.send(Edit::Whole).unwrap();
        })
    };
    whole(Edit::Partial, &mut rx).await;
    assert_eq!(t.elapsed(), Duration::from_millis(60));
    writer.await.unwrap();
    // A writer routelb sees no close of: read once it went quiet.
    let t = Instant::now();
    whole(Edit::Partial, &mut rx).await;
    assert_eq!(t.elapsed(), SETTLE);
}

#[test]
fn dry_run_text_names_each_services_addresses() {
    let d = DryRun {
        services: vec![DryRunService {
            service: "default/web".into(),
            pool: "demo".into(),
            addresses: vec![
                "203.0.113.1".parse().unwrap(),
                "2001:db8::1".parse().unwrap(),
            ],
        }],
        interfaces: [("kube-lb0".to_string(), vec!["203.0.113.1/32".to_string()])].into(),
        notes: vec!["something".into()],
        daemon: "frr",
        fragment: "!\n".into(),
    };
    let text = d.text();
    assert!(
        text.contains("default/web\t203.0.113.1,2001:db8::1\tpool demo"),
        "{text}"
    );
    assert!(text.contains("kube-lb0\t203.0.113.1/32") && text.contains("# note: something"));
    let json: serde_json::Value = serde_json::to_value(&d).unwrap();
    assert_eq!(json["services"][0]["addresses"][1], "2001:db8::1");
}
