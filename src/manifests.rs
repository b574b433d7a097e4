//! Reading a directory of Kubernetes manifests (YAML, multi-document): the input of `render`,
//! `check` and standalone mode.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Namespace, Node, Service};
use serde::de::DeserializeOwned;

use crate::api::{AddressPool, RoutingPolicy};

#[derive(Default, Debug, Clone)]
pub struct Manifests {
    pub pools: Vec<AddressPool>,
    pub policies: Vec<RoutingPolicy>,
    pub services: Vec<Service>,
    pub nodes: Vec<Node>,
    pub namespaces: Vec<Namespace>,
    /// Documents of kinds routelb does not read, as `file: kind`.
    pub ignored: Vec<String>,
    /// Things worth saying that do not stop the directory loading.
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("{file}: document {index}: {message}")]
pub struct ManifestError {
    pub file: PathBuf,
    pub index: usize,
    pub message: String,
}

fn parse<T: DeserializeOwned + kube::ResourceExt>(
    v: serde_yaml::Value,
    file: &Path,
    index: usize,
) -> Result<T, ManifestError> {
    let obj: T = serde_yaml::from_value(v).map_err(|e| ManifestError {
        file: file.into(),
        index,
        message: e.to_string(),
    })?;
    // The API server would refuse other names; files get the same rule, so a name can never
    // carry anything but [a-z0-9.-] into a template.
    for (what, name) in [
        ("metadata.name", Some(obj.name_any())),
        ("metadata.namespace", obj.namespace()),
    ] {
        let Some(name) = name else { continue };
        let ok = crate::api::values::is_dns_name(&name);
        if !ok {
            let shown: String = name.chars().take(64).collect();
            return Err(ManifestError {
                file: file.into(),
                index,
                message: format!(
                    "{what} {shown:?} is not a valid Kubernetes name (lower-case letters, digits, '-' and '.')"
                ),
            });
        }
    }
    Ok(obj)
}

/// Every `*.yaml` / `*.yml` file directly in `dir`, in name order.
pub fn yaml_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    Ok(files)
}

pub fn load_dir(dir: &Path) -> Result<Manifests, ManifestError> {
    let files = yaml_files(dir).map_err(|e| ManifestError {
        file: dir.into(),
        index: 0,
        message: e.to_string(),
    })?;
    let mut m = Manifests::default();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|e| ManifestError {
            file: file.clone(),
            index: 0,
            message: e.to_string(),
        })?;
        load_str(&text, &file, &mut m)?;
    }
    Ok(m)
}

pub fn load_str(text: &str, file: &Path, m: &mut Manifests) -> Result<(), ManifestError> {
    use serde::Deserialize;
    for (index, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let index = index + 1;
        let v = serde_yaml::Value::deserialize(doc).map_err(|e| ManifestError {
            file: file.into(),
            index,
            message: e.to_string(),
        })?;
        if v.is_null() {
            continue;
        }
        let kind = v
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or_default()
            .to_string();
        match kind.as_str() {
            "AddressPool" => m.pools.push(parse(v, file, index)?),
            "RoutingPolicy" => m.policies.push(parse(v, file, index)?),
            "Service" => {
                let mut s: Service = parse(v, file, index)?;
                s.metadata.namespace.get_or_insert_with(|| "default".into());
                m.services.push(s);
            }
            "Node" => m.nodes.push(parse(v, file, index)?),
            "Namespace" => m.namespaces.push(parse(v, file, index)?),
            "" => {
                return Err(ManifestError {
                    file: file.into(),
                    index,
                    message: "document has no kind".into(),
                });
            }
            other => m.ignored.push(format!("{}: {other}", file.display())),
        }
    }
    Ok(())
}
