//! The committed `crds/*.yaml` must be exactly what the Rust types generate.
//! After changing a type: `cargo run -- crds` is the truth; refresh with
//! `UPDATE_CRDS=1 cargo test --test crds`.

mod support {
    pub mod files;
}

#[test]
fn committed_crds_match_the_types() {
    let dir = support::files::root().join("crds");
    let update = std::env::var_os("UPDATE_CRDS").is_some();
    let mut drifted = Vec::new();
    for (file, crd) in routelb::crdgen::all() {
        let path = dir.join(file);
        let generated = routelb::crdgen::to_yaml(&crd);
        if update {
            std::fs::write(&path, &generated).unwrap();
            continue;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != generated {
            drifted.push(file);
        }
    }
    assert!(
        drifted.is_empty(),
        "crds/{drifted:?} differ from the Rust types; run `UPDATE_CRDS=1 cargo test --test crds` and commit"
    );
}

#[test]
fn multi_document_output_holds_every_crd() {
    let all = routelb::crdgen::multi_document();
    for name in [
        "addresspools.routelb.io",
        "routingpolicies.routelb.io",
        "nodestates.routelb.io",
        "routingrollouts.routelb.io",
    ] {
        assert!(all.contains(&format!("name: {name}")), "{name} missing");
    }
    assert_eq!(all.matches("\n---\n").count() + 1, 4);
}
