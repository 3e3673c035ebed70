//! Settings parsing and validation: every kind of bad input is reported with its
//! line and column, and good input decodes to the expected values.

use super::*;
use proptest::prelude::*;
use std::path::Path;

const EXAMPLE: &str = include_str!("../../../../examples/settings.yaml");

const MINIMAL: &str = "\
cluster:
  name: demo
cloud:
  image: tiny
  flavor: m1.tiny
  network: k8s-net
  router: k8s-router
  floating_ip_pool: public
nodes:
  - name: master-1
    role: master
  - name: worker-1
    role: worker
ssh:
  user: debian
  private_key: id_ed25519
";

fn parse(text: &str) -> Result<Settings, Diagnostics> {
    Settings::parse(Path::new("settings.yaml"), text)
}

/// Parse text that must fail; returns `(line, column, message, fix)` of every problem.
fn problems(text: &str) -> Vec<(u32, u32, String, String)> {
    match parse(text) {
        Ok(_) => panic!("expected problems in:\n{text}"),
        Err(d) => d.problems.into_iter().map(|p| (p.at.line, p.at.column, p.message, p.fix.unwrap_or_default())).collect(),
    }
}

/// MINIMAL with `line` replaced by `with`.
fn edit(line: &str, with: &str) -> String {
    assert!(MINIMAL.contains(line), "{line}");
    MINIMAL.replacen(line, with, 1)
}

fn has(problems: &[(u32, u32, String, String)], line: u32, needle: &str) -> bool {
    problems.iter().any(|(l, _, m, f)| *l == line && (m.contains(needle) || f.contains(needle)))
}

#[test]
fn example_file_is_valid() {
    let s = parse(EXAMPLE).expect("examples/settings.yaml is valid");
    assert_eq!(s.cluster.name, "demo");
    assert_eq!(s.masters().count(), 1);
    assert_eq!(s.workers().count(), 2);
    assert_eq!(s.cluster.kubernetes_version.to_string(), "1.37.2");
    assert_eq!(s.nodes[1].metadata.get("rack").map(String::as_str), Some("a"));
    assert_eq!(s.nodes[2].flavor.as_deref(), Some("m1.large"));
}

#[test]
fn defaults_fill_what_is_left_out() {
    let s = parse(MINIMAL).unwrap();
    assert_eq!(s.networking.pod_cidr.to_string(), "10.1.0.0/16");
    assert_eq!(s.networking.node_prefix, 24);
    assert_eq!(s.networking.service_cidr.to_string(), "10.96.0.0/12");
    assert_eq!(s.networking.dns_ip.to_string(), "10.96.0.10");
    assert_eq!(s.networking.domain, "cluster.local");
    assert_eq!(s.cluster.api_port, 6443);
    assert_eq!(s.runtime.kind, RuntimeKind::Containerd);
    assert_eq!(s.artifacts.source, ArtifactSource::Upstream);
    assert_eq!(s.artifacts.image_repository, "registry.k8s.io");
    assert_eq!(s.addons.dns, Some(DnsAddon::CoreDns));
    assert!(s.cloud.manage_security_group);
    assert_eq!(s.ssh.port, 22);
}

#[test]
fn dns_ip_defaults_to_tenth_address_of_a_custom_service_range() {
    let s = parse(&format!("{MINIMAL}networking:\n  service_cidr: 172.20.0.0/16\n")).unwrap();
    assert_eq!(s.networking.dns_ip.to_string(), "172.20.0.10");
}

#[test]
fn unknown_key_suggests_the_near_name() {
    let p = problems(&edit("  flavor: m1.tiny\n", "  flavour: m1.tiny\n"));
    assert!(has(&p, 5, "unknown key `flavour` in `cloud`"), "{p:?}");
    assert!(has(&p, 5, "did you mean `flavor`?"), "{p:?}");
    // the misspelt required key is also reported missing, at its section
    assert!(has(&p, 3, "missing `cloud.flavor`"), "{p:?}");
}

#[test]
fn misplaced_key_names_its_section() {
    let p = problems(&format!("{MINIMAL}pod_cidr: 10.1.0.0/16\n"));
    assert!(has(&p, 17, "`pod_cidr` belongs under `networking:`"), "{p:?}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = edit("  name: demo\n", "  name: Demo_1\n  kubernets_version: \"1.37.2\"\n");
    let text = text.replace("    role: worker\n", "    role: wroker\n");
    let p = problems(&text);
    assert!(has(&p, 3, "did you mean `kubernetes_version`?"), "{p:?}");
    assert!(has(&p, 14, "did you mean `worker`?"), "{p:?}");
    assert_eq!(p.len(), 2, "{p:?}");
}

#[test]
fn duplicate_node_names() {
    let p = problems(&edit("  - name: worker-1\n", "  - name: master-1\n"));
    assert!(has(&p, 12, "duplicate node name `master-1` (first used on line 10)"), "{p:?}");
}

#[test]
fn no_master() {
    let p = problems(&edit("    role: master\n", "    role: worker\n"));
    assert!(has(&p, 9, "no node has `role: master`"), "{p:?}");
}

#[test]
fn invalid_names() {
    let p = problems(&edit("  name: demo\n", "  name: Demo.Cluster\n"));
    assert!(has(&p, 2, "is not a DNS label"), "{p:?}");
    let p = problems(&edit("  - name: worker-1\n", "  - name: Worker_1\n"));
    assert!(has(&p, 12, "node name \"Worker_1\" is not a DNS label"), "{p:?}");
    let long = "w".repeat(30);
    let p = problems(&edit("  name: demo\n", &format!("  name: {}\n", "c".repeat(38))).replace("worker-1", &long));
    assert!(has(&p, 12, "longer than 63 characters"), "{p:?}");
}

#[test]
fn malformed_cidrs() {
    let p = problems(&format!("{MINIMAL}networking:\n  pod_cidr: 10.1.0.0/33\n  service_cidr: 10.96.0.1/12\n"));
    assert!(has(&p, 18, "\"10.1.0.0/33\" is not a CIDR"), "{p:?}");
    assert!(has(&p, 19, "host bits are set: the network is 10.96.0.0/12"), "{p:?}");
}

#[test]
fn overlapping_pod_and_service_ranges() {
    let p = problems(&format!("{MINIMAL}networking:\n  pod_cidr: 10.96.0.0/16\n  service_cidr: 10.96.0.0/12\n"));
    assert!(has(&p, 19, "service_cidr 10.96.0.0/12 overlaps pod_cidr 10.96.0.0/16"), "{p:?}");
}

#[test]
fn pins_outside_pod_range_or_colliding_or_unknown() {
    let p = problems(&format!(
        "{MINIMAL}networking:\n  pod_cidrs:\n    master-1: 10.2.0.0/24\n    worker-1: 10.1.5.0/24\n    worker-9: 10.1.5.0/24\n"
    ));
    assert!(has(&p, 19, "10.2.0.0/24 of `master-1` is outside pod_cidr 10.1.0.0/16"), "{p:?}");
    assert!(has(&p, 21, "unknown node `worker-9`"), "{p:?}");
    assert!(has(&p, 21, "did you mean `worker-1`?"), "{p:?}");
    let p = problems(&format!("{MINIMAL}networking:\n  pod_cidrs:\n    master-1: 10.1.5.0/24\n    worker-1: 10.1.5.0/24\n"));
    assert!(has(&p, 20, "collides with the one pinned for `master-1`"), "{p:?}");
    let p = problems(&format!("{MINIMAL}networking:\n  pod_cidrs:\n    master-1: 10.1.4.0/23\n"));
    assert!(has(&p, 19, "is not a /24 (node_prefix)"), "{p:?}");
}

#[test]
fn pod_range_too_small_for_the_node_count() {
    let p = problems(
        &format!("{MINIMAL}networking:\n  pod_cidr: 10.1.0.0/24\n  node_prefix: 25\n")
            .replace("    role: worker\n", "    role: worker\n  - name: worker-2\n    role: worker\n"),
    );
    assert!(has(&p, 20, "holds 2 node ranges of /25, but there are 3 nodes"), "{p:?}");
}

#[test]
fn dns_ip_outside_service_range() {
    let p = problems(&format!("{MINIMAL}networking:\n  dns_ip: 10.1.0.10\n"));
    assert!(has(&p, 18, "dns_ip 10.1.0.10 is not a usable address of service_cidr 10.96.0.0/12"), "{p:?}");
    let p = problems(&format!("{MINIMAL}networking:\n  dns_ip: 10.96.0.1\n"));
    assert!(has(&p, 18, "`kubernetes` service's address"), "{p:?}");
}

#[test]
fn unsupported_kubernetes_version() {
    let p = problems(&edit("  name: demo\n", "  name: demo\n  kubernetes_version: \"1.30.2\"\n"));
    assert!(has(&p, 3, "Kubernetes 1.30.2 is not supported"), "{p:?}");
    let p = problems(&edit("  name: demo\n", "  name: demo\n  kubernetes_version: 1.30\n"));
    assert!(has(&p, 3, "found the number 1.3"), "{p:?}");
    let p = problems(&edit("  name: demo\n", "  name: demo\n  kubernetes_version: \"1.37\"\n"));
    assert!(has(&p, 3, "expected major.minor.patch"), "{p:?}");
}

#[test]
fn docker_tls_without_docker() {
    let p = problems(&format!("{MINIMAL}runtime:\n  kind: containerd\n  docker_tls: true\n"));
    assert!(has(&p, 19, "`docker_tls: true` needs `kind: docker`"), "{p:?}");
    assert!(parse(&format!("{MINIMAL}runtime:\n  kind: docker\n  docker_tls: true\n")).is_ok());
}

#[test]
fn floating_ip_needs_a_pool() {
    let text = edit("  floating_ip_pool: public\n", "").replace("    role: master\n", "    role: master\n    floating_ip: true\n");
    let p = problems(&text);
    assert!(has(&p, 11, "`cloud.floating_ip_pool` is not set"), "{p:?}");
}

#[test]
fn wrong_types_and_yaml_1_1_booleans() {
    let p = problems(&edit("    role: master\n", "    role: master\n    floating_ip: yes\n"));
    assert!(has(&p, 12, "write `true` (YAML 1.2 reads `yes`/`on` as strings)"), "{p:?}");
    let p = problems(&edit("  name: demo\n", "  name: 42\n"));
    assert!(has(&p, 2, "quote it: \"42\""), "{p:?}");
    let p = problems(&edit("nodes:\n", "nodes: {}\nx:\n"));
    assert!(has(&p, 9, "`nodes` must be a list"), "{p:?}");
}

#[test]
fn reserved_metadata_keys() {
    let p = problems(&edit("    role: worker\n", "    role: worker\n    metadata:\n      ansible_host_groups: x\n"));
    assert!(has(&p, 15, "is set by kos itself"), "{p:?}");
}

#[test]
fn several_masters_get_a_vip_and_an_odd_count() {
    use crate::settings::ApiEndpoint;
    let three =
        edit("  - name: worker-1\n", "  - name: master-2\n    role: master\n  - name: master-3\n    role: master\n  - name: worker-1\n");
    assert_eq!(parse(&three).unwrap().cluster.api_endpoint, ApiEndpoint::Vip, "the default with three masters");
    assert_eq!(parse(MINIMAL).unwrap().cluster.api_endpoint, ApiEndpoint::Master, "the default with one");
    // Two masters: no better than one against a loss, and worse for quorum.
    let p = problems(&edit("    role: worker\n", "    role: master\n"));
    assert!(has(&p, 9, "use an odd number of masters: 1 or 3"), "{p:?}");
    // Three masters pinned to the first one's address.
    let p = problems(&three.replace("  name: demo\n", "  name: demo\n  api_endpoint: master\n"));
    assert!(has(&p, 3, "3 masters but `api_endpoint: master`"), "{p:?}");
    let p = problems(&three.replace("  name: demo\n", "  name: demo\n  api_endpoint: vpi\n"));
    assert!(has(&p, 3, "did you mean `vip`?"), "{p:?}");
    // A floating IP needs an endpoint to put it on.
    let p = problems(&edit("  name: demo\n", "  name: demo\n  api_floating_ip: true\n"));
    assert!(has(&p, 3, "`api_endpoint` is `master`"), "{p:?}");
    assert!(parse(&three.replace("  name: demo\n", "  name: demo\n  api_floating_ip: true\n")).unwrap().cluster.api_floating_ip);
    // Octavia, also by the earlier spelling, with a floating IP on its load balancer.
    let octavia = three.replace("  name: demo\n", "  name: demo\n  api_endpoint: octavia\n  api_floating_ip: true\n");
    let s = parse(&octavia).unwrap();
    assert_eq!((s.cluster.api_endpoint, s.cluster.api_floating_ip), (ApiEndpoint::Octavia, true));
    let s = parse(&three.replace("  name: demo\n", "  name: demo\n  api_load_balancer: true\n")).unwrap();
    assert_eq!(s.cluster.api_endpoint, ApiEndpoint::Octavia);
    let p = problems(&three.replace("  name: demo\n", "  name: demo\n  api_load_balancer: true\n  api_endpoint: vip\n"));
    assert!(has(&p, 3, "both say how the API is reached"), "{p:?}");
}

#[test]
fn artifact_sources() {
    let s = parse(&format!("{MINIMAL}artifacts:\n  source: local\n  dir: ./bin\n")).unwrap();
    assert_eq!(s.artifacts.source, ArtifactSource::Local { dir: "./bin".into() });
    let p = problems(&format!("{MINIMAL}artifacts:\n  source: mirror\n"));
    assert!(has(&p, 17, "needs `artifacts.url`"), "{p:?}");
    let p = problems(&format!("{MINIMAL}artifacts:\n  url: https://x\n"));
    assert!(has(&p, 18, "only used with `source: mirror`"), "{p:?}");
    // The user's own images, with any source; a list, not a mapping.
    let s = parse(&format!("{MINIMAL}artifacts:\n  extra_images: [./apps, /srv/images]\n")).unwrap();
    assert_eq!(s.artifacts.source, ArtifactSource::Upstream);
    assert_eq!(s.artifacts.extra_images, [PathBuf::from("./apps"), PathBuf::from("/srv/images")]);
    assert!(parse(MINIMAL).unwrap().artifacts.extra_images.is_empty());
    let p = problems(&format!("{MINIMAL}artifacts:\n  extra_images: {{dir: ./apps}}\n"));
    assert!(has(&p, 18, "`artifacts.extra_images` must be a list of strings"), "{p:?}");
}

#[test]
fn yaml_syntax_error_is_located() {
    let p = problems("cluster:\n  name: demo\n   bad: indent\n");
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].0, 3, "{p:?}");
}

#[test]
fn diagnostics_print_as_file_line_col_with_the_fix() {
    let text = edit("  flavor: m1.tiny\n", "  flavour: m1.tiny\n");
    let err = parse(&text).unwrap_err();
    insta::assert_snapshot!(err.to_string());
}

#[test]
fn missing_sections_are_reported_at_the_top() {
    let p = problems("cluster:\n  name: demo\n");
    assert!(has(&p, 1, "missing `cloud`"), "{p:?}");
    assert!(has(&p, 1, "missing `nodes`"), "{p:?}");
    assert!(has(&p, 1, "missing `ssh`"), "{p:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Arbitrary text never panics the parser.
    #[test]
    fn fuzz_arbitrary_text_never_panics(text in "\\PC{0,400}") {
        let _ = parse(&text);
    }

    /// Arbitrary YAML-ish text (indentation, colons, dashes, quotes) never panics.
    #[test]
    fn fuzz_yamlish_text_never_panics(text in "([ \\-:\\[\\]{},'\"#&*!|>%@`a-z0-9./\\n]){0,300}") {
        let _ = parse(&text);
    }

    /// The example with one line replaced or one character changed: never a panic,
    /// and an error always names a line inside the file.
    #[test]
    fn fuzz_mutated_example_never_panics(line in 0usize..120, col in 0usize..60, replacement in "\\PC{0,12}") {
        let mut lines: Vec<String> = EXAMPLE.lines().map(String::from).collect();
        let i = line % lines.len();
        let l = &mut lines[i];
        let at = l.char_indices().map(|(b, _)| b).nth(col).unwrap_or(l.len());
        l.replace_range(at..(at + l[at..].chars().next().map_or(0, char::len_utf8)), &replacement);
        let text = lines.join("\n");
        if let Err(d) = parse(&text) {
            let total = text.lines().count() as u32 + 1;
            for p in &d.problems {
                prop_assert!(p.at.line <= total, "line {} beyond the file ({} lines)", p.at.line, total);
            }
            prop_assert!(!d.problems.is_empty());
        }
    }
}

#[test]
fn kubelet_thresholds_decode_and_bad_ones_are_named_with_their_fix() {
    let good = format!(
        "{MINIMAL}kubelet:\n  eviction_hard: {{nodefs.available: 5%, memory.available: 200Mi}}\n  image_gc_high_percent: 90\n  image_gc_low_percent: 80\n"
    );
    let s = parse(&good).unwrap();
    assert_eq!(s.kubelet.eviction_hard.get("nodefs.available").map(String::as_str), Some("5%"));
    assert_eq!(s.kubelet.eviction_hard.get("memory.available").map(String::as_str), Some("200Mi"));
    assert_eq!((s.kubelet.image_gc_high_percent, s.kubelet.image_gc_low_percent), (Some(90), Some(80)));
    assert_eq!(parse(MINIMAL).unwrap().kubelet, KubeletSettings::default(), "nothing set: the kubelet's own defaults");

    let bad = format!(
        "{MINIMAL}kubelet:\n  eviction_hard:\n    disk.available: 5%\n    nodefs.available: lots\n    imagefs.available: 120%\n  image_gc_high_percent: 70\n  image_gc_low_percent: 75\n"
    );
    let p = problems(&bad);
    assert!(has(&p, 19, "`kubelet.eviction_hard.disk.available` is not an eviction signal"), "{p:#?}");
    assert!(has(&p, 19, "nodefs.available, nodefs.inodesFree"), "the fix lists the signals: {p:#?}");
    assert!(has(&p, 20, "\"lots\" is neither a percentage nor a quantity"), "{p:#?}");
    assert!(has(&p, 21, "\"120%\" is neither"), "{p:#?}");
    assert!(has(&p, 23, "`kubelet.image_gc_low_percent` (75) must be below `image_gc_high_percent` (70)"), "{p:#?}");
}
