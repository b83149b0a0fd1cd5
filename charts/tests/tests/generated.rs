//! What is generated from the charts cannot drift: each chart's README values table,
//! the manifests under examples/, and the chart versions (the workspace's).
//! `BERTH_UPDATE_CHARTS=1 cargo test -p berth-charts --test generated` rewrites them.

use berth_charts::readme::{entries, table, with_table};
use berth_charts::render::{template, Rendered};
use berth_charts::{chart_dir, check_generated, workspace_root};

const CHARTS: [&str; 2] = ["berth-daemon", "berth-provisioner"];

fn header(chart: &str, values: &str) -> String {
    format!(
        "# Generated from charts/{chart} with charts/{chart}/ci/{values}-values.yaml\n\
         # (`helm template {chart} charts/{chart} -n <namespace> -f ...`); do not edit:\n\
         # `BERTH_UPDATE_CHARTS=1 cargo test -p berth-charts --test generated` rewrites it.\n"
    )
}

/// The documents of `rendered` from the given templates, in helm's order.
fn from_templates(rendered: &Rendered, templates: &[&str]) -> String {
    rendered
        .documents
        .iter()
        .filter(|d| templates.contains(&d.source.as_str()))
        .map(|d| format!("---\n{}", d.text))
        .collect()
}

#[test]
fn chart_readmes_list_every_value_with_its_comment() {
    for chart in CHARTS {
        let values = std::fs::read_to_string(chart_dir(chart).join("values.yaml")).unwrap();
        let (entries, undocumented) = entries(&values);
        assert!(
            undocumented.is_empty(),
            "charts/{chart}/values.yaml: keys without a `# --` comment: {undocumented:?}"
        );
        assert!(
            entries.len() > 20,
            "{chart}: {} documented keys",
            entries.len()
        );
        let path = format!("charts/{chart}/README.md");
        let readme = std::fs::read_to_string(workspace_root().join(&path)).unwrap();
        check_generated(&path, &with_table(&readme, &table(&entries)));
    }
}

#[test]
fn daemon_examples_are_the_chart_rendered() {
    for (values, path) in [
        ("node", "examples/daemon/daemonset.yaml"),
        ("cluster", "examples/daemon/deployment.yaml"),
    ] {
        let rendered = template("berth-daemon", values, &[]);
        let text = format!(
            "{}{}",
            header("berth-daemon", values),
            rendered.text.trim_start_matches('\n')
        );
        check_generated(path, &text);
    }
}

#[test]
fn provisioner_examples_are_the_chart_rendered() {
    let rendered = template("berth-provisioner", "example", &[]);
    let head = header("berth-provisioner", "example");
    let files: [(&str, &[&str]); 3] = [
        (
            "examples/provisioner/manifests/rbac.yaml",
            &["templates/serviceaccount.yaml", "templates/rbac.yaml"],
        ),
        (
            "examples/provisioner/manifests/config.yaml",
            &["templates/configmap.yaml"],
        ),
        (
            "examples/provisioner/manifests/api.yaml",
            &["templates/deployment.yaml", "templates/service.yaml"],
        ),
    ];
    let mut covered = 0;
    for (path, templates) in files {
        let text = from_templates(&rendered, templates);
        covered += rendered
            .documents
            .iter()
            .filter(|d| templates.contains(&d.source.as_str()))
            .count();
        check_generated(path, &format!("{head}{text}"));
    }
    assert_eq!(
        covered,
        rendered.documents.len(),
        "every rendered object is in an example file"
    );
}

#[test]
fn the_static_rules_example_is_the_chart_example() {
    let rules: serde_json::Value = serde_saphyr::from_str(
        &std::fs::read_to_string(workspace_root().join("examples/daemon/rules.yaml")).unwrap(),
    )
    .unwrap();
    for values in ["node", "cluster"] {
        let file = berth_charts::render::values_file("berth-daemon", values);
        let values: serde_json::Value =
            serde_saphyr::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        assert_eq!(values["rules"], rules["rules"]);
    }
}

#[test]
fn chart_versions_are_the_workspace_version() {
    let manifest = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
    let version = manifest
        .lines()
        .skip_while(|l| l.trim() != "[workspace.package]")
        .find_map(|l| l.strip_prefix("version = "))
        .expect("[workspace.package] version")
        .trim_matches('"');
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
    for chart in CHARTS {
        let text = std::fs::read_to_string(chart_dir(chart).join("Chart.yaml")).unwrap();
        let meta: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(meta["version"], version, "{chart} version");
        assert_eq!(meta["appVersion"], version, "{chart} appVersion");
    }
}
