//! charts/berth-daemon with `gcIpTargets.enabled` (IP target GC of crashed sidecars):
//! cluster mode renders the flags and adds exactly the RBAC the GC calls; node mode
//! ignores the value.

use berth_charts::render::{template, Rendered};
use clap::Parser as _;
use serde_json::{json, Value};

const CHART: &str = "berth-daemon";

fn args(rendered: &Rendered) -> Vec<String> {
    let workloads: Vec<&Value> = rendered
        .all("Deployment")
        .into_iter()
        .chain(rendered.all("DaemonSet"))
        .collect();
    workloads[0]["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn gc_in_cluster_mode_renders_its_flags_and_rbac() {
    let rendered = template(
        CHART,
        "cluster",
        &["gcIpTargets.enabled=true", "gcIpTargets.grace=90s"],
    );
    let args = args(&rendered);
    let line = std::iter::once("berth-daemon".to_owned()).chain(args.iter().cloned());
    let cli = berth_daemon::cli::Cli::try_parse_from(line).unwrap();
    assert!(cli.gc_ip_targets, "{args:?}");
    assert_eq!(cli.gc_grace, std::time::Duration::from_secs(90));
    assert_eq!(cli.mode, berth_daemon::cli::Mode::Cluster);
    let cluster_roles = rendered.all("ClusterRole");
    assert_eq!(
        cluster_roles[0]["rules"],
        json!([
            {"apiGroups": [""], "resources": ["nodes"], "verbs": ["list", "watch"]},
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]},
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list", "get", "update", "delete"]},
            {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
        ])
    );
}

#[test]
fn gc_is_off_by_default_and_in_node_mode() {
    for (values, set) in [
        ("cluster", &[][..]),
        ("node", &["gcIpTargets.enabled=true"][..]),
    ] {
        let rendered = template(CHART, values, set);
        assert!(
            !args(&rendered).iter().any(|a| a.starts_with("--gc-")),
            "{values}"
        );
        assert_eq!(
            rendered.all("ClusterRole")[0]["rules"],
            json!([{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list", "watch"]}]),
            "{values}"
        );
    }
}
