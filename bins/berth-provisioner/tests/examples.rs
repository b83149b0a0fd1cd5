//! examples/provisioner: the EKS module is formatted, validates and passes its own
//! `terraform test` offline (the AWS provider from the machine's plugin directory,
//! mocked), and declares exactly what the API sends; the runner script parses; the
//! example server configuration starts the compiled server and shapes its Jobs.

mod support;

use berth_kube::fake::FakeApiServer;
use k8s_openapi::api::batch::v1::Job;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{repo_root, Provisioner, Scratch, NAMESPACE};

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

/// Where the AWS provider is installed for offline use: `BERTH_TF_PLUGIN_DIR`, else the
/// machine image's `/opt/tf-plugins` (a `-plugin-dir` tree:
/// `registry.terraform.io/hashicorp/aws/<version>/<os_arch>/`).
fn plugin_dir() -> PathBuf {
    let dir = std::env::var_os("BERTH_TF_PLUGIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/tf-plugins"));
    assert!(
        dir.join("registry.terraform.io/hashicorp/aws").is_dir(),
        "the EKS module's tests need the hashicorp/aws provider (~> 5.70) under {} \
         (set BERTH_TF_PLUGIN_DIR): registry.terraform.io cannot be reached here",
        dir.display()
    );
    dir
}

/// Runs terraform in `dir`, offline, with an empty CLI configuration.
fn terraform(dir: &Path, args: &[&str]) -> Output {
    let rc = dir.join(".terraformrc-empty");
    std::fs::write(&rc, "").unwrap();
    Command::new("terraform")
        .args(args)
        .arg("-no-color")
        .current_dir(dir)
        .env("TF_CLI_CONFIG_FILE", &rc)
        .env("CHECKPOINT_DISABLE", "1")
        .env("TF_IN_AUTOMATION", "1")
        .output()
        .expect("terraform on PATH (.ci/run checks it)")
}

fn assert_ok(what: &str, out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn the_eks_module_validates_and_passes_its_tests_offline() {
    let scratch = Scratch::new();
    let module = scratch.0.join("module");
    copy_dir(&example("terraform"), &module);
    let plugins = format!("-plugin-dir={}", plugin_dir().display());
    let init = &["init", "-backend=false", "-input=false", &plugins];
    assert_ok("terraform init", &terraform(&module, init));
    let validated = assert_ok("terraform validate", &terraform(&module, &["validate"]));
    assert!(
        validated.contains("The configuration is valid"),
        "{validated}"
    );
    // tests/module.tftest.hcl: the request's fields reach the cluster and its nodes,
    // with the provider mocked.
    let tested = assert_ok("terraform test", &terraform(&module, &["test"]));
    assert!(tested.contains("Success! 3 passed, 0 failed."), "{tested}");
}

/// `variable "<name>"` blocks of a module file.
fn declared_variables(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("variable \""))
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

/// `var.<name>` references in a module file.
fn referenced_variables(text: &str) -> Vec<String> {
    text.split("var.")
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

#[test]
fn the_eks_module_declares_exactly_what_the_api_sends() {
    let variables = std::fs::read_to_string(example("terraform/variables.tf")).unwrap();
    let declared = declared_variables(&variables);
    // Every variable is used, and every use is declared.
    let mut used = Vec::new();
    for file in ["main.tf", "outputs.tf", "versions.tf"] {
        let text = std::fs::read_to_string(example("terraform").join(file)).unwrap();
        used.extend(referenced_variables(&text));
    }
    for name in &declared {
        assert!(
            used.contains(name),
            "variable {name} is declared but unused"
        );
    }
    for name in &used {
        assert!(
            declared.contains(name),
            "var.{name} is used but not declared"
        );
    }

    // What a run's Job sets with the example configuration.
    let api = FakeApiServer::start().expect("fake API server");
    let server = Provisioner::start(&api, &example_config());
    let id = server.seed_run("provision", "prod-cluster-001", "m6gd.large");
    let job: Job = api.get(Some(NAMESPACE), &id).unwrap();
    let env = job.spec.unwrap().template.spec.unwrap().containers[0]
        .env
        .clone()
        .unwrap();
    let tf_vars: Vec<(String, String)> = env
        .iter()
        .filter_map(|e| {
            let name = e.name.strip_prefix("TF_VAR_")?;
            Some((name.to_owned(), e.value.clone().unwrap_or_default()))
        })
        .collect();
    // The seed's request fields, as the committed OpenAPI document has them, are all
    // passed on.
    let openapi: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json")).unwrap(),
    )
    .unwrap();
    let fields = openapi["components"]["schemas"]["SeedClusterRequest"]["properties"]
        .as_object()
        .expect("the seed's request schema");
    assert_eq!(fields.len(), 4, "{fields:?}");
    for field in fields.keys() {
        assert!(
            tf_vars.iter().any(|(name, _)| name == field),
            "request field {field} is not passed as TF_VAR_{field}"
        );
    }
    // Terraform itself checks the values against the declarations: `-var` refuses an
    // undeclared variable, `-input=false` a missing required one, and the types and
    // validation blocks apply (HCL lists and maps from the configuration included).
    let scratch = Scratch::new();
    std::fs::write(scratch.0.join("variables.tf"), &variables).unwrap();
    assert_ok(
        "terraform init",
        &terraform(&scratch.0, &["init", "-backend=false", "-input=false"]),
    );
    let mut plan = vec!["plan".to_owned(), "-input=false".to_owned()];
    for (name, value) in &tf_vars {
        plan.push("-var".to_owned());
        plan.push(format!("{name}={value}"));
    }
    let plan: Vec<&str> = plan.iter().map(String::as_str).collect();
    let planned = assert_ok(
        "terraform plan of the Job's variables",
        &terraform(&scratch.0, &plan),
    );
    assert!(planned.contains("No changes."), "{planned}");
    let names: Vec<&String> = tf_vars.iter().map(|(n, _)| n).collect();
    for required in ["region", "subnet_ids", "cluster_role_arn", "node_role_arn"] {
        assert!(
            names.iter().any(|n| *n == required),
            "{required} in {names:?}"
        );
    }
}
