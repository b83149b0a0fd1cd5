//! charts/berth-daemon's notice DaemonSet (`notice.enabled`, beside cluster mode): lints
//! and validates, its own ServiceAccount without the IAM role, RBAC get/patch on nodes
//! and Events in `default` and nothing else, selectors apart from the Deployment's, and its command line is the
//! daemon's.

use berth_charts::render::{lint, template, try_template, validate, Rendered};
use clap::Parser as _;
use serde_json::{json, Value};

const CHART: &str = "berth-daemon";
const NAMESPACE: &str = "berth-system";

fn notice_daemonset(rendered: &Rendered) -> &Value {
    let daemonsets = rendered.all("DaemonSet");
    assert_eq!(daemonsets.len(), 1, "{}", rendered.text);
    daemonsets[0]
}

#[test]
fn the_notice_daemonset_lints_validates_and_sits_beside_the_deployment() {
    lint(CHART, "notice");
    let rendered = template(CHART, "notice", &[]);
    validate(&format!("{CHART}-notice"), &rendered.text);
    assert_eq!(rendered.all("Deployment").len(), 1);
    let ds = notice_daemonset(&rendered);
    assert_eq!(ds["metadata"]["name"], "berth-daemon-notice");
    // Its pods are not the Deployment's (nor its PDB's, nor the metrics Service's).
    let deployment = rendered.all("Deployment")[0];
    let mine = &ds["spec"]["selector"]["matchLabels"];
    let theirs = &deployment["spec"]["selector"]["matchLabels"];
    assert_ne!(
        mine["app.kubernetes.io/name"],
        theirs["app.kubernetes.io/name"]
    );
    let labels = &ds["spec"]["template"]["metadata"]["labels"];
    assert_ne!(
        labels["app.kubernetes.io/name"],
        theirs["app.kubernetes.io/name"]
    );
    let spec = &ds["spec"]["template"]["spec"];
    assert_eq!(
        spec["nodeSelector"],
        json!({"karpenter.sh/capacity-type": "spot"})
    );
    assert_eq!(spec["tolerations"], json!([{"operator": "Exists"}]));
    assert_eq!(spec["priorityClassName"], "system-node-critical");
}

#[test]
fn notice_pods_may_get_and_patch_nodes_publish_events_and_have_no_iam_role() {
    let rendered = template(CHART, "notice", &[]);
    let sa = notice_daemonset(&rendered)["spec"]["template"]["spec"]["serviceAccountName"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(sa, "berth-daemon-notice");
    let account = rendered.get("ServiceAccount", &sa);
    assert!(
        account["metadata"]["annotations"].is_null(),
        "no IRSA role on the notice pods: {account}"
    );
    let role = rendered.get("ClusterRole", &sa);
    assert_eq!(
        role["rules"],
        json!([{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "patch"]}])
    );
    let binding = rendered.get("ClusterRoleBinding", &sa);
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": sa, "namespace": NAMESPACE}])
    );
    // Its one Role: Events (about its Node, in `default`); no ConfigMap or Lease access.
    let bound: Vec<&serde_json::Value> = rendered
        .all("RoleBinding")
        .into_iter()
        .filter(|b| b["subjects"][0]["name"] == sa.as_str())
        .collect();
    assert_eq!(bound.len(), 1, "{bound:?}");
    assert_eq!(bound[0]["metadata"]["namespace"], "default");
    let events = rendered.get("Role", bound[0]["roleRef"]["name"].as_str().unwrap());
    assert_eq!(
        events["rules"],
        json!([{"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]}])
    );
    let without = template(CHART, "notice", &["rbac.create=false"]);
    assert!(without.all("ClusterRole").is_empty());
    assert_eq!(without.all("DaemonSet").len(), 1);
}

#[test]
fn the_notice_command_line_is_the_daemons() {
    let rendered = template(CHART, "notice", &[]);
    let container = &notice_daemonset(&rendered)["spec"]["template"]["spec"]["containers"][0];
    let mut line = vec!["berth-daemon".to_owned()];
    line.extend(
        container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_owned()),
    );
    let env: Vec<&str> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(env, ["NODE_NAME", "POD_NAMESPACE", "POD_NAME"]);
    line.push("--node-name=from-the-pod".into());
    let cli =
        berth_daemon::cli::Cli::try_parse_from(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
    assert_eq!(cli.mode, berth_daemon::cli::Mode::Notice);
    assert_eq!(cli.spot_poll, std::time::Duration::from_secs(2));
    cli.validate().unwrap_or_else(|e| panic!("{line:?}: {e}"));
}

#[test]
fn notice_needs_cluster_mode_and_is_off_by_default() {
    let out = try_template(CHART, "node", &["notice.enabled=true"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("notice.enabled needs mode: cluster"),
        "{stderr}"
    );
    for values in ["node", "cluster", "everything"] {
        let rendered = template(CHART, values, &[]);
        assert!(
            !rendered.text.contains("--mode=notice"),
            "{values}: notice is opt-in"
        );
    }
}
