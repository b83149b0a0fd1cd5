//! The examples under `examples/sidecar/` stay true to the binary.

use std::collections::BTreeSet;
use std::path::PathBuf;

fn example(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/sidecar")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_iam_policy_grants_exactly_what_the_elbv2_adapter_calls() {
    let policy: serde_json::Value =
        serde_json::from_str(&example("iam-policy.json")).expect("valid JSON");
    let mut granted = BTreeSet::new();
    for statement in policy["Statement"].as_array().expect("statements") {
        assert_eq!(statement["Effect"], "Allow");
        for action in statement["Action"].as_array().expect("actions") {
            granted.insert(action.as_str().expect("a string").to_owned());
        }
        // Changes are limited to named groups; only reads may use "*".
        let changes = statement["Action"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str().is_some_and(|a| a.ends_with("RegisterTargets")));
        if changes {
            assert_ne!(statement["Resource"], "*", "RegisterTargets on every group");
        }
    }
    let needed: BTreeSet<String> = berth_aws::iam::actions("elbv2")
        .iter()
        .map(|a| (*a).to_owned())
        .collect();
    assert_eq!(granted, needed);
}

#[test]
fn grace_periods_outlast_the_drain_and_pod_ip_comes_from_the_downward_api() {
    for (file, drain_seconds) in [("pod.yaml", None), ("pod-seed-flags.yaml", Some(300))] {
        let text = example(file);
        let grace: u64 = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("terminationGracePeriodSeconds:"))
            .and_then(|v| v.split('#').next())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{file}: no terminationGracePeriodSeconds"));
        let drain = drain_seconds.unwrap_or_else(|| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix("- --drain-timeout="))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.strip_suffix('s'))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{file}: no --drain-timeout in seconds"))
        });
        assert!(grace > drain, "{file}: grace {grace}s <= drain {drain}s");
        assert!(text.contains("fieldPath: status.podIP"), "{file}: POD_IP");
        assert!(text.contains("path: /readyz"), "{file}: readiness probe");
    }
}

#[test]
fn the_example_pod_records_its_registrations_with_the_rbac_it_needs() {
    let pod = example("pod.yaml");
    for field in ["metadata.namespace", "metadata.name", "metadata.uid"] {
        assert!(
            pod.contains(&format!("fieldPath: {field}")),
            "pod.yaml: {field}"
        );
    }
    let rbac = example("registration-records.yaml");
    assert!(
        rbac.contains(r#"verbs: ["get", "create", "update", "delete"]"#),
        "{rbac}"
    );
    assert!(
        rbac.contains("name: edge-proxy"),
        "bound to the pod's ServiceAccount"
    );
}
