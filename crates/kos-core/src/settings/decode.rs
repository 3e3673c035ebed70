//! Located YAML tree → typed [`Settings`], collecting every problem on the way.
//!
//! Each section is read by hand rather than by `serde::Deserialize`: serde stops at the
//! first error and forgets where keys were, while a user wants every unknown key, wrong
//! type and missing key of the file at once, each with its line and a fix.

use super::document::{Key, Location, Node, ScalarKind, Value};
use super::*;

/// Keys each section accepts. Also used to tell a user which section a misplaced key
/// belongs to.
pub(super) const SCHEMA: &[(&str, &[&str])] = &[
    ("", &["cluster", "cloud", "nodes", "networking", "ssh", "runtime", "artifacts", "addons", "proxy", "kubelet"]),
    ("cluster", &["name", "kubernetes_version", "api_port", "api_endpoint", "api_floating_ip", "api_load_balancer"]),
    (
        "cloud",
        &[
            "name",
            "image",
            "flavor",
            "key_name",
            "network",
            "router",
            "floating_ip_pool",
            "security_groups",
            "availability_zone",
            "manage_security_group",
        ],
    ),
    ("nodes[]", &["name", "role", "flavor", "floating_ip", "metadata"]),
    ("networking", &["pod_cidr", "node_prefix", "service_cidr", "dns_ip", "domain", "pod_cidrs", "mtu"]),
    ("ssh", &["user", "private_key", "port", "bastion"]),
    ("ssh.bastion", &["host", "user", "port"]),
    ("runtime", &["kind", "docker_tls"]),
    ("artifacts", &["source", "url", "dir", "image_repository", "extra_images"]),
    ("addons", &["dns"]),
    ("proxy", &["http", "https", "no_proxy"]),
    ("kubelet", &["eviction_hard", "image_gc_high_percent", "image_gc_low_percent"]),
];

fn keys_of(section: &str) -> &'static [&'static str] {
    SCHEMA.iter().find(|(s, _)| *s == section).map(|(_, k)| *k).unwrap_or(&[])
}

/// A mapping being read: its path (for messages), position and entries.
struct Section<'n> {
    path: String,
    at: Location,
    entries: &'n [(Key, Node)],
}

impl<'n> Section<'n> {
    fn field(&self, key: &str) -> String {
        if self.path.is_empty() { key.to_string() } else { format!("{}.{key}", self.path) }
    }

    /// The value under `key`, treating an explicit null like an absent key.
    fn get(&self, key: &str) -> Option<&'n Node> {
        self.entry(key).map(|(_, v)| v).filter(|v| !matches!(v.value, Value::Scalar(_, ScalarKind::Null)))
    }

    fn entry(&self, key: &str) -> Option<(&'n Key, &'n Node)> {
        self.entries.iter().find(|(k, _)| k.name == key).map(|(k, v)| (k, v))
    }
}

static EMPTY: [(Key, Node); 0] = [];

#[derive(Default)]
struct Reader {
    problems: Vec<Diagnostic>,
    /// Set when a value could not be read at all (wrong type, bad syntax): then there
    /// are no settings to check further. Unknown keys and missing plain strings are
    /// reported but let the cross-field checks run, so one round shows every problem.
    fatal: bool,
}

impl Reader {
    /// A problem that leaves a value unreadable.
    fn report(&mut self, d: Diagnostic) {
        self.problems.push(d);
        self.fatal = true;
    }

    /// A problem that still lets the rest of the file be checked.
    fn note(&mut self, d: Diagnostic) {
        self.problems.push(d);
    }

    /// Open the mapping under `key` of `parent` (an empty one when absent); messages
    /// about the section point at its key.
    fn section_of<'n>(&mut self, parent: &Section<'n>, key: &str, schema: &str) -> Option<Section<'n>> {
        let path = parent.field(key);
        let at = parent.entry(key).map_or(parent.at, |(k, _)| k.at);
        self.section(parent.get(key), &path, schema, at)
    }

    /// Open a mapping; reports unknown keys (with the nearest known name).
    /// `schema` names the key list in [`SCHEMA`]; `at` is where messages about the
    /// section as a whole point.
    fn section<'n>(&mut self, node: Option<&'n Node>, path: &str, schema: &str, at: Location) -> Option<Section<'n>> {
        let Some(node) = node else {
            return Some(Section { path: path.to_string(), at, entries: &EMPTY });
        };
        match &node.value {
            Value::Map(entries) => {
                let known = keys_of(schema);
                for (key, _) in entries {
                    if !known.contains(&key.name.as_str()) {
                        self.note(unknown_key(path, schema, &key.name, key.at, known));
                    }
                }
                Some(Section { path: path.to_string(), at, entries })
            }
            Value::Scalar(_, ScalarKind::Null) => Some(Section { path: path.to_string(), at, entries: &EMPTY }),
            other => {
                let shown = if path.is_empty() { "the settings file".to_string() } else { format!("`{path}`") };
                self.report(
                    Diagnostic::new(node.at, format!("{shown} must be a mapping of keys, found {}", other.describe()))
                        .fix(format!("write `key: value` lines below it; accepted keys: {}", keys_of(schema).join(", "))),
                );
                None
            }
        }
    }

    fn required<'n>(&mut self, sec: &Section<'n>, key: &str, example: &str) -> Option<&'n Node> {
        let node = sec.get(key);
        if node.is_none() {
            let field = sec.field(key);
            self.report(Diagnostic::new(sec.at, format!("missing `{field}`")).fix(format!("add `{key}: {example}`")));
        }
        node
    }

    fn string(&mut self, node: &Node, field: &str) -> Option<String> {
        match &node.value {
            Value::Scalar(text, ScalarKind::Str) => Some(text.clone()),
            Value::Scalar(text, ScalarKind::Int | ScalarKind::Bool) => {
                self.report(
                    Diagnostic::new(node.at, format!("`{field}` must be a string, found {}", node.value.describe()))
                        .fix(format!("quote it: \"{text}\"")),
                );
                None
            }
            Value::Scalar(text, ScalarKind::Float) => {
                self.report(
                    Diagnostic::new(
                        node.at,
                        format!("`{field}` must be a string, found the number {text} (YAML drops trailing zeros of numbers)"),
                    )
                    .fix("quote the value exactly as meant, e.g. \"1.30.2\""),
                );
                None
            }
            other => {
                self.report(Diagnostic::new(node.at, format!("`{field}` must be a string, found {}", other.describe())));
                None
            }
        }
    }

    fn opt_string(&mut self, sec: &Section<'_>, key: &str) -> Option<String> {
        sec.get(key).and_then(|n| self.string(n, &sec.field(key)))
    }

    /// A required string. When it is missing the problem is noted and an empty string
    /// stands in, so the cross-field checks still run (none of them reads these values).
    fn req_string(&mut self, sec: &Section<'_>, key: &str, example: &str) -> Option<String> {
        match sec.get(key) {
            Some(n) => self.string(n, &sec.field(key)),
            None => {
                let field = sec.field(key);
                self.note(Diagnostic::new(sec.at, format!("missing `{field}`")).fix(format!("add `{key}: {example}`")));
                Some(String::new())
            }
        }
    }

    fn boolean(&mut self, sec: &Section<'_>, key: &str, default: bool) -> Option<bool> {
        let Some(node) = sec.get(key) else { return Some(default) };
        match &node.value {
            Value::Scalar(t, ScalarKind::Bool) => Some(t == "true"),
            other => {
                let hint = match other {
                    Value::Scalar(t, ScalarKind::Str) if ["yes", "on", "y"].contains(&t.to_lowercase().as_str()) => {
                        "write `true` (YAML 1.2 reads `yes`/`on` as strings)"
                    }
                    Value::Scalar(t, ScalarKind::Str) if ["no", "off", "n"].contains(&t.to_lowercase().as_str()) => {
                        "write `false` (YAML 1.2 reads `no`/`off` as strings)"
                    }
                    _ => "write `true` or `false`",
                };
                self.report(
                    Diagnostic::new(node.at, format!("`{}` must be true or false, found {}", sec.field(key), other.describe())).fix(hint),
                );
                None
            }
        }
    }

    fn integer(&mut self, sec: &Section<'_>, key: &str, default: u64, range: std::ops::RangeInclusive<u64>) -> Option<u64> {
        let Some(node) = sec.get(key) else { return Some(default) };
        let field = sec.field(key);
        let value = match &node.value {
            Value::Scalar(t, ScalarKind::Int) => t.parse::<u64>().ok(),
            _ => None,
        };
        match value {
            Some(v) if range.contains(&v) => Some(v),
            _ => {
                self.report(
                    Diagnostic::new(node.at, format!("`{field}` must be a whole number from {} to {}", range.start(), range.end()))
                        .fix(format!("write e.g. `{key}: {default}`")),
                );
                None
            }
        }
    }

    /// A string parsed by `parse`; on failure reports `what` with an example.
    fn parsed<T>(
        &mut self,
        sec: &Section<'_>,
        key: &str,
        what: &str,
        example: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<Option<T>> {
        let Some(node) = sec.get(key) else { return Some(None) };
        let field = sec.field(key);
        let text = self.string(node, &field)?;
        match parse(&text) {
            Ok(v) => Some(Some(v)),
            Err(why) => {
                self.report(
                    Diagnostic::new(node.at, format!("`{field}`: {text:?} is not {what}{}", reason(&why)))
                        .fix(format!("write e.g. `{key}: {example}`")),
                );
                None
            }
        }
    }

    /// One of a fixed set of words.
    fn choice<T: Copy>(&mut self, sec: &Section<'_>, key: &str, default: T, choices: &[(&str, T)]) -> Option<T> {
        let Some(node) = sec.get(key) else { return Some(default) };
        let field = sec.field(key);
        let text = self.string(node, &field)?;
        if let Some((_, v)) = choices.iter().find(|(w, _)| *w == text) {
            return Some(*v);
        }
        let words: Vec<&str> = choices.iter().map(|(w, _)| *w).collect();
        let mut d = Diagnostic::new(node.at, format!("`{field}`: unknown value {text:?}"));
        d = match nearest(&text, &words) {
            Some(near) => d.fix(format!("did you mean `{near}`? accepted: {}", words.join(", "))),
            None => d.fix(format!("accepted: {}", words.join(", "))),
        };
        self.report(d);
        None
    }

    fn string_list(&mut self, sec: &Section<'_>, key: &str) -> Option<Vec<String>> {
        let Some(node) = sec.get(key) else { return Some(Vec::new()) };
        let field = sec.field(key);
        match &node.value {
            Value::Seq(items) => {
                let mut out = Vec::new();
                let mut ok = true;
                for (i, item) in items.iter().enumerate() {
                    match self.string(item, &format!("{field}[{i}]")) {
                        Some(s) => out.push(s),
                        None => ok = false,
                    }
                }
                ok.then_some(out)
            }
            // `no_proxy: "a,b"` is how people write it in environment variables.
            Value::Scalar(t, ScalarKind::Str) => Some(t.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()),
            other => {
                self.report(
                    Diagnostic::new(node.at, format!("`{field}` must be a list of strings, found {}", other.describe()))
                        .fix(format!("write `{key}: [a, b]`")),
                );
                None
            }
        }
    }

    /// A mapping of free keys to string values.
    fn string_map(&mut self, sec: &Section<'_>, key: &str) -> Option<Vec<(Key, String, Location)>> {
        let Some(node) = sec.get(key) else { return Some(Vec::new()) };
        let field = sec.field(key);
        match &node.value {
            Value::Map(entries) => {
                let mut out = Vec::new();
                let mut ok = true;
                for (k, v) in entries {
                    match &v.value {
                        // Metadata values are strings for Nova; numbers and booleans are
                        // taken as written rather than rejected.
                        Value::Scalar(t, ScalarKind::Str | ScalarKind::Int | ScalarKind::Bool | ScalarKind::Float) => {
                            out.push((k.clone(), t.clone(), v.at))
                        }
                        other => {
                            ok = false;
                            self.report(Diagnostic::new(
                                v.at,
                                format!("`{field}.{}` must be a plain value, found {}", k.name, other.describe()),
                            ));
                        }
                    }
                }
                ok.then_some(out)
            }
            other => {
                self.report(
                    Diagnostic::new(node.at, format!("`{field}` must be a mapping, found {}", other.describe()))
                        .fix(format!("write `{key}:` followed by indented `name: value` lines")),
                );
                None
            }
        }
    }
}

/// The closest of `candidates` to `word`, if it is close enough to be a typo.
pub(super) fn nearest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(word, c), *c))
        .filter(|(score, c)| *score >= 0.85 || strsim::levenshtein(word, c) <= 2)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

fn unknown_key(path: &str, schema: &str, key: &str, at: Location, known: &[&str]) -> Diagnostic {
    let shown = if path.is_empty() { format!("unknown key `{key}`") } else { format!("unknown key `{key}` in `{path}`") };
    let d = Diagnostic::new(at, shown);
    if let Some(near) = nearest(key, known) {
        return d.fix(format!("did you mean `{near}`?"));
    }
    // A key of another section, put at the wrong level.
    if let Some((home, _)) = SCHEMA.iter().find(|(s, keys)| *s != schema && !s.is_empty() && keys.contains(&key)) {
        let home = home.trim_end_matches("[]");
        return d.fix(format!("`{key}` belongs under `{home}:`"));
    }
    d.fix(format!("accepted keys here: {}", known.join(", ")))
}

fn reason(why: &str) -> String {
    if why.is_empty() { String::new() } else { format!(" ({why})") }
}

fn parse_v4net(text: &str) -> Result<Ipv4Net, String> {
    let net: Ipv4Net = text.parse().map_err(|_| "expected an IPv4 network a.b.c.d/len".to_string())?;
    if net.network() != net.addr() {
        return Err(format!("host bits are set: the network is {}", net.trunc()));
    }
    Ok(net)
}

/// Decode the tree. Returns settings only when every field could be read.
pub(super) fn decode(path: &Path, root: &Node) -> (Option<Settings>, Vec<Diagnostic>) {
    let mut r = Reader::default();
    let settings = read_settings(&mut r, path, root);
    (settings.filter(|_| !r.fatal), r.problems)
}

fn read_settings(r: &mut Reader, path: &Path, root: &Node) -> Option<Settings> {
    let top = r.section(Some(root), "", "", Location { line: 1, column: 1 })?;
    let cluster = read_cluster(r, &top);
    let cloud = read_cloud(r, &top);
    let nodes = read_nodes(r, &top);
    let networking = read_networking(r, &top);
    let ssh = read_ssh(r, &top);
    let runtime = read_runtime(r, &top);
    let artifacts = read_artifacts(r, &top);
    let addons = read_addons(r, &top);
    let proxy = read_proxy(r, &top);
    let kubelet = read_kubelet(r, &top);
    let (mut cluster, endpoint_said) = cluster?;
    let nodes = nodes?;
    // Not said: the master's own address with one master, a VIP with several.
    if !endpoint_said && nodes.iter().filter(|n| n.role == Role::Master).count() > 1 {
        cluster.api_endpoint = ApiEndpoint::Vip;
    }
    Some(Settings {
        source: path.to_path_buf(),
        cluster,
        cloud: cloud?,
        nodes,
        networking: networking?,
        ssh: ssh?,
        runtime: runtime?,
        artifacts: artifacts?,
        addons: addons?,
        proxy: proxy?,
        kubelet: kubelet?,
    })
}

/// `cluster:`, and whether it says how the API is reached (else `api_endpoint` is the
/// one-master default, which the caller changes with several masters).
fn read_cluster(r: &mut Reader, top: &Section<'_>) -> Option<(ClusterSettings, bool)> {
    r.required(top, "cluster", "{ name: demo }")?;
    let sec = r.section_of(top, "cluster", "cluster")?;
    let name = r.req_string(&sec, "name", "demo");
    let version = r.parsed(&sec, "kubernetes_version", "a Kubernetes version", "\"1.37.2\"", |t| {
        t.parse::<KubeVersion>().map_err(|()| "expected major.minor.patch".to_string())
    });
    let api_port = r.integer(&sec, "api_port", 6443, 1..=65535);
    const ENDPOINTS: &[(&str, Option<ApiEndpoint>)] =
        &[("master", Some(ApiEndpoint::Master)), ("vip", Some(ApiEndpoint::Vip)), ("octavia", Some(ApiEndpoint::Octavia))];
    let endpoint = r.choice(&sec, "api_endpoint", None, ENDPOINTS);
    // The earlier spelling: `api_load_balancer: true` is Octavia.
    let lb = r.boolean(&sec, "api_load_balancer", false);
    if let (Some(node), Some(Some(_)), Some(true)) = (sec.get("api_load_balancer"), endpoint, lb) {
        r.note(
            Diagnostic::new(node.at, "`cluster.api_load_balancer` and `cluster.api_endpoint` both say how the API is reached")
                .fix("keep `api_endpoint` (`api_load_balancer: true` is `api_endpoint: octavia`) and remove `api_load_balancer`"),
        );
    }
    let floating = r.boolean(&sec, "api_floating_ip", false);
    let said = match (endpoint?, lb?) {
        (Some(e), _) => Some(e),
        (None, true) => Some(ApiEndpoint::Octavia),
        (None, false) => None,
    };
    let cluster = ClusterSettings {
        name: name?,
        kubernetes_version: version?.unwrap_or(DEFAULT_KUBERNETES_VERSION),
        api_port: api_port? as u16,
        api_endpoint: said.unwrap_or(ApiEndpoint::Master),
        api_floating_ip: floating?,
    };
    Some((cluster, said.is_some()))
}

fn read_cloud(r: &mut Reader, top: &Section<'_>) -> Option<CloudSettings> {
    r.required(top, "cloud", "{ image: debian-12, flavor: m1.medium, network: k8s-net, router: k8s-router }")?;
    let sec = r.section_of(top, "cloud", "cloud")?;
    let name = r.opt_string(&sec, "name");
    let image = r.req_string(&sec, "image", "debian-12");
    let flavor = r.req_string(&sec, "flavor", "m1.medium");
    let key_name = r.opt_string(&sec, "key_name");
    let network = r.req_string(&sec, "network", "k8s-net");
    let router = r.req_string(&sec, "router", "k8s-router");
    let pool = r.opt_string(&sec, "floating_ip_pool");
    let groups = r.string_list(&sec, "security_groups");
    let az = r.opt_string(&sec, "availability_zone");
    let manage = r.boolean(&sec, "manage_security_group", true);
    Some(CloudSettings {
        name,
        image: image?,
        flavor: flavor?,
        key_name,
        network: network?,
        router: router?,
        floating_ip_pool: pool,
        security_groups: groups?,
        availability_zone: az,
        manage_security_group: manage?,
    })
}

fn read_nodes(r: &mut Reader, top: &Section<'_>) -> Option<Vec<NodeSettings>> {
    let node = r.required(top, "nodes", "[{ name: master-1, role: master }]")?;
    let Value::Seq(items) = &node.value else {
        r.report(
            Diagnostic::new(node.at, format!("`nodes` must be a list, found {}", node.value.describe()))
                .fix("write one `- name: ...` entry per node"),
        );
        return None;
    };
    let mut out = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        match read_node(r, item, i) {
            Some(n) => out.push(n),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn read_node(r: &mut Reader, item: &Node, i: usize) -> Option<NodeSettings> {
    let sec = r.section(Some(item), &format!("nodes[{i}]"), "nodes[]", item.at)?;
    let name = r.req_string(&sec, "name", "worker-1");
    let role = match r.required(&sec, "role", "worker") {
        Some(_) => r.choice(&sec, "role", Role::Worker, &[("master", Role::Master), ("worker", Role::Worker)]),
        None => None,
    };
    let flavor = r.opt_string(&sec, "flavor");
    let fip = r.boolean(&sec, "floating_ip", false);
    let metadata = r.string_map(&sec, "metadata");
    Some(NodeSettings {
        name: name?,
        role: role?,
        flavor,
        floating_ip: fip?,
        metadata: metadata?.into_iter().map(|(k, v, _)| (k.name, v)).collect(),
    })
}

fn read_networking(r: &mut Reader, top: &Section<'_>) -> Option<Networking> {
    let sec = r.section_of(top, "networking", "networking")?;
    let pod_cidr = r.parsed(&sec, "pod_cidr", "a CIDR", "10.1.0.0/16", parse_v4net);
    let node_prefix = r.integer(&sec, "node_prefix", 24, 1..=32);
    let service_cidr = r.parsed(&sec, "service_cidr", "a CIDR", "10.96.0.0/12", parse_v4net);
    let dns_ip = r.parsed(&sec, "dns_ip", "an IPv4 address", "10.96.0.10", |t| t.parse::<Ipv4Addr>().map_err(|_| String::new()));
    let domain = r.opt_string(&sec, "domain");
    let mtu = r.integer(&sec, "mtu", 0, 0..=65535);
    let pins = r.string_map(&sec, "pod_cidrs").and_then(|entries| {
        let mut pins = BTreeMap::new();
        let mut ok = true;
        for (key, value, at) in entries {
            match parse_v4net(&value) {
                Ok(net) => {
                    pins.insert(key.name, net);
                }
                Err(why) => {
                    ok = false;
                    r.report(
                        Diagnostic::new(at, format!("`networking.pod_cidrs.{}`: {value:?} is not a CIDR{}", key.name, reason(&why)))
                            .fix("write e.g. `master-1: 10.1.0.0/24`"),
                    );
                }
            }
        }
        ok.then_some(pins)
    });
    let service_cidr: Ipv4Net = service_cidr?.unwrap_or(Ipv4Net::new(Ipv4Addr::new(10, 96, 0, 0), 12).ok()?);
    // Default DNS address: the tenth address of the service range, as kubeadm does.
    let default_dns = Ipv4Addr::from(u32::from(service_cidr.network()).saturating_add(10));
    Some(Networking {
        pod_cidr: pod_cidr?.unwrap_or(Ipv4Net::new(Ipv4Addr::new(10, 1, 0, 0), 16).ok()?),
        node_prefix: node_prefix? as u8,
        service_cidr,
        dns_ip: dns_ip?.unwrap_or(default_dns),
        domain: domain.unwrap_or_else(|| "cluster.local".to_string()),
        pod_cidrs: pins?,
        mtu: mtu.map(|m| (m != 0).then_some(m as u16))?,
    })
}

fn read_ssh(r: &mut Reader, top: &Section<'_>) -> Option<SshSettings> {
    r.required(top, "ssh", "{ user: debian, private_key: ~/.ssh/id_ed25519 }")?;
    let sec = r.section_of(top, "ssh", "ssh")?;
    let user = r.req_string(&sec, "user", "debian");
    let key = r.req_string(&sec, "private_key", "~/.ssh/id_ed25519");
    let port = r.integer(&sec, "port", 22, 1..=65535);
    let bastion = match sec.get("bastion") {
        None => Some(None),
        Some(_) => {
            let bsec = r.section_of(&sec, "bastion", "ssh.bastion");
            bsec.and_then(|bsec| {
                let host = r.req_string(&bsec, "host", "bastion.example.org");
                let buser = r.opt_string(&bsec, "user");
                let bport = r.integer(&bsec, "port", 22, 1..=65535);
                Some(Some(Bastion { host: host?, user: buser.or_else(|| user.clone())?, port: bport? as u16 }))
            })
        }
    };
    Some(SshSettings { user: user?, private_key: PathBuf::from(key?), port: port? as u16, bastion: bastion? })
}

fn read_runtime(r: &mut Reader, top: &Section<'_>) -> Option<Runtime> {
    let sec = r.section_of(top, "runtime", "runtime")?;
    let kind = r.choice(&sec, "kind", RuntimeKind::Containerd, &[("containerd", RuntimeKind::Containerd), ("docker", RuntimeKind::Docker)]);
    let tls = r.boolean(&sec, "docker_tls", false);
    Some(Runtime { kind: kind?, docker_tls: tls? })
}

#[derive(Clone, Copy)]
enum SourceWord {
    Upstream,
    Mirror,
    Local,
}

fn read_artifacts(r: &mut Reader, top: &Section<'_>) -> Option<Artifacts> {
    let sec = r.section_of(top, "artifacts", "artifacts")?;
    let word = r.choice(
        &sec,
        "source",
        SourceWord::Upstream,
        &[("upstream", SourceWord::Upstream), ("mirror", SourceWord::Mirror), ("local", SourceWord::Local)],
    )?;
    let url = r.opt_string(&sec, "url");
    let dir = r.opt_string(&sec, "dir");
    let repo = r.opt_string(&sec, "image_repository");
    let extra_images = r.string_list(&sec, "extra_images");
    let source = match word {
        SourceWord::Upstream => {
            for key in ["url", "dir"] {
                if let Some(n) = sec.get(key) {
                    r.report(
                        Diagnostic::new(n.at, format!("`artifacts.{key}` is only used with `source: mirror` or `source: local`"))
                            .fix(format!("add `source: {}` or remove `{key}`", if key == "url" { "mirror" } else { "local" })),
                    );
                }
            }
            ArtifactSource::Upstream
        }
        SourceWord::Mirror => match url {
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                ArtifactSource::Mirror { url: url.trim_end_matches('/').to_string() }
            }
            Some(url) => {
                let at = sec.get("url").map_or(sec.at, |n| n.at);
                r.report(
                    Diagnostic::new(at, format!("`artifacts.url` {url:?} is not an http(s) URL"))
                        .fix("write e.g. `url: https://mirror.example.org/kubernetes-release/release`"),
                );
                return None;
            }
            None => {
                r.report(
                    Diagnostic::new(sec.at, "`artifacts.source: mirror` needs `artifacts.url`")
                        .fix("add `url: https://mirror.example.org/kubernetes-release/release` (same layout as dl.k8s.io/release)"),
                );
                return None;
            }
        },
        SourceWord::Local => match dir {
            Some(dir) => ArtifactSource::Local { dir: PathBuf::from(dir) },
            None => {
                r.report(
                    Diagnostic::new(sec.at, "`artifacts.source: local` needs `artifacts.dir`")
                        .fix("add `dir: ./artifacts` (a folder with kubelet, kube-proxy, kubectl and SHA256SUMS)"),
                );
                return None;
            }
        },
    };
    Some(Artifacts {
        source,
        image_repository: repo.unwrap_or_else(|| "registry.k8s.io".to_string()),
        extra_images: extra_images?.into_iter().map(PathBuf::from).collect(),
    })
}

fn read_addons(r: &mut Reader, top: &Section<'_>) -> Option<Addons> {
    let sec = r.section_of(top, "addons", "addons")?;
    let dns = r.choice(&sec, "dns", Some(DnsAddon::CoreDns), &[("coredns", Some(DnsAddon::CoreDns)), ("none", None)]);
    Some(Addons { dns: dns? })
}

fn read_kubelet(r: &mut Reader, top: &Section<'_>) -> Option<KubeletSettings> {
    let sec = r.section_of(top, "kubelet", "kubelet")?;
    let entries = r.string_map(&sec, "eviction_hard");
    let high = r.integer(&sec, "image_gc_high_percent", 0, 0..=100);
    let low = r.integer(&sec, "image_gc_low_percent", 0, 0..=100);
    let mut eviction_hard = BTreeMap::new();
    let mut ok = true;
    for (key, value, at) in entries? {
        if !KUBELET_EVICTION_SIGNALS.contains(&key.name.as_str()) {
            ok = false;
            r.report(
                Diagnostic::new(key.at, format!("`kubelet.eviction_hard.{}` is not an eviction signal of the kubelet", key.name))
                    .fix(format!("use one of {}", KUBELET_EVICTION_SIGNALS.join(", "))),
            );
        } else if !eviction_quantity(&value) {
            ok = false;
            r.report(
                Diagnostic::new(at, format!("`kubelet.eviction_hard.{}`: {value:?} is neither a percentage nor a quantity", key.name))
                    .fix(format!("write e.g. `{}: 5%` or `{}: 2Gi`", key.name, key.name)),
            );
        } else {
            eviction_hard.insert(key.name, value);
        }
    }
    let (high, low) = (high?, low?);
    let given = |key: &str| sec.get(key).is_some();
    let (high, low) = (given("image_gc_high_percent").then_some(high as u8), given("image_gc_low_percent").then_some(low as u8));
    if let (Some(h), Some(l)) = (high, low)
        && l >= h
    {
        ok = false;
        let at = sec.get("image_gc_low_percent").map_or(sec.at, |n| n.at);
        r.report(
            Diagnostic::new(at, format!("`kubelet.image_gc_low_percent` ({l}) must be below `image_gc_high_percent` ({h})"))
                .fix("the kubelet frees images down to the low mark once disk use passes the high one"),
        );
    }
    ok.then_some(KubeletSettings { eviction_hard, image_gc_high_percent: high, image_gc_low_percent: low })
}

/// `5%`, `12.5%`, or a Kubernetes quantity (`100Mi`, `2Gi`, `500M`, `1000`).
fn eviction_quantity(text: &str) -> bool {
    if let Some(p) = text.strip_suffix('%') {
        return p.parse::<f64>().is_ok_and(|p| (0.0..=100.0).contains(&p));
    }
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &text[digits.len()..];
    !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) && ["", "Ki", "Mi", "Gi", "Ti", "k", "M", "G", "T"].contains(&suffix)
}

fn read_proxy(r: &mut Reader, top: &Section<'_>) -> Option<Option<Proxy>> {
    if top.get("proxy").is_none() {
        return Some(None);
    }
    let sec = r.section_of(top, "proxy", "proxy")?;
    let url = |t: &str| {
        if t.starts_with("http://") || t.starts_with("https://") { Ok(t.to_string()) } else { Err(String::new()) }
    };
    let http = r.parsed(&sec, "http", "an http(s) URL", "http://proxy.example.org:3128", url);
    let https = r.parsed(&sec, "https", "an http(s) URL", "http://proxy.example.org:3128", url);
    let no_proxy = r.string_list(&sec, "no_proxy");
    Some(Some(Proxy { http: http?, https: https?, no_proxy: no_proxy? }))
}
