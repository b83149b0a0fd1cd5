//! charts/berth-provisioner with a real helm: lint, namespace-scoped RBAC exactly as
//! the API and the runner call it, the token Secret referenced (never rendered), the
//! server configuration from the values, and flags the binary documents.

use berth_charts::render::{lint, template, try_template, validate, Rendered};
use berth_charts::workspace_root;
use serde_json::{json, Value};

const CHART: &str = "berth-provisioner";
const EXAMPLES: [&str; 2] = ["example", "everything"];

fn container(rendered: &Rendered) -> &Value {
    let deployments = rendered.all("Deployment");
    assert_eq!(deployments.len(), 1);
    &deployments[0]["spec"]["template"]["spec"]["containers"][0]
}

fn args(rendered: &Rendered) -> Vec<String> {
    container(rendered)["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn every_example_values_file_lints_and_validates() {
    for values in EXAMPLES {
        lint(CHART, values);
        validate(
            &format!("{CHART}-{values}"),
            &template(CHART, values, &[]).text,
        );
    }
}

#[test]
fn rbac_is_namespaced_and_exactly_what_the_api_and_the_runner_call() {
    let rendered = template(CHART, "example", &[]);
    assert!(rendered.all("ClusterRole").is_empty());
    assert!(rendered.all("ClusterRoleBinding").is_empty());
    for object in &rendered.documents {
        assert_eq!(
            object.object["metadata"]["namespace"], "eks-provisioner",
            "{}",
            object.text
        );
    }
    let api = rendered.get("Role", "berth-provisioner");
    assert_eq!(
        api["rules"],
        json!([
            {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get", "list", "watch", "patch", "delete"]},
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "get", "list", "update", "patch", "delete"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create", "get", "update", "delete"]},
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "delete"]},
        ])
    );
    let runner = rendered.get("Role", "berth-provisioner-runner");
    assert_eq!(
        runner["rules"],
        json!([
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create", "get", "list", "update"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create", "get", "update"]},
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "get", "patch"]},
        ])
    );
    let runner_binding = rendered.get("RoleBinding", "berth-provisioner-runner");
    assert_eq!(runner_binding["subjects"][0]["name"], "berth-runner");
    let runner_sa = rendered.get("ServiceAccount", "berth-runner");
    assert_eq!(
        runner_sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::123456789012:role/berth-runner"
    );
    let without = template(CHART, "example", &["rbac.create=false"]);
    assert!(without.all("Role").is_empty() && without.all("RoleBinding").is_empty());
}

#[test]
fn tokens_come_from_an_existing_secret_mounted_as_a_directory() {
    for (values, secret, key) in [
        ("example", "berth-provisioner-tokens", "tokens"),
        ("everything", "api-tokens", "bearer"),
    ] {
        let rendered = template(CHART, values, &[]);
        assert!(
            rendered.all("Secret").is_empty(),
            "the chart renders no Secret"
        );
        let pod = &rendered.all("Deployment")[0]["spec"]["template"]["spec"];
        let volume = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "tokens")
            .unwrap();
        assert_eq!(volume["secret"], json!({"secretName": secret}));
        let mount = container(&rendered)["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "tokens")
            .unwrap()
            .clone();
        assert!(
            mount.get("subPath").is_none(),
            "a subPath would not see rotations"
        );
        assert!(args(&rendered).contains(&format!("--token-file=/etc/berth/tokens/{key}")));
        for map in rendered.all("ConfigMap") {
            assert!(!map["data"].to_string().contains("token"), "{map}");
        }
    }
    let out = try_template(CHART, "example", &["tokens.existingSecret="]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("tokens.existingSecret"));
}

#[test]
fn the_server_configuration_comes_from_the_values() {
    let rendered = template(CHART, "everything", &[]);
    let map = rendered.get("ConfigMap", "eks-api-config");
    let config: Value =
        serde_saphyr::from_str(map["data"]["config.yaml"].as_str().unwrap()).unwrap();
    assert_eq!(
        config,
        json!({
            "kubernetes_versions": ["1.33"],
            "ip_families": ["ipv4"],
            "region": "eu-west-1",
            "terraform_vars": {"subnet_ids": "[\"subnet-a\"]"},
            "runner": {
                "image": "registry.example.com/runner:2",
                "command": ["/bin/runner", "--verbose"],
                "service_account": "existing-runner",
                "env_from_secret": "aws-creds",
                "env": {"TF_LOG": "INFO"},
                "active_deadline_seconds": 3600,
                "plan_ttl_seconds": 600,
                "termination_grace_seconds": 900,
                "cancel_grace_seconds": 300,
            }
        })
    );
    assert!(rendered.all("ServiceAccount").is_empty());
    let service = rendered.get("Service", "eks-api");
    assert_eq!(service["spec"]["type"], "LoadBalancer");
    assert_eq!(
        service["spec"]["ports"],
        json!([{"name": "http", "port": 443, "targetPort": "http", "protocol": "TCP"}])
    );
    assert!(!args(&rendered)
        .iter()
        .any(|a| a.starts_with("--admin-listen")));
    let version = env!("CARGO_PKG_VERSION");
    let example = template(CHART, "example", &[]);
    assert_eq!(
        container(&example)["image"],
        format!("ghcr.io/berth-rs/berth-provisioner:{version}")
    );
    assert!(args(&example).contains(&"--admin-listen=0.0.0.0:9090".to_owned()));
    let large = template(CHART, "example", &["runner.activeDeadlineSeconds=2000000"]);
    let config = large.get("ConfigMap", "berth-provisioner-config")["data"]["config.yaml"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        config.contains("active_deadline_seconds: 2000000"),
        "an integer, not 2e+06: {config}"
    );
    for (sets, expected) in [
        (&["runner.image.repository="][..], "runner.image.repository"),
        (&["kubernetesVersions=null"][..], "kubernetesVersions"),
        (&["region="][..], "region"),
    ] {
        let out = try_template(CHART, "example", sets);
        assert!(!out.status.success(), "{sets:?} renders");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(expected),
            "{sets:?}"
        );
    }
}

#[test]
fn pods_run_as_non_root_read_only_with_no_capabilities() {
    for values in EXAMPLES {
        let rendered = template(CHART, values, &[]);
        let pod = &rendered.all("Deployment")[0]["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(pod["securityContext"]["runAsUser"], 65532);
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        let sc = &container(&rendered)["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"], true);
        assert_eq!(sc["allowPrivilegeEscalation"], false);
        assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    }
}

/// The flags and variables the chart passes are the ones docs/provisioner.md lists
/// for the binary (its "Running it" table, kept true to the code).
#[test]
fn every_rendered_flag_and_variable_is_documented_for_the_binary() {
    let docs = std::fs::read_to_string(workspace_root().join("docs/provisioner.md")).unwrap();
    let documented = |token: &str| {
        docs.lines()
            .any(|l| l.starts_with('|') && l.contains(&format!("`{token}`")))
    };
    for values in EXAMPLES {
        let rendered = template(CHART, values, &[]);
        for arg in args(&rendered) {
            let flag = arg.split('=').next().unwrap();
            assert!(
                documented(flag),
                "{values}: {flag} is not a flag of berth-provisioner"
            );
        }
        for env in container(&rendered)["env"].as_array().unwrap() {
            let name = env["name"].as_str().unwrap();
            assert!(
                documented(name) || name.starts_with("BERTH_TFVAR_"),
                "{values}: {name} is not a variable of berth-provisioner"
            );
        }
    }
}
