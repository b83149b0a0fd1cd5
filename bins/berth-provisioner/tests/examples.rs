//! examples/provisioner: the EKS module is formatted, the runner script parses, and
//! the example server configuration starts the compiled server and shapes its Jobs.

mod support;

use berth_kube::fake::FakeApiServer;
use k8s_openapi::api::batch::v1::Job;
use support::{repo_root, Provisioner, NAMESPACE};

fn example(path: &str) -> std::path::PathBuf {
    repo_root().join("examples/provisioner").join(path)
}

#[test]
fn the_eks_module_is_formatted() {
    let out = std::process::Command::new("terraform")
        .args(["fmt", "-check", "-recursive", "-diff"])
        .arg(example("terraform"))
        .output()
        .expect("terraform on PATH (.ci/run checks it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn the_runner_script_parses_and_fails_fast() {
    let script = example("runner/berth-runner.sh");
    let out = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&script).unwrap();
    assert!(text.contains("set -euo pipefail"));
    // Without its environment it refuses to start rather than run terraform.
    let out = std::process::Command::new(&script)
        .env_clear()
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("BERTH_RUN_ID"));
}

/// The `config.yaml` key of the example ConfigMap.
fn example_config() -> String {
    let manifest = std::fs::read_to_string(example("manifests/config.yaml")).unwrap();
    let start =
        manifest.find("config.yaml: |\n").expect("the config key") + "config.yaml: |\n".len();
    manifest[start..]
        .lines()
        .take_while(|l| l.starts_with("    ") || l.is_empty())
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_example_configuration_serves_and_shapes_jobs() {
    let api = FakeApiServer::start().expect("fake API server");
    let server = Provisioner::start(&api, &example_config());
    let id = server.seed_run("provision", "prod-cluster-001", "m5.xlarge");
    let job: Job = api.get(Some(NAMESPACE), &id).unwrap();
    let pod = job.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("berth-runner"));
    let env = pod.containers[0].env.clone().unwrap();
    let value = |name: &str| {
        env.iter()
            .find(|e| e.name == name)
            .and_then(|e| e.value.clone())
    };
    assert_eq!(value("TF_VAR_region").as_deref(), Some("ap-south-1"));
    assert_eq!(
        value("TF_VAR_subnet_ids").as_deref(),
        Some(r#"["subnet-310c7c7d", "subnet-2fdfdc47", "subnet-2208b359"]"#)
    );
    assert!(value("TF_VAR_cluster_role_arn")
        .unwrap()
        .ends_with(":role/EKS_Cluster"));
}
