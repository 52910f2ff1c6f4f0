//! ICMP type and code names, as packetdrill writes them (`icmp unreachable frag_needed`), with the numbers of
//! RFC 792 / RFC 1191 (ICMPv4) and RFC 4443 (ICMPv6). packetdrill also takes `type_N` and `code_N`.

/// Names and numbers of codes.
type Codes = &'static [(&'static str, u8)];

/// A type's name, number and code names.
type Type = (&'static str, u8, Codes);

/// ICMPv4 destination-unreachable codes (RFC 792, RFC 1812 section 5.2.7.1).
const V4_UNREACHABLE: Codes = &[
    ("net_unreachable", 0),
    ("host_unreachable", 1),
    ("protocol_unreachable", 2),
    ("port_unreachable", 3),
    ("frag_needed", 4),
    ("source_route_failed", 5),
    ("net_unknown", 6),
    ("host_unknown", 7),
    ("source_host_isolated", 8),
    ("net_prohibited", 9),
    ("host_prohibited", 10),
    ("net_unreachable_for_tos", 11),
    ("host_unreachable_for_tos", 12),
    ("packet_filtered", 13),
    ("precedence_violation", 14),
    ("precedence_cutoff", 15),
];

/// ICMPv4 types, with their code names where they have some.
const V4: &[Type] = &[
    ("echo_reply", 0, &[]),
    ("unreachable", 3, V4_UNREACHABLE),
    ("source_quench", 4, &[]),
    ("redirect", 5, &[]),
    ("echo_request", 8, &[]),
    ("time_exceeded", 11, &[]),
    ("parameter_problem", 12, &[]),
    ("timestamp_request", 13, &[]),
    ("timestamp_reply", 14, &[]),
    ("information_request", 15, &[]),
    ("information_reply", 16, &[]),
    ("address_mask_request", 17, &[]),
    ("address_mask_reply", 18, &[]),
];

/// ICMPv6 types and codes (RFC 4443 sections 3 and 4).
const V6: &[Type] = &[
    (
        "unreachable",
        1,
        &[
            ("net_unreachable", 0),
            ("no_route", 0),
            ("admin_prohibited", 1),
            ("not_neighbour", 2),
            ("address_unreachable", 3),
            ("port_unreachable", 4),
        ],
    ),
    ("packet_too_big", 2, &[]),
    ("time_exceeded", 3, &[("exceeded_hop_limit", 0), ("exceeded_frag_time", 1)]),
    ("parameter_problem", 4, &[("header_field", 0), ("unknown_next_header", 1), ("unknown_option", 2)]),
    ("echo_request", 128, &[]),
    ("echo_reply", 129, &[]),
];

/// Every type and code name either version knows, for a parse-time check and hints.
pub fn known_names() -> impl Iterator<Item = &'static str> {
    V4.iter().chain(V6).flat_map(|(t, _, codes)| std::iter::once(*t).chain(codes.iter().map(|(c, _)| *c)))
}

fn numbered(word: &str, prefix: &str) -> Option<Option<u8>> {
    word.strip_prefix(prefix).map(|n| n.parse::<u8>().ok())
}

/// The (type, code) a line names on IPv4 or IPv6; a missing code is 0, as in packetdrill.
pub fn resolve(v6: bool, kind: &str, code: Option<&str>) -> Result<(u8, u8), String> {
    let table = if v6 { V6 } else { V4 };
    let family = if v6 { "ICMPv6" } else { "ICMPv4" };
    let (t, codes) = match numbered(kind, "type_") {
        Some(Some(n)) => (n, &[][..]),
        Some(None) => return Err(format!("bad ICMP type {kind}")),
        None => match table.iter().find(|(name, _, _)| *name == kind) {
            Some((_, n, codes)) => (*n, *codes),
            None => return Err(format!("bad ICMP type {kind} for {family}")),
        },
    };
    let c = match code {
        None => 0,
        Some(c) => match numbered(c, "code_") {
            Some(Some(n)) => n,
            Some(None) => return Err(format!("bad ICMP code {c}")),
            None => match codes.iter().find(|(name, _)| *name == c) {
                Some((_, n)) => *n,
                None => return Err(format!("bad ICMP code {c} for {family} {kind}")),
            },
        },
    };
    Ok((t, c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_to_the_rfc_numbers() {
        assert_eq!(resolve(false, "unreachable", Some("frag_needed")), Ok((3, 4)));
        assert_eq!(resolve(false, "unreachable", Some("port_unreachable")), Ok((3, 3)));
        assert_eq!(resolve(false, "echo_request", None), Ok((8, 0)));
        assert_eq!(resolve(true, "unreachable", Some("port_unreachable")), Ok((1, 4)));
        assert_eq!(resolve(true, "packet_too_big", None), Ok((2, 0)));
        assert_eq!(resolve(true, "echo_request", None), Ok((128, 0)));
        assert_eq!(resolve(false, "type_42", Some("code_7")), Ok((42, 7)));
        assert!(resolve(true, "unreachable", Some("frag_needed")).is_err());
        assert!(resolve(false, "packet_too_big", None).is_err());
        assert!(resolve(false, "type_300", None).is_err());
    }
}
