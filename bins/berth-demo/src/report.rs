//! The final report: target groups × targets with their states, the AWS calls berth
//! made, the Kubernetes Events it recorded, and the time each step took.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use berth_core::domain::Target;

use crate::cluster::NodeSpec;
use crate::estate::Group;
use crate::narrate::seconds;
use crate::observe::{History, Snapshot};

/// The table's state for a target that was seen in its group and has left it.
pub(crate) const DEREGISTERED: &str = "deregistered";

/// Everything the report shows.
pub(crate) struct Report<'a> {
    /// The groups, in order.
    pub(crate) groups: &'a [Group],
    /// The groups at the end.
    pub(crate) last: &'a Snapshot,
    /// Every target seen during the run.
    pub(crate) history: &'a History,
    /// The nodes (instance → node name).
    pub(crate) fleet: &'a [NodeSpec],
    /// AWS calls berth made, by operation.
    pub(crate) calls: &'a BTreeMap<String, u64>,
    /// Kubernetes Events recorded, by reason.
    pub(crate) events: &'a BTreeMap<String, usize>,
    /// Each step's title and how long it took.
    pub(crate) steps: &'a [(String, Duration)],
}

impl Report<'_> {
    /// The report as text.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("\nTarget groups\n");
        out.push_str(&table(
            &["GROUP", "TARGET", "NODE", "STATE", "REGISTERED BY"],
            &self.target_rows(),
        ));
        out.push_str("\nAWS calls berth made\n");
        let mut rows: Vec<Vec<String>> = self
            .calls
            .iter()
            .map(|(op, n)| vec![op.clone(), n.to_string()])
            .collect();
        rows.push(vec![
            "total".into(),
            self.calls.values().sum::<u64>().to_string(),
        ]);
        out.push_str(&table(&["OPERATION", "CALLS"], &rows));
        out.push_str("\nKubernetes Events berth recorded\n");
        let rows: Vec<Vec<String>> = self
            .events
            .iter()
            .map(|(reason, n)| vec![reason.clone(), n.to_string()])
            .collect();
        out.push_str(&table(&["REASON", "EVENTS"], &rows));
        out.push_str("\nSteps\n");
        let mut rows: Vec<Vec<String>> = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, (title, took))| vec![format!("{}. {title}", i + 1), seconds(*took)])
            .collect();
        let total: Duration = self.steps.iter().map(|(_, d)| *d).sum();
        rows.push(vec!["total".into(), seconds(total)]);
        out.push_str(&table(&["STEP", "TOOK"], &rows));
        out
    }

    fn target_rows(&self) -> Vec<Vec<String>> {
        let node_of = |t: &Target| self.fleet.iter().position(|n| *n.instance == *t.id);
        let name_of =
            |t: &Target| node_of(t).map_or_else(|| "-".to_owned(), |i| self.fleet[i].name.clone());
        let mut rows = Vec::new();
        for g in self.groups {
            // In fleet order; targets of no node last.
            let mut targets: Vec<&Target> = self
                .history
                .seen
                .iter()
                .filter(|(role, _)| *role == g.role)
                .map(|(_, t)| t)
                .collect();
            targets.sort_by_key(|t| (node_of(t).unwrap_or(usize::MAX), (*t).clone()));
            if targets.is_empty() {
                rows.push(vec![
                    g.name.clone(),
                    "(none)".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                ]);
            }
            for t in targets {
                let state = self
                    .last
                    .state(g.role, t)
                    .map_or_else(|| DEREGISTERED.to_owned(), |s| s.to_string());
                let by = if self.history.owned.contains(&(g.role, t.clone())) {
                    "berth"
                } else {
                    "someone else"
                };
                rows.push(vec![
                    g.name.clone(),
                    t.to_string(),
                    name_of(t),
                    state,
                    by.into(),
                ]);
            }
        }
        rows
    }
}

/// Left-aligned columns two spaces apart, indented by two.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (cell, w) in cells.iter().zip(&widths) {
            let _ = write!(text, "  {cell:<w$}");
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use berth_core::domain::{TargetGroupArn, TargetState};

    use super::*;
    use crate::estate::Role;

    #[test]
    fn the_targets_table_shows_present_and_departed_targets_and_who_registered_them() {
        let arn = TargetGroupArn::new(
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0000000000000001",
        )
        .unwrap();
        let groups = vec![Group {
            role: Role::Web,
            name: "web".into(),
            arn: arn.clone(),
        }];
        let fleet = vec![
            NodeSpec {
                name: "node-1".into(),
                instance: "i-1".into(),
                by_castai: false,
            },
            NodeSpec {
                name: "node-2".into(),
                instance: "i-2".into(),
                by_castai: false,
            },
        ];
        let (one, two, other) = (
            Target::new("i-1", 30080),
            Target::new("i-2", 30080),
            Target::new("i-0", 30080),
        );
        let mut last = Snapshot::default();
        last.members.insert(
            Role::Web,
            BTreeMap::from([
                (one.clone(), TargetState::Healthy),
                (other.clone(), TargetState::Healthy),
            ]),
        );
        let mut history = History::default();
        for t in [&one, &two, &other] {
            history.seen.insert((Role::Web, t.clone()));
        }
        history.owned.insert((Role::Web, one.clone()));
        history.owned.insert((Role::Web, two.clone()));
        let calls = BTreeMap::from([("RegisterTargets".to_owned(), 2)]);
        let events = BTreeMap::from([("Registered".to_owned(), 2)]);
        let steps = vec![("nodes join".to_owned(), Duration::from_millis(1500))];
        let text = Report {
            groups: &groups,
            last: &last,
            history: &history,
            fleet: &fleet,
            calls: &calls,
            events: &events,
            steps: &steps,
        }
        .render();
        let expected = "
Target groups
  GROUP  TARGET     NODE    STATE         REGISTERED BY
  web    i-1:30080  node-1  healthy       berth
  web    i-2:30080  node-2  deregistered  berth
  web    i-0:30080  -       healthy       someone else

AWS calls berth made
  OPERATION        CALLS
  RegisterTargets  2
  total            2

Kubernetes Events berth recorded
  REASON      EVENTS
  Registered  2

Steps
  STEP           TOOK
  1. nodes join  1.50s
  total          1.50s
";
        assert_eq!(text, expected);
    }
}
