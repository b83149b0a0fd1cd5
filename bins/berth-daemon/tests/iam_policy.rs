//! `berth-daemon iam-policy`: the committed example policy is what the binary prints for
//! the example rules.

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn daemon() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth-daemon"));
    for var in [
        "CLUSTER_ID",
        "CLUSTER_API_KEY",
        "BERTH_CONFIG",
        "AWS_REGION",
        "AWS_ACCOUNT_ID",
    ] {
        cmd.env_remove(var);
    }
    cmd.current_dir(root());
    cmd
}

#[test]
fn the_example_policy_is_what_the_binary_prints() {
    let out = daemon()
        .args([
            "iam-policy",
            "--cluster-name",
            "example",
            "--config",
            "examples/daemon/rules.yaml",
            "--region",
            "eu-west-1",
            "--account-id",
            "123456789012",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8(out.stdout).unwrap();
    berth_testing::golden::assert_file(&root().join("examples/daemon/iam-policy.json"), &printed);
}

#[test]
fn cast_ai_groups_are_learnt_at_run_time_so_registration_is_account_wide() {
    let out = daemon()
        .args([
            "iam-policy",
            "--cluster-name",
            "c",
            "--cluster-id",
            "id",
            "--castai-api-key",
            "k",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let policy: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        policy["Statement"][1]["Resource"][0],
        "arn:aws:elasticloadbalancing:*:*:targetgroup/*/*"
    );
}

#[test]
fn ip_target_gc_may_deregister_but_not_register_in_any_group() {
    let out = daemon()
        .args([
            "iam-policy",
            "--cluster-name",
            "c",
            "--mode",
            "cluster",
            "--gc-ip-targets",
            "--config",
            "examples/daemon/rules.yaml",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let policy: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let statements = policy["Statement"].as_array().unwrap();
    assert_ne!(
        statements[1]["Resource"][0], "arn:aws:elasticloadbalancing:*:*:targetgroup/*/*",
        "registration stays scoped to the rules' groups"
    );
    assert_eq!(
        statements.last().unwrap()["Action"],
        serde_json::json!(["elasticloadbalancing:DeregisterTargets"])
    );
    assert_eq!(
        statements.last().unwrap()["Resource"][0],
        "arn:aws:elasticloadbalancing:*:*:targetgroup/*/*"
    );
}

#[test]
fn without_a_source_of_groups_it_is_bad_usage() {
    let out = daemon()
        .args(["iam-policy", "--cluster-name", "c"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// `--version` names the git revision (for a release, the one `cargo xtask dist` stamps).
#[test]
fn notice_mode_needs_no_iam_permission_and_prints_no_policy() {
    let out = daemon()
        .args([
            "iam-policy",
            "--cluster-name",
            "c",
            "--mode",
            "notice",
            "--node-name",
            "n",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stdout.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("needs no IAM permission"), "{stderr}");
}

#[test]
fn version_names_the_revision() {
    let out = Command::new(env!("CARGO_BIN_EXE_berth-daemon"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("berth-daemon 0."), "{text}");
    assert!(text.contains("(revision "), "{text}");
}
