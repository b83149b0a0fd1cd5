//! `berth-bootstrap iam-policy`: the committed example policy is what the binary prints
//! for the example configuration, and it follows the modules that run.

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn bootstrap(args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth-bootstrap"));
    for var in ["BERTH_BOOTSTRAP_CONFIG", "AWS_REGION", "AWS_ACCOUNT_ID"] {
        cmd.env_remove(var);
    }
    cmd.current_dir(root()).arg("iam-policy").args(args);
    cmd.output().unwrap()
}

fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_example_policy_is_what_the_binary_prints() {
    let out = bootstrap(&[
        "-c",
        "examples/bootstrap/config.yaml",
        "--region",
        "eu-west-1",
        "--account-id",
        "123456789012",
    ]);
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8(out.stdout).unwrap();
    berth_testing::golden::assert_file(
        &root().join("examples/bootstrap/iam-policy.json"),
        &printed,
    );
}

#[test]
fn skipped_modules_grant_nothing() {
    let only_hostname = json(&bootstrap(&[
        "-c",
        "examples/bootstrap/config.yaml",
        "--skip-dns",
        "--skip-etcd",
        "--skip-certificates",
    ]));
    assert_eq!(only_hostname["Statement"].as_array().unwrap().len(), 1);
    assert_eq!(
        only_hostname["Statement"][0]["Action"],
        serde_json::json!(["ec2:DescribeInstances"])
    );
}

#[test]
fn a_bad_configuration_is_bad_usage() {
    let out = bootstrap(&["-c", "does/not/exist.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// `--version` names the git revision (for a release, the one `cargo xtask dist` stamps).
#[test]
fn version_names_the_revision() {
    let out = Command::new(env!("CARGO_BIN_EXE_berth-bootstrap"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("berth-bootstrap 0."), "{text}");
    assert!(text.contains("(revision "), "{text}");
}
