//! Routing instances in a BIRD configuration file (for `render`/`check` without a daemon) and in
//! `birdc show protocols all` output (for the live driver). Pure.

use crate::render::model::{BgpInstance, Instances};

fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let spaced = line
            .replace('{', " { ")
            .replace('}', " } ")
            .replace(';', " ; ");
        out.extend(spaced.split_whitespace().map(str::to_string));
    }
    out
}

/// A `protocol` or `template` block: its kind (`bgp`, `ospf`…), name, the template it
/// inherits (`from NAME`), the word after the kind (`v3`, `ng`), and its own `local … as N`.
#[derive(Debug, Default)]
struct Block {
    template: bool,
    kind: String,
    name: Option<String>,
    from: Option<String>,
    variant: Option<String>,
    local_as: Option<u32>,
}

/// The `protocol`/`template` blocks of a configuration, in order.
fn blocks(t: &[String]) -> Vec<Block> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < t.len() {
        if !matches!(t[i].as_str(), "protocol" | "template") || i + 1 >= t.len() {
            i += 1;
            continue;
        }
        let mut b = Block {
            template: t[i] == "template",
            kind: t[i + 1].clone(),
            ..Block::default()
        };
        // Header: `protocol bgp [v3|ng] [name] [from tmpl] {`.
        let mut j = i + 2;
        while j < t.len() && t[j] != "{" && t[j] != ";" {
            match t[j].as_str() {
                "from" => {
                    b.from = t.get(j + 1).cloned();
                    j += 1;
                }
                "v2" | "v3" | "ng" if b.name.is_none() => b.variant = Some(t[j].clone()),
                w => b.name = Some(w.to_string()),
            }
            j += 1;
        }
        let (local_as, end) = block_local_as(t, j);
        b.local_as = local_as;
        out.push(b);
        i = end.max(i + 1);
    }
    out
}

/// The `local [addr] as N` at depth 1 of the block opening at `open`; and where it ends.
fn block_local_as(t: &[String], open: usize) -> (Option<u32>, usize) {
    let mut depth = 0;
    let mut asn = None;
    let mut j = open;
    while j < t.len() {
        match t[j].as_str() {
            "{" => depth += 1,
            "}" => {
                depth -= 1;
                if depth <= 0 {
                    return (asn, j + 1);
                }
            }
            "local" if depth == 1 => {
                if let Some(k) = (j..t.len().min(j + 5)).find(|&k| t[k] == "as") {
                    asn = t.get(k + 1).and_then(|a| a.parse().ok());
                }
            }
            _ => {}
        }
        j += 1;
    }
    (asn, j)
}

/// A block's `local as`, its own or inherited along `from` (BIRD: a protocol takes every
/// option of its template that it does not set itself).
fn inherited_as(b: &Block, all: &[Block]) -> Option<u32> {
    let mut cur = b;
    for _ in 0..16 {
        if let Some(asn) = cur.local_as {
            return Some(asn);
        }
        let from = cur.from.as_deref()?;
        cur = all
            .iter()
            .find(|t| t.template && t.name.as_deref() == Some(from))?;
    }
    None
}

/// Which BIRD reads the configuration: BIRD 2 (both families, `ospf v3`, `rip ng`), or BIRD
/// 1.x's `bird` (IPv4) or `bird6` (IPv6), where the daemon decides the family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Bird2,
    Bird1V4,
    Bird1V6,
}

/// Instances declared in a bird.conf (BIRD 2): `protocol bgp` (with `local ... as N`, its own
/// or its template's), `protocol ospf [v2|v3]`, `protocol rip [ng]`.
pub fn instances_from_config(text: &str) -> Instances {
    instances_in(text, Dialect::Bird2)
}

/// Instances declared in a configuration of the given dialect.
pub fn instances_in(text: &str, dialect: Dialect) -> Instances {
    let all = blocks(&tokens(text));
    let mut inst = Instances::default();
    for b in all.iter().filter(|b| !b.template) {
        let v6 = match dialect {
            Dialect::Bird2 => matches!(b.variant.as_deref(), Some("v3" | "ng")),
            Dialect::Bird1V4 => false,
            Dialect::Bird1V6 => true,
        };
        match b.kind.as_str() {
            "bgp" => {
                if let Some(asn) = inherited_as(b, &all)
                    && !inst.bgp.iter().any(|x: &BgpInstance| x.asn == asn)
                {
                    inst.bgp.push(BgpInstance { asn, vrf: None });
                }
            }
            "ospf" if v6 => inst.ospf6 = true,
            "ospf" => inst.ospf = true,
            "rip" if v6 => inst.ripng = true,
            "rip" => inst.rip = true,
            _ => {}
        }
    }
    inst
}

/// Both BIRD 1.x daemons' instances as one set.
pub fn merge(a: Instances, b: Instances) -> Instances {
    let mut out = a;
    for x in b.bgp {
        if !out.bgp.contains(&x) {
            out.bgp.push(x);
        }
    }
    out.ospf |= b.ospf;
    out.ospf6 |= b.ospf6;
    out.rip |= b.rip;
    out.ripng |= b.ripng;
    out.isis.extend(b.isis);
    out
}

/// Instances from `birdc show protocols all`: protocol type column, channels, and `Local AS`.
pub fn instances_from_show(output: &str) -> Instances {
    let mut inst = Instances::default();
    let mut current: Option<(String, bool, bool)> = None; // (type, ipv4 channel, ipv6 channel)
    let flush = |cur: &mut Option<(String, bool, bool)>, inst: &mut Instances| {
        if let Some((kind, v4, v6)) = cur.take() {
            match kind.as_str() {
                "OSPF" if v6 => inst.ospf6 = true,
                "OSPF" => inst.ospf = v4 || !v6,
                "RIP" if v6 => inst.ripng = true,
                "RIP" => inst.rip = true,
                _ => {}
            }
        }
    };
    for line in output.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if !line.starts_with(' ')
            && cols.len() >= 4
            && matches!(
                cols[1],
                "BGP" | "OSPF" | "RIP" | "Device" | "Direct" | "Kernel" | "Static"
            )
        {
            flush(&mut current, &mut inst);
            current = Some((cols[1].to_string(), false, false));
            continue;
        }
        if let Some(cur) = current.as_mut() {
            match cols.as_slice() {
                ["Channel", "ipv4", ..] => cur.1 = true,
                ["Channel", "ipv6", ..] => cur.2 = true,
                ["Local", "AS:", asn, ..] if cur.0 == "BGP" => {
                    if let Ok(asn) = asn.parse()
                        && !inst.bgp.iter().any(|b| b.asn == asn)
                    {
                        inst.bgp.push(BgpInstance { asn, vrf: None });
                    }
                }
                _ => {}
            }
        }
    }
    flush(&mut current, &mut inst);
    inst
}

/// Instances from BIRD 1.x's `show protocols all`, whose family is the daemon's. BIRD 1.x shows
/// no BGP protocol's local AS: an iBGP session (`Session: internal`) has the neighbor's; the
/// names of BGP protocols whose AS stays unknown come back beside the instances.
pub fn instances_from_show_bird1(output: &str, dialect: Dialect) -> (Instances, Vec<String>) {
    let v6 = dialect == Dialect::Bird1V6;
    let mut inst = Instances::default();
    let mut unknown = Vec::new();
    // (name, neighbor AS, internal) of the BGP protocol being read.
    let mut bgp: Option<(String, Option<u32>, bool)> = None;
    let mut finish =
        |bgp: &mut Option<(String, Option<u32>, bool)>, inst: &mut Instances| match bgp.take() {
            Some((_, Some(asn), true)) if inst.bgp.iter().any(|b| b.asn == asn) => {}
            Some((_, Some(asn), true)) => inst.bgp.push(BgpInstance { asn, vrf: None }),
            Some((name, _, _)) => unknown.push(name),
            None => {}
        };
    for line in output.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if !line.starts_with(' ') && cols.len() >= 4 {
            finish(&mut bgp, &mut inst);
            match cols[1] {
                "BGP" => bgp = Some((cols[0].to_string(), None, false)),
                "OSPF" if v6 => inst.ospf6 = true,
                "OSPF" => inst.ospf = true,
                "RIP" if v6 => inst.ripng = true,
                "RIP" => inst.rip = true,
                _ => {}
            }
            continue;
        }
        if let Some(b) = bgp.as_mut() {
            match cols.as_slice() {
                ["Neighbor", "AS:", asn, ..] => b.1 = asn.parse().ok(),
                ["Session:", kind, ..] => b.2 = *kind == "internal",
                _ => {}
            }
        }
    }
    finish(&mut bgp, &mut inst);
    (inst, unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_protocols_in_a_config() {
        let conf = r#"
router id 10.0.0.1;
include "/run/routelb/routelb.conf";
protocol device {}
protocol bgp upstream {
  local 172.30.0.2 as 64512;   # us
  neighbor 172.30.0.1 as 64500;
  ipv4 { export where routelb_export_bgp(); };
}
protocol ospf v3 o6 { ipv6 { export where routelb_export_ospf(); }; }
protocol rip ng { ipv6; }
"#;
        let i = instances_from_config(conf);
        assert_eq!(
            i.bgp,
            vec![BgpInstance {
                asn: 64512,
                vrf: None
            }]
        );
        assert!(i.ospf6 && !i.ospf && i.ripng && !i.rip);
    }

    #[test]
    fn finds_protocols_in_show_output() {
        let out = "BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
upstream   BGP        ---        up     12:00:00.000  Established
  BGP state:          Established
    Neighbor address: 172.30.0.1
    Local AS:         64512
  Channel ipv4
    State:          UP
ospf4      OSPF       master4    up     12:00:00.000  Running
  Channel ipv4
ospf6      OSPF       master6    up     12:00:00.000  Running
  Channel ipv6
";
        let i = instances_from_show(out);
        assert_eq!(
            i.bgp,
            vec![BgpInstance {
                asn: 64512,
                vrf: None
            }]
        );
        assert!(i.ospf && i.ospf6 && !i.rip);
    }

    #[test]
    fn bird1_show_output_gives_ibgp_as_and_names_the_rest() {
        let out = "BIRD 1.6.8 ready.
name     proto    table    state  since       info
Mesh_10_0_0_3 BGP      master   up     11:53:55    Established
  Preference:     100
  BGP state:          Established
    Neighbor address: 10.0.0.3
    Neighbor AS:      64512
    Session:          internal multihop AS4 add-path-rx add-path-tx
Global_tor BGP      master   up     11:53:55    Established
  BGP state:          Established
    Neighbor AS:      64500
    Session:          external AS4
ospf1    OSPF     master   up     11:53:55    Running
";
        let (i, unknown) = instances_from_show_bird1(out, Dialect::Bird1V6);
        assert_eq!(
            i.bgp,
            vec![BgpInstance {
                asn: 64512,
                vrf: None
            }]
        );
        assert!(i.ospf6 && !i.ospf);
        assert_eq!(unknown, vec!["Global_tor".to_string()]);
    }

    /// Calico's shape: `local as` only in the template the protocols inherit.
    const TEMPLATED: &str = r#"
template bgp bgp_template {
  local as 64512;
  multihop;
}
template bgp rr_template from bgp_template { rr client; }
protocol bgp Mesh_10_0_0_2 from bgp_template { neighbor 10.0.0.2 as 64512; }
protocol bgp Node_10_0_0_3 from rr_template { neighbor 10.0.0.3 as 64500; }
protocol bgp Own from bgp_template { local as 65000; neighbor 10.0.0.4 as 64500; }
protocol ospf { area 0 { interface "eth0"; }; }
"#;

    #[test]
    fn local_as_is_inherited_from_templates() {
        let i = instances_from_config(TEMPLATED);
        let asns: Vec<u32> = i.bgp.iter().map(|b| b.asn).collect();
        assert_eq!(asns, vec![64512, 65000]);
        // A template alone is no instance.
        assert!(
            instances_from_config("template bgp t { local as 1; }")
                .bgp
                .is_empty()
        );
    }

    #[test]
    fn bird1_daemons_decide_the_family() {
        let v4 = instances_in(TEMPLATED, Dialect::Bird1V4);
        assert!(v4.ospf && !v4.ospf6);
        let v6 = instances_in(TEMPLATED, Dialect::Bird1V6);
        assert!(v6.ospf6 && !v6.ospf);
        let both = merge(v4, v6);
        assert!(both.ospf && both.ospf6);
        assert_eq!(both.bgp.len(), 2);
    }
}
