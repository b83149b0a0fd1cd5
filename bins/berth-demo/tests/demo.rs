//! The compiled `berth-demo` on its embedded default (in-memory AWS): it walks the
//! scenario with the real daemon controller, exits 0 and ends with the expected table.

mod common;

use common::demo;

#[test]
fn runs_the_scenario_on_in_memory_aws_and_ends_with_the_expected_table() {
    // A 2 s drain (1 s by default): a loaded machine still sees the targets draining.
    let run = demo(&["--drain-delay", "2s"]);
    assert_eq!(run.code, Some(0), "{}", run.text());
    let expected = [
        "web i-0de00000000000001:30080 node-1 healthy berth",
        "web i-0de00000000000002:30080 node-2 deregistered berth",
        "web i-0de00000000000003:30080 node-3 healthy berth",
        "web i-0de00000000000004:30080 node-4 deregistered berth",
        "web i-0de00000000000007:30080 - healthy someone else",
        "api i-0de00000000000001:30443 node-1 healthy berth",
        "api i-0de00000000000002:30443 node-2 deregistered berth",
        "api i-0de00000000000003:30443 node-3 healthy berth",
        "api i-0de00000000000004:30443 node-4 deregistered berth",
        "batch i-0de00000000000005:30090 node-5 deregistered berth",
        "batch i-0de00000000000006:30090 node-6 deregistered berth",
        "batch-v2 i-0de00000000000005:30091 node-5 healthy berth",
        "batch-v2 i-0de00000000000006:30091 node-6 healthy berth",
    ];
    assert_eq!(run.section("Target groups"), expected, "{}", run.text());

    // In memory, deregistered targets drain for the groups' delay: every leaving step
    // saw them draining before they left.
    for step in ["node-2", "node-4"] {
        assert!(
            run.stdout.contains(&format!(
                "✓ {step}'s targets in web and api: deregistered, drained and gone"
            )),
            "{}",
            run.text()
        );
    }
    assert!(
        run.stdout
            .contains("✓ node-5 and node-6 moved from batch (drained) to batch-v2"),
        "{}",
        run.text()
    );

    // One RegisterTargets per group at least, one DeregisterTargets per group a node
    // left (node-2 and node-4 from web and api, the Cast.ai nodes from batch).
    run.assert_counts_at_least(
        "AWS calls berth made",
        &[
            ("RegisterTargets", 4),
            ("DeregisterTargets", 5),
            ("DescribeTargetHealth", 4),
        ],
    );
    let events = "Kubernetes Events berth recorded";
    assert!(
        run.count(events, "Registered") >= Some(6),
        "at least one per node: {}",
        run.text()
    );
    let steps = run.section("Steps");
    assert_eq!(steps.len(), 7, "six steps and the total: {}", run.text());
    assert!(steps[5].starts_with("6. berth-daemon stops "), "{steps:?}");
}

#[test]
fn help_explains_the_demo() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth-demo"))
        .arg("--help")
        .output()
        .expect("run berth-demo --help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "real berth-daemon controller",
        "--aws-endpoint <URL>",
        "--drain-delay <DURATION>",
        "--progress <PROGRESS>",
        "someone else registered",
    ] {
        assert!(help.contains(needle), "{needle:?} missing from:\n{help}");
    }
}

#[test]
fn a_bad_flag_is_a_usage_error() {
    let run = demo(&["--drain-delay", "soon"]);
    assert_eq!(run.code, Some(2), "{}", run.text());
}

#[test]
fn an_interrupt_stops_the_daemon_and_exits_130() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let mut child = Command::new(env!("CARGO_BIN_EXE_berth-demo"))
        .args(["--progress", "plain", "--drain-delay", "30s"])
        .env_remove("RUST_LOG")
        .env_remove("BERTH_LOG_LEVEL")
        .env_remove("BERTH_DEMO_AWS_ENDPOINT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn berth-demo");
    let stdout = child.stdout.take().expect("stdout");
    let mut seen = Vec::new();
    // With a 30 s drain, step 3 waits on node-2's draining targets: interrupt it there.
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("stdout line");
        let waiting = line.contains("node-2 in web: 1 draining");
        seen.push(line);
        if waiting {
            let status = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status()
                .expect("kill -INT");
            assert!(status.success());
        }
    }
    let status = child.wait().expect("wait");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("stderr");
    let text = format!("{}\n--- stderr ---\n{stderr}", seen.join("\n"));
    assert_eq!(status.code(), Some(130), "{text}");
    assert!(stderr.contains("interrupted"), "{text}");
    assert!(
        seen.iter().any(|l| l.contains("✓ stopped cleanly")),
        "the daemon is stopped before the exit: {text}"
    );
}
