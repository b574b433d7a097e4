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

/// Instances declared in a bird.conf: `protocol bgp` (with `local ... as N`), `protocol ospf
/// [v2|v3]`, `protocol rip [ng]`.
pub fn instances_from_config(text: &str) -> Instances {
    let t = tokens(text);
    let mut inst = Instances::default();
    let mut i = 0;
    while i < t.len() {
        if t[i] == "protocol" && i + 1 < t.len() {
            match t[i + 1].as_str() {
                "bgp" => {
                    // Find `as N` within this protocol's block.
                    let mut depth = 0;
                    let mut j = i + 2;
                    let mut asn = None;
                    while j < t.len() {
                        match t[j].as_str() {
                            "{" => depth += 1,
                            "}" => {
                                depth -= 1;
                                if depth == 0 {
                                    break;
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
                    if let Some(asn) = asn
                        && !inst.bgp.iter().any(|b: &BgpInstance| b.asn == asn)
                    {
                        inst.bgp.push(BgpInstance { asn, vrf: None });
                    }
                }
                "ospf" => {
                    if t.get(i + 2).map(String::as_str) == Some("v3") {
                        inst.ospf6 = true;
                    } else {
                        inst.ospf = true;
                    }
                }
                "rip" => {
                    if t.get(i + 2).map(String::as_str) == Some("ng") {
                        inst.ripng = true;
                    } else {
                        inst.rip = true;
                    }
                }
                _ => {}
            }
        }
        i += 1;
    }
    inst
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
}
