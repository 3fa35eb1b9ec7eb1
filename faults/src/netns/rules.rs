//! The nftables text of a netns run, pure: the tables, sets and chains made once, and the set
//! elements and loss rules a fault writes. Nothing here runs a command.

use std::net::Ipv4Addr;

pub(super) fn port_name(i: usize) -> String {
    format!("p{}", i + 1)
}

/// What the bridge's rules hold, flow by flow (source, destination).
#[derive(Default)]
pub(super) struct Sets {
    /// Every packet dropped.
    pub(super) cut: Flows,
    /// TCP answered with RST at the sender's port.
    pub(super) reset: Flows,
    /// Everything but TCP dropped (the other half of a reset cut).
    pub(super) cut_other: Flows,
    /// Random loss, one rule per flow (each has its own rate).
    pub(super) loss: Vec<String>,
}

/// The tables, sets and chains, made once when the bridge is wired. The bridge family's
/// forward chain drops flows in `cut`, non-TCP packets of flows in `cut_other`, and jumps to
/// `loss`. Resets need the netdev family (the bridge family cannot reject on this kernel, as
/// it lacks nft_reject_bridge): an ingress chain on every bridge port answers TCP of the flows
/// in `rst` with an RST, which goes back out of the sender's own port. A fault changes set
/// elements and the loss rules, never a hooked chain (which costs the kernel a grace period),
/// and the rule count stays the same however many flows are cut.
pub(super) fn base_ruleset(ports: &[String]) -> String {
    let mut s = String::from(
        "table bridge faultline {\n\
         \x20 set cut { type ipv4_addr . ipv4_addr; }\n\
         \x20 set cut_other { type ipv4_addr . ipv4_addr; }\n\
         \x20 chain loss {\n  }\n\
         \x20 chain forward {\n\
         \x20   type filter hook forward priority 0; policy accept;\n\
         \x20   ip saddr . ip daddr @cut drop\n\
         \x20   ip saddr . ip daddr @cut_other meta l4proto != tcp drop\n\
         \x20   jump loss\n\
         \x20 }\n\
         }\n\
         table netdev faultline {\n\
         \x20 set rst { type ipv4_addr . ipv4_addr; }\n",
    );
    for port in ports {
        s.push_str(&format!(
            "  chain in_{port} {{\n    type filter hook ingress device \"{port}\" priority 0; policy accept;\n    ip saddr . ip daddr @rst meta l4proto tcp reject with tcp reset\n  }}\n"
        ));
    }
    s.push_str("}\n");
    s
}

/// Flows by (source, destination).
pub(super) type Flows = Vec<(Ipv4Addr, Ipv4Addr)>;

impl Sets {
    /// Family, set and flows of each set.
    pub(super) fn each(&self) -> [(crate::nft::Family, &'static str, &Flows); 3] {
        use crate::nft::Family;
        [
            (Family::Bridge, "cut", &self.cut),
            (Family::Bridge, "cut_other", &self.cut_other),
            (Family::Netdev, "rst", &self.reset),
        ]
    }

    /// What each set must hold, as netlink keys (`ipv4_addr . ipv4_addr`: 8 bytes).
    pub(super) fn contents(&self) -> Vec<crate::nft::SetContent> {
        self.each()
            .into_iter()
            .map(|(family, set, flows)| crate::nft::SetContent {
                family,
                table: "faultline".into(),
                set: set.into(),
                keys: flows
                    .iter()
                    .map(|(a, b)| [a.octets(), b.octets()].concat())
                    .collect(),
            })
            .collect()
    }
}

/// The nft text that makes every set hold its flows (what [`Sets::contents`] sends over
/// netlink, for the fallback to the `nft` command and for the record).
pub(super) fn sets_update(sets: &Sets) -> String {
    let mut s = String::new();
    for (family, set, flows) in sets.each() {
        let family = family.as_str();
        s.push_str(&format!("flush set {family} faultline {set}\n"));
        if !flows.is_empty() {
            let elements: Vec<String> = flows.iter().map(|(a, b)| format!("{a} . {b}")).collect();
            s.push_str(&format!(
                "add element {family} faultline {set} {{ {} }}\n",
                elements.join(", ")
            ));
        }
    }
    s
}

/// The nft text that refills the loss chain.
pub(super) fn loss_update(loss: &[String]) -> String {
    let mut s = String::from("flush chain bridge faultline loss\n");
    for r in loss {
        s.push_str(&format!("add rule bridge faultline loss {r}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_change_set_elements_and_loss_rules_only() {
        let ports = vec!["harness".to_string(), "p1".into(), "p2".into()];
        let base = base_ruleset(&ports);
        assert!(base.contains("hook forward"), "{base}");
        for p in &ports {
            assert!(
                base.contains(&format!("hook ingress device \"{p}\"")),
                "{base}"
            );
        }
        assert!(
            base.contains("@rst meta l4proto tcp reject with tcp reset"),
            "{base}"
        );
        let ip = |d| Ipv4Addr::new(10, 0, 0, d);
        let sets = Sets {
            cut: vec![(ip(1), ip(2))],
            reset: vec![(ip(2), ip(1)), (ip(3), ip(1))],
            cut_other: vec![(ip(2), ip(1)), (ip(3), ip(1))],
            loss: vec![
                "ip saddr 10.0.0.1 ip daddr 10.0.0.3 numgen random mod 10000 < 500 drop".into(),
            ],
        };
        let u = sets_update(&sets) + &loss_update(&sets.loss);
        let keys = sets.contents();
        assert_eq!(keys[0].keys, vec![vec![10, 0, 0, 1, 10, 0, 0, 2]]);
        assert_eq!(
            (keys[2].family, keys[2].set.as_str()),
            (crate::nft::Family::Netdev, "rst")
        );
        assert_eq!(keys[2].keys.len(), 2);
        assert!(
            u.contains("add element bridge faultline cut { 10.0.0.1 . 10.0.0.2 }\n"),
            "{u}"
        );
        assert!(
            u.contains(
                "add element netdev faultline rst { 10.0.0.2 . 10.0.0.1, 10.0.0.3 . 10.0.0.1 }\n"
            ),
            "{u}"
        );
        assert!(
            u.contains("add rule bridge faultline loss ip saddr 10.0.0.1"),
            "{u}"
        );
        // Every set and the loss chain are emptied first, so a healed fault goes away; no
        // chain is made or deleted.
        for set in [
            "bridge faultline cut",
            "bridge faultline cut_other",
            "netdev faultline rst",
        ] {
            assert!(u.contains(&format!("flush set {set}\n")), "{u}");
        }
        assert!(!u.contains("hook") && !u.contains("delete"), "{u}");
        // Healed: only flushes.
        let healed = sets_update(&Sets::default()) + &loss_update(&[]);
        assert!(healed.lines().all(|l| l.starts_with("flush ")), "{healed}");
    }
}
