//! `berth-sidecar iam-policy`: the committed example policy is what the binary prints
//! for the example pod's flags.

use std::path::PathBuf;
use std::process::Command;

fn sidecar() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth-sidecar"));
    for var in [
        "POD_IP",
        "BERTH_TARGET_GROUP",
        "BERTH_TARGET_GROUP_NAME",
        "AWS_DEFAULT_REGION",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("AWS_REGION", "eu-west-1")
        .env("AWS_ACCOUNT_ID", "123456789012");
    cmd
}

#[test]
fn the_example_policy_is_what_the_binary_prints() {
    // The flags of examples/sidecar/pod.yaml's groups.
    let out = sidecar()
        .args([
            "iam-policy",
            "--target-group=edge-public",
            "--target-group=arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/edge-privatelink/0123456789abcdef",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8(out.stdout).unwrap();
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/sidecar/iam-policy.json");
    berth_testing::golden::assert_file(&path, &printed);
}

#[test]
fn without_a_group_the_policy_is_refused_as_bad_usage() {
    let out = sidecar().arg("iam-policy").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no target group"));
}

/// `--version` names the git revision (for a release, the one `cargo xtask dist` stamps).
#[test]
fn version_names_the_revision() {
    let out = Command::new(env!("CARGO_BIN_EXE_berth-sidecar"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("berth-sidecar 0."), "{text}");
    assert!(text.contains("(revision "), "{text}");
}
