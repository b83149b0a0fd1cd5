//! `helm lint`, `helm template` and `kubernetes-validate`, and the rendered objects.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

use crate::tools::{helm, kubernetes_validate, run};
use crate::{chart_dir, workspace_root};

/// The Kubernetes versions the rendered manifests are validated against: the kubectl
/// shipped with the pinned helm (1.31) and the newest kubernetes-validate knows.
pub const KUBERNETES_VERSIONS: [&str; 2] = ["1.31.0", "1.37.0"];

/// One rendered document: the template it came from and its text.
#[derive(Debug, Clone)]
pub struct Document {
    /// `templates/rbac.yaml`: the path after the chart name in helm's `# Source:` line.
    pub source: String,
    /// The document as helm printed it, without the `---` separator.
    pub text: String,
    /// The parsed object.
    pub object: Value,
}

/// What `helm template` printed, parsed.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// helm's whole output.
    pub text: String,
    /// Its documents, in order.
    pub documents: Vec<Document>,
}

impl Rendered {
    /// Every object of `kind`.
    pub fn all(&self, kind: &str) -> Vec<&Value> {
        self.documents
            .iter()
            .map(|d| &d.object)
            .filter(|o| o["kind"] == kind)
            .collect()
    }

    /// The one object of `kind` named `name`.
    ///
    /// # Panics
    /// When there is none.
    pub fn get(&self, kind: &str, name: &str) -> &Value {
        self.all(kind)
            .into_iter()
            .find(|o| o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name} in:\n{}", self.text))
    }

    /// The kinds rendered, in order.
    pub fn kinds(&self) -> Vec<String> {
        self.documents
            .iter()
            .map(|d| d.object["kind"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

/// An example values file of a chart: `charts/<chart>/ci/<name>-values.yaml`.
pub fn values_file(chart: &str, name: &str) -> PathBuf {
    chart_dir(chart)
        .join("ci")
        .join(format!("{name}-values.yaml"))
}

/// `helm lint --strict` of `chart` with the values file `values`.
///
/// # Panics
/// When helm reports a problem.
pub fn lint(chart: &str, values: &str) {
    run(Command::new(helm())
        .arg("lint")
        .arg("--strict")
        .arg(chart_dir(chart))
        .arg("-f")
        .arg(values_file(chart, values)));
}

/// The names of a chart's example values files (`charts/<chart>/ci/<name>-values.yaml`),
/// sorted.
///
/// # Panics
/// When the chart has no `ci/` directory or no values file in it.
pub fn examples(chart: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(chart_dir(chart).join("ci"))
        .expect("the chart's ci/ directory")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_suffix("-values.yaml").map(str::to_owned)
        })
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no example values files in {chart}");
    names
}

/// `helm template <release> charts/<chart> -n <namespace> -f <values> [--set ...]`.
///
/// # Panics
/// When helm fails or its output does not parse.
pub fn template(chart: &str, values: &str, sets: &[&str]) -> Rendered {
    let out = run(&mut template_command(chart, values, sets));
    parse(&String::from_utf8(out.stdout).expect("helm prints UTF-8"))
}

/// Like [`template`], but returns helm's output, failed or not.
pub fn try_template(chart: &str, values: &str, sets: &[&str]) -> Output {
    let mut command = template_command(chart, values, sets);
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

/// The release name and namespace of the examples: the chart's name, and a namespace
/// of its own: `berth-system` for the daemon, `eks-provisioner` for the provisioner.
pub fn release(chart: &str) -> (&str, &str) {
    match chart {
        "berth-daemon" => ("berth-daemon", "berth-system"),
        _ => ("berth-provisioner", "eks-provisioner"),
    }
}

fn template_command(chart: &str, values: &str, sets: &[&str]) -> Command {
    let (name, namespace) = release(chart);
    let mut command = Command::new(helm());
    command
        .current_dir(workspace_root())
        .args(["template", name])
        .arg(chart_dir(chart))
        .args(["--namespace", namespace, "-f"])
        .arg(values_file(chart, values));
    for set in sets {
        command.args(["--set", set]);
    }
    command
}

/// Splits helm's output into documents and parses each.
///
/// # Panics
/// When a document is not YAML or has no `# Source:` line.
pub fn parse(text: &str) -> Rendered {
    let mut documents = Vec::new();
    for chunk in text.split("\n---\n").flat_map(|c| c.split("---\n")) {
        let chunk = chunk.trim_start_matches("---").trim_matches('\n');
        if chunk.is_empty() {
            continue;
        }
        let source = chunk
            .lines()
            .find_map(|l| l.strip_prefix("# Source: "))
            .unwrap_or_else(|| panic!("no `# Source:` line in:\n{chunk}"));
        let source = source.split_once('/').map_or(source, |(_, rest)| rest);
        let object: Value = serde_saphyr::from_str(chunk)
            .unwrap_or_else(|e| panic!("{source} does not parse: {e}\n{chunk}"));
        documents.push(Document {
            source: source.to_owned(),
            text: format!("{chunk}\n"),
            object,
        });
    }
    Rendered {
        text: text.to_owned(),
        documents,
    }
}

/// `kubernetes-validate --strict` of `text` against each of [`KUBERNETES_VERSIONS`].
/// Kinds it has no schema for (the Prometheus Operator's ServiceMonitor) are reported
/// by it as warnings, not checked.
///
/// # Panics
/// When a document does not validate.
pub fn validate(label: &str, text: &str) {
    let dir = std::env::temp_dir().join(format!("berth-charts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let file = dir.join(format!("{}.yaml", label.replace(['/', ' '], "-")));
    std::fs::write(&file, text).expect("writing the rendered manifests");
    let validate = kubernetes_validate();
    for version in KUBERNETES_VERSIONS {
        run(Command::new(&validate)
            .args(["--strict", "--quiet", "--kubernetes-version", version])
            .arg(&file));
    }
    let _ = std::fs::remove_file(&file);
}
