//! Hostile input for the sidecar's command line (Go-style flags) and Go durations:
//! arbitrary arguments, the example pod's arguments with one changed, and arbitrary
//! duration text never panic; a refusal is one clear line. The `fuzz/` targets
//! `sidecar_args` and `go_duration` run the same parsers under libFuzzer.

// The binary has no library: its parsers are compiled in here as they are.
#[allow(dead_code)]
#[path = "../src/args.rs"]
mod args;
#[allow(dead_code)]
#[path = "../src/duration.rs"]
mod duration;
#[allow(dead_code)]
#[path = "../src/goflags.rs"]
mod goflags;
#[allow(dead_code)]
#[path = "../src/hook.rs"]
mod hook;

use std::ffi::OsString;

use berth_testing::hostile::{assert_clear_error, config};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

/// The arguments of `examples/sidecar/pod-seed-flags.yaml`.
const EXAMPLE: &[&str] = &[
    "-target-group-name=kafka-brokers",
    "-target-id=10.0.0.7",
    "-pre-register-command=nc -z 127.0.0.1 9092",
    "-pre-register-timeout=30s",
    "-post-deregister-command=touch /shared/deregistered",
    "-post-deregister-timeout=5s",
    "-wait-in-service=true",
    "-wait-in-service-timeout=5m0s",
];

fn parse(arguments: Vec<String>, pod_ip: Option<String>) -> Result<(), TestCaseError> {
    let argv = std::iter::once(OsString::from("berth-sidecar"))
        .chain(arguments.into_iter().map(OsString::from));
    match args::parse(argv, pod_ip) {
        Ok(args::Parsed::Run(config)) => {
            prop_assert!(!config.groups.is_empty());
            prop_assert!(!config.target_id.trim().is_empty());
            prop_assert!(config.port != Some(0));
        }
        Ok(args::Parsed::Print(text)) => prop_assert!(!text.trim().is_empty()),
        Err(message) => {
            assert_clear_error(&message);
            prop_assert!(!message.contains('\n'), "more than one line: {message}");
        }
    }
    Ok(())
}

/// A flag of the sidecar, a near miss, or noise; in Go's or clap's spelling.
fn argument() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just("target-group"),
        Just("target-group-name"),
        Just("target-id"),
        Just("port"),
        Just("availability-zone"),
        Just("pre-register-command"),
        Just("pre-register-timeout"),
        Just("post-deregister-timeout"),
        Just("wait-in-service"),
        Just("wait-in-service-timeout"),
        Just("drain-timeout"),
        Just("listen"),
        Just("dry-run"),
        Just("log-level"),
        Just("log-format"),
        Just("aws-max-rps"),
        Just("installation-id"),
        Just("help"),
        Just("version"),
    ];
    let value = prop_oneof![
        ".{0,16}",
        "[0-9.]{0,6}(ns|us|ms|s|m|h|x)?",
        Just(String::new())
    ];
    prop_oneof![
        (
            prop_oneof![Just("-"), Just("--")],
            name.clone(),
            value.clone()
        )
            .prop_map(|(dashes, n, v)| format!("{dashes}{n}={v}")),
        (prop_oneof![Just("-"), Just("--")], name).prop_map(|(d, n)| format!("{d}{n}")),
        value,
        Just("--".to_owned()),
    ]
}

#[test]
fn the_example_arguments_parse() {
    let argv = std::iter::once("berth-sidecar")
        .chain(EXAMPLE.iter().copied())
        .map(OsString::from);
    assert!(matches!(args::parse(argv, None), Ok(args::Parsed::Run(_))));
}

#[test]
fn arbitrary_arguments_are_refused_in_one_clear_line() {
    TestRunner::new(config(256))
        .run(
            &(
                proptest::collection::vec(argument(), 0..8),
                proptest::option::of(".{0,16}"),
            ),
            |(arguments, pod_ip)| parse(arguments, pod_ip),
        )
        .unwrap();
}

#[test]
fn arbitrary_text_arguments_are_refused_in_one_clear_line() {
    TestRunner::new(config(128))
        .run(&proptest::collection::vec(".{0,24}", 0..6), |arguments| {
            parse(arguments, Some("10.0.0.7".into()))
        })
        .unwrap();
}

#[test]
fn the_example_with_one_argument_changed_is_parsed_or_refused_clearly() {
    TestRunner::new(config(256))
        .run(
            &(0..EXAMPLE.len(), 0..3u8, argument()),
            |(at, how, replacement)| {
                let mut arguments: Vec<String> = EXAMPLE.iter().map(|a| a.to_string()).collect();
                match how {
                    0 => arguments[at] = replacement,
                    1 => {
                        arguments.remove(at);
                    }
                    _ => arguments.insert(at, replacement),
                }
                parse(arguments, None)
            },
        )
        .unwrap();
}

#[test]
fn arbitrary_durations_are_refused_clearly_or_round_trip() {
    let durations = prop_oneof![
        ".{0,24}",
        "[+-]?([0-9]{0,25}(\\.[0-9]{0,25})?(ns|us|µs|μs|ms|s|m|h|x)?){1,4}",
    ];
    TestRunner::new(config(512))
        .run(&durations, |text| {
            match duration::parse_go_duration(&text) {
                Ok(parsed) => {
                    // What Go would print parses back to the same duration.
                    let printed = duration::format_go_duration(parsed);
                    prop_assert_eq!(duration::parse_go_duration(&printed).ok(), Some(parsed));
                }
                Err(e) => {
                    let message = e.to_string();
                    assert_clear_error(&message);
                    prop_assert!(message.contains(&format!("{text:?}")), "{message}");
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn arbitrary_booleans_are_refused_clearly() {
    TestRunner::new(config(128))
        .run(&".{0,8}", |text| {
            if let Err(message) = goflags::parse_go_bool(&text) {
                assert_clear_error(&message);
            }
            Ok(())
        })
        .unwrap();
}
