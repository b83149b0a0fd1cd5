//! charts/berth-daemon with a real helm: lint, the DaemonSet/Deployment switch, RBAC
//! per mode, the Cast.ai key only ever from a Secret, security contexts, the PDB, and
//! every rendered flag and variable parsed by the daemon's real command line.

use berth_charts::render::{lint, template, try_template, validate, Rendered};
use clap::{CommandFactory as _, Parser as _};
use serde_json::{json, Value};

const CHART: &str = "berth-daemon";
const NAMESPACE: &str = "berth-system";
const EXAMPLES: [&str; 3] = ["node", "cluster", "everything"];

fn pod_spec<'a>(rendered: &'a Rendered, kind: &str) -> &'a Value {
    let workloads = rendered.all(kind);
    assert_eq!(workloads.len(), 1, "one {kind}:\n{}", rendered.text);
    &workloads[0]["spec"]["template"]["spec"]
}

fn workload(rendered: &Rendered) -> &Value {
    let daemonsets = rendered.all("DaemonSet");
    let deployments = rendered.all("Deployment");
    match (daemonsets.as_slice(), deployments.as_slice()) {
        ([one], []) | ([], [one]) => one,
        _ => panic!("exactly one DaemonSet or Deployment:\n{}", rendered.text),
    }
}

fn container(rendered: &Rendered) -> &Value {
    &workload(rendered)["spec"]["template"]["spec"]["containers"][0]
}

fn args(rendered: &Rendered) -> Vec<String> {
    container(rendered)["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

fn env_names(rendered: &Rendered) -> Vec<String> {
    container(rendered)["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The rules of the Role in the release namespace.
fn namespaced_rules(rendered: &Rendered) -> Vec<Value> {
    let role = rendered
        .all("Role")
        .into_iter()
        .find(|r| r["metadata"]["namespace"] == NAMESPACE)
        .unwrap_or_else(|| panic!("a Role in {NAMESPACE}:\n{}", rendered.text));
    role["rules"].as_array().unwrap().clone()
}

#[test]
fn every_example_values_file_lints_and_validates() {
    for values in EXAMPLES {
        lint(CHART, values);
        let rendered = template(CHART, values, &[]);
        validate(&format!("{CHART}-{values}"), &rendered.text);
    }
}

#[test]
fn node_mode_is_a_daemonset_on_every_node_without_leases() {
    let rendered = template(CHART, "node", &[]);
    assert!(rendered.all("Deployment").is_empty());
    assert!(
        rendered.all("PodDisruptionBudget").is_empty(),
        "no PDB in node mode"
    );
    let pod = pod_spec(&rendered, "DaemonSet");
    assert_eq!(pod["priorityClassName"], "system-node-critical");
    assert_eq!(pod["tolerations"], json!([{"operator": "Exists"}]));
    assert!(args(&rendered).contains(&"--mode=node".to_owned()));
    let node_name = &container(&rendered)["env"][0];
    assert_eq!(node_name["name"], "NODE_NAME");
    assert_eq!(
        node_name["valueFrom"]["fieldRef"]["fieldPath"],
        "spec.nodeName"
    );
    assert!(
        !rendered.text.contains("leases"),
        "node mode never touches a Lease:\n{}",
        rendered.text
    );
    assert_eq!(
        namespaced_rules(&rendered),
        vec![
            json!({"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "create", "update"]})
        ]
    );
}

#[test]
fn cluster_mode_is_a_leader_elected_deployment_with_a_pdb() {
    let rendered = template(CHART, "cluster", &[]);
    assert!(rendered.all("DaemonSet").is_empty());
    let deployment = rendered.get("Deployment", "berth-daemon");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = pod_spec(&rendered, "Deployment");
    assert_eq!(pod["priorityClassName"], "system-cluster-critical");
    assert!(pod.get("tolerations").is_none(), "tolerates nothing: {pod}");
    assert!(!env_names(&rendered).contains(&"NODE_NAME".to_owned()));
    let pdb = rendered.get("PodDisruptionBudget", "berth-daemon");
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    // The ownership ConfigMap and the Lease: created under names RBAC cannot check, read
    // and written only under their own names: the ConfigMap's as berth-kube computes it
    // from the daemon's owner id, the Lease's as the daemon is told.
    assert!(args(&rendered).contains(&"--lease-name=berth-daemon".to_owned()));
    assert!(args(&rendered).contains(&"--lease-duration=15s".to_owned()));
    assert_eq!(
        namespaced_rules(&rendered),
        cluster_rules(&rendered, "berth-daemon")
    );
    let everything = template(CHART, "everything", &[]);
    assert_eq!(everything.get("Deployment", "berth")["spec"]["replicas"], 3);
    assert!(args(&everything).contains(&"--lease-name=berth-leader".to_owned()));
    assert!(args(&everything).contains(&"--lease-duration=30s".to_owned()));
    assert_eq!(
        namespaced_rules(&everything),
        cluster_rules(&everything, "berth-leader")
    );
    for name in ["Prod_EU.1", " spaced ", &"x".repeat(230), "é-cluster"] {
        let set = format!("clusterName={name}");
        let rendered = template(CHART, "cluster", &[set.as_str()]);
        assert_eq!(
            namespaced_rules(&rendered)[2]["resourceNames"],
            json!([adopted_config_map(&rendered)]),
            "{name:?}"
        );
    }
    for id in ["Prod_EU.1", &"x".repeat(63)] {
        let set = format!("installationId={id}");
        let rendered = template(CHART, "cluster", &[set.as_str()]);
        assert_eq!(
            namespaced_rules(&rendered)[1]["resourceNames"],
            json!([ownership_config_map(&rendered)]),
            "{id:?}"
        );
    }
    let no_pdb = template(CHART, "cluster", &["podDisruptionBudget.enabled=false"]);
    assert!(no_pdb.all("PodDisruptionBudget").is_empty());
}

#[test]
fn cluster_rbac_is_nodes_events_and_its_namespace_only() {
    for values in EXAMPLES {
        let rendered = template(CHART, values, &[]);
        let cluster_roles = rendered.all("ClusterRole");
        assert_eq!(cluster_roles.len(), 1);
        assert_eq!(
            cluster_roles[0]["rules"],
            json!([{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list", "watch"]}])
        );
        let events = rendered
            .all("Role")
            .into_iter()
            .find(|r| r["metadata"]["namespace"] == "default")
            .expect("the Events Role in `default`");
        assert_eq!(
            events["rules"],
            json!([{"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]}])
        );
        let sa = container_service_account(&rendered);
        for binding in rendered
            .all("RoleBinding")
            .into_iter()
            .chain(rendered.all("ClusterRoleBinding"))
        {
            assert_eq!(
                binding["subjects"],
                json!([{"kind": "ServiceAccount", "name": sa, "namespace": NAMESPACE}])
            );
        }
    }
    let without = template(CHART, "cluster", &["rbac.create=false"]);
    for kind in ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"] {
        assert!(
            without.all(kind).is_empty(),
            "rbac.create=false renders no {kind}"
        );
    }
}

/// The daemon's command line as rendered.
fn daemon_cli(rendered: &Rendered) -> berth_daemon::cli::Cli {
    let mut line = vec!["berth-daemon".to_owned()];
    line.extend(args(rendered));
    berth_daemon::cli::Cli::try_parse_from(&line).unwrap()
}

/// The name of the ConfigMap the daemon keeps its ownership records in (cluster mode),
/// from the rendered command line, as berth-kube computes it.
fn ownership_config_map(rendered: &Rendered) -> String {
    let owner = daemon_cli(rendered).owner().unwrap();
    berth_kube::ownership::ConfigMapOwnership::config_map_name(&owner)
}

/// The ConfigMap of the earlier owner id, whose records the daemon adopts.
fn adopted_config_map(rendered: &Rendered) -> String {
    let previous = daemon_cli(rendered).previous_owners();
    assert_eq!(previous.len(), 1, "{previous:?}");
    berth_kube::ownership::ConfigMapOwnership::config_map_name(&previous[0])
}

fn cluster_rules(rendered: &Rendered, lease: &str) -> Vec<Value> {
    vec![
        json!({"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]}),
        json!({"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [ownership_config_map(rendered)], "verbs": ["get", "update"]}),
        json!({"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [adopted_config_map(rendered)], "verbs": ["get", "delete"]}),
        json!({"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]}),
        json!({"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": [lease], "verbs": ["get", "update"]}),
    ]
}

fn container_service_account(rendered: &Rendered) -> String {
    workload(rendered)["spec"]["template"]["spec"]["serviceAccountName"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn the_castai_key_only_ever_comes_from_a_secret() {
    for values in EXAMPLES {
        let rendered = template(CHART, values, &[]);
        assert!(
            rendered.all("Secret").is_empty(),
            "the chart renders no Secret"
        );
        let key = container(&rendered)["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "CLUSTER_API_KEY")
            .cloned();
        match values {
            "node" => assert!(key.is_none()),
            "cluster" => assert_eq!(
                key.unwrap()["valueFrom"],
                json!({"secretKeyRef": {"name": "berth-daemon-castai", "key": "api-key"}})
            ),
            _ => assert_eq!(
                key.unwrap()["valueFrom"],
                json!({"secretKeyRef": {"name": "castai-credentials", "key": "CASTAI_API_KEY"}})
            ),
        }
        assert!(!args(&rendered)
            .iter()
            .any(|a| a.starts_with("--castai-api-key")));
        for map in rendered.all("ConfigMap") {
            let data = map["data"].to_string();
            assert!(
                !data.contains("CLUSTER_API_KEY")
                    && !data.contains("api-key")
                    && !data.contains("castai"),
                "{data}"
            );
        }
    }
    // There is no value to put a key in: the schema refuses one.
    let out = try_template(CHART, "cluster", &["castai.apiKey=s3cr3t"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("apiKey"));
}

#[test]
fn pods_run_as_non_root_read_only_with_no_capabilities() {
    for values in EXAMPLES {
        let rendered = template(CHART, values, &[]);
        let pod = &workload(&rendered)["spec"]["template"]["spec"];
        let psc = &pod["securityContext"];
        assert_eq!(psc["runAsNonRoot"], true);
        assert_eq!(psc["runAsUser"], 65532);
        assert_eq!(psc["seccompProfile"]["type"], "RuntimeDefault");
        let sc = &container(&rendered)["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"], true);
        assert_eq!(sc["allowPrivilegeEscalation"], false);
        assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
        assert_eq!(sc["runAsUser"], 65532);
    }
}

#[test]
fn defaults_and_options_are_rendered_where_users_expect_them() {
    let node = template(CHART, "node", &[]);
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        container(&node)["image"],
        format!("ghcr.io/berth-rs/berth-daemon:{version}")
    );
    let sa = node.get("ServiceAccount", "berth-daemon");
    assert_eq!(
        sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::123456789012:role/berth-daemon"
    );
    let rules = node.get("ConfigMap", "berth-daemon-rules");
    assert!(rules["data"]["rules.yaml"]
        .as_str()
        .unwrap()
        .contains("targetgroup/web/"));
    assert!(args(&node).contains(&"--config=/etc/berth/rules.yaml".to_owned()));
    assert!(
        workload(&node)["spec"]["template"]["metadata"]["annotations"]["checksum/rules"]
            .is_string()
    );

    let all = template(CHART, "everything", &[]);
    assert!(
        all.all("ServiceAccount").is_empty(),
        "serviceAccount.create=false"
    );
    assert_eq!(container_service_account(&all), "berth-existing");
    assert!(all.all("ConfigMap").is_empty(), "no rules, no ConfigMap");
    assert!(!args(&all).iter().any(|a| a.starts_with("--config")));
    let pod = &workload(&all)["spec"]["template"];
    assert_eq!(
        pod["metadata"]["annotations"]["example.com/team"],
        "platform"
    );
    assert_eq!(pod["metadata"]["labels"]["example.com/tier"], "infra");
    assert_eq!(pod["spec"]["tolerations"][0]["key"], "CriticalAddonsOnly");
    assert_eq!(pod["spec"]["nodeSelector"]["kubernetes.io/os"], "linux");
    assert!(pod["spec"]["affinity"]["podAntiAffinity"].is_object());
    assert_eq!(pod["spec"]["imagePullSecrets"], json!([{"name": "ghcr"}]));
    assert_eq!(
        container(&all)["image"],
        "ghcr.io/berth-rs/berth-daemon:0.1.0-rc.1"
    );
    for arg in [
        "--log-format=text",
        "--log-level=info,berth_core=debug",
        "--dry-run",
        "--batch-size=100",
    ] {
        assert!(args(&all).contains(&arg.to_owned()), "{arg}");
    }
    assert!(env_names(&all).contains(&"AWS_STS_REGIONAL_ENDPOINTS".to_owned()));
    let service = all.get("Service", "berth-metrics");
    let monitor = all.get("ServiceMonitor", "berth");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(
        monitor["spec"]["endpoints"],
        json!([{"port": "http", "path": "/metrics", "interval": "30s"}])
    );
    for (key, value) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(&service["metadata"]["labels"][key], value);
    }
    assert!(template(CHART, "node", &[])
        .all("ServiceMonitor")
        .is_empty());
    let cluster = template(CHART, "cluster", &[]);
    let spread = &workload(&cluster)["spec"]["template"]["spec"]["topologySpreadConstraints"];
    assert_eq!(spread[0]["topologyKey"], "topology.kubernetes.io/zone");
}

#[test]
fn bad_values_fail_with_a_message_naming_them() {
    for (sets, expected) in [
        (&["clusterName="][..], "clusterName"),
        (&["mode=everywhere"][..], "mode"),
        (&["castai.apiKeySecretName="][..], "castai.apiKeySecretName"),
        (
            &[
                "castai.clusterId=",
                "castai.apiKeySecretName=",
                "rules=null",
            ][..],
            "no source of target groups",
        ),
        (&["logFormat=xml"][..], "logFormat"),
        (&["leaderElection.leaseDuration=7.5s"][..], "leaseDuration"),
        (&["unknownKey=1"][..], "unknownKey"),
    ] {
        let out = try_template(CHART, "cluster", sets);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{sets:?} renders");
        assert!(stderr.contains(expected), "{sets:?}: {stderr}");
    }
}

/// The daemon's real command line: every rendered argument, and every environment
/// variable (as the flag it stands for), parses and passes the daemon's own checks.
#[test]
fn every_rendered_flag_and_variable_is_the_daemons() {
    let command = berth_daemon::cli::Cli::command();
    let flag_of_env = |name: &str| {
        command
            .get_arguments()
            .find(|a| a.get_env().is_some_and(|e| e == name))
            .and_then(|a| a.get_long())
            .map(str::to_owned)
    };
    for values in EXAMPLES {
        let rendered = template(CHART, values, &[]);
        let mut line = vec!["berth-daemon".to_owned()];
        line.extend(args(&rendered));
        for env in container(&rendered)["env"].as_array().unwrap() {
            let name = env["name"].as_str().unwrap();
            if name.starts_with("AWS_") && flag_of_env(name).is_none() {
                continue; // the AWS SDK's own (extraEnv)
            }
            let flag = flag_of_env(name)
                .unwrap_or_else(|| panic!("{values}: {name} is no variable of berth-daemon"));
            let value = env["value"].as_str().unwrap_or("from-the-pod");
            line.push(format!("--{flag}={value}"));
        }
        let cli = berth_daemon::cli::Cli::try_parse_from(&line)
            .unwrap_or_else(|e| panic!("{values}: {line:?}: {e}"));
        cli.validate()
            .unwrap_or_else(|e| panic!("{values}: {line:?}: {e}"));
    }
}
