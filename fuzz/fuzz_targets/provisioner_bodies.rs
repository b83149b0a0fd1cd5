//! berth-provisioner's request bodies: any bytes as the seed API's create body
//! (`validate::seed_request`) and as the `/v1` spec (`validate::v1_spec_request`,
//! with a valid and a hostile path name), against a server configuration allowing
//! three Kubernetes versions and the default IP families.
//! A body is accepted with a spec the configuration allows, or refused with a
//! problem naming each invalid field.
#![no_main]

#[allow(dead_code)]
#[path = "../../bins/berth-provisioner/src/config.rs"]
mod config;
#[allow(dead_code)]
#[path = "../../bins/berth-provisioner/src/problem.rs"]
mod problem;
#[allow(dead_code)]
#[path = "../../bins/berth-provisioner/src/validate.rs"]
mod validate;

use std::sync::LazyLock;

use berth_core::plan::runs::{cluster_name_error, is_instance_type};
use libfuzzer_sys::fuzz_target;

static CONFIG: LazyLock<config::ServerConfig> = LazyLock::new(|| {
    serde_saphyr::from_str(
        "kubernetes_versions: [\"1.31\", \"1.32\", \"1.33\"]\n\
         region: ap-south-1\n\
         runner:\n  image: berth-runner:fuzz\n",
    )
    .expect("the configuration")
});

fn allowed(spec: &validate::ClusterSpec) {
    assert!(CONFIG
        .kubernetes_versions
        .contains(&spec.kubernetes_version));
    assert!(CONFIG.ip_families.contains(&spec.ip_family));
    assert!(is_instance_type(&spec.instance_type));
}

fn refused(problem: &problem::Problem) {
    assert!(matches!(problem.status, 400 | 422), "{problem:?}");
    assert!(!problem.detail.trim().is_empty(), "{problem:?}");
    if problem.status == 422 {
        assert!(
            !problem.errors.is_empty(),
            "a 422 names no field: {problem:?}"
        );
        assert!(problem.errors.iter().all(|e| !e.message.is_empty()));
    }
}

fuzz_target!(|body: &[u8]| {
    match validate::seed_request(body, &CONFIG) {
        Ok((name, spec)) => {
            assert!(cluster_name_error(&name).is_none(), "{name:?}");
            allowed(&spec);
        }
        Err(problem) => refused(&problem),
    }
    for name in ["web", "-Bad/../name"] {
        match validate::v1_spec_request(name, body, &CONFIG) {
            Ok(spec) => {
                assert_eq!(name, "web", "a bad path name was accepted");
                allowed(&spec);
            }
            Err(problem) => refused(&problem),
        }
    }
});
