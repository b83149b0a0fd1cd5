//! Go `flag`-package command lines, rewritten for clap.
//!
//! The seed is a Go program: its users write `-target-group-name web -wait-in-service=false`.
//! Go accepts one or two dashes for every flag; clap wants two for long flags. This
//! rewrites `-name`/`-name=value` to `--name`/`--name=value` and leaves alone what is
//! not a flag: values of flags that take one, negative numbers, single-letter short
//! flags (`-h`) and everything after `--`.

use std::ffi::OsString;

/// Rewrites Go-style single-dash long flags to double-dash ones. `args` starts with
/// the program name. `takes_value(name)` says whether the long flag `name` consumes
/// the next argument when written without `=`.
pub(crate) fn normalise(
    args: impl IntoIterator<Item = OsString>,
    takes_value: impl Fn(&str) -> bool,
) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut args = args.into_iter();
    out.extend(args.next());
    let mut value_follows = false;
    let mut rest_verbatim = false;
    for arg in args {
        if rest_verbatim || std::mem::take(&mut value_follows) {
            out.push(arg);
            continue;
        }
        let Some(text) = arg.to_str() else {
            out.push(arg);
            continue;
        };
        if text == "--" {
            rest_verbatim = true;
            out.push(arg);
            continue;
        }
        let long = if let Some(name) = text.strip_prefix("--") {
            Some(name)
        } else {
            text.strip_prefix('-')
                .filter(|name| name.chars().next().is_some_and(|c| c.is_ascii_alphabetic()))
                .filter(|name| name.split('=').next().is_some_and(|n| n.len() > 1))
        };
        match long {
            Some(name) => {
                let (flag, inline_value) = match name.split_once('=') {
                    Some((flag, _)) => (flag, true),
                    None => (name, false),
                };
                value_follows = !inline_value && takes_value(flag);
                out.push(OsString::from(format!("--{name}")));
            }
            None => out.push(arg),
        }
    }
    out
}

/// Go's `strconv.ParseBool`, which the seed's boolean flags use.
pub(crate) fn parse_go_bool(text: &str) -> Result<bool, String> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        other => Err(format!(
            "invalid boolean {other:?} (use true or false, e.g. -wait-in-service=false)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Vec<String> {
        let takes_value = |name: &str| matches!(name, "target-group-name" | "pre-register-command");
        normalise(args.iter().map(OsString::from), takes_value)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn single_dash_long_flags_get_two_dashes() {
        assert_eq!(
            run(&[
                "sidecar",
                "-target-group-name",
                "web",
                "-wait-in-service=false",
                "--port",
                "80"
            ]),
            [
                "sidecar",
                "--target-group-name",
                "web",
                "--wait-in-service=false",
                "--port",
                "80"
            ]
        );
    }

    #[test]
    fn values_are_never_rewritten() {
        // The value of a flag that takes one stays as written, even if it looks like a flag.
        assert_eq!(
            run(&["s", "-pre-register-command", "-rf", "-target-group-name=-x"]),
            [
                "s",
                "--pre-register-command",
                "-rf",
                "--target-group-name=-x"
            ]
        );
        assert_eq!(
            run(&["s", "--pre-register-command", "-v"]),
            ["s", "--pre-register-command", "-v"]
        );
    }

    #[test]
    fn short_flags_numbers_and_the_terminator_stay() {
        assert_eq!(run(&["s", "-h"]), ["s", "-h"]);
        assert_eq!(run(&["s", "-5"]), ["s", "-5"]);
        assert_eq!(
            run(&["s", "--", "-target-id", "x"]),
            ["s", "--", "-target-id", "x"]
        );
        assert_eq!(run(&["s", "-help"]), ["s", "--help"]);
    }

    #[test]
    fn go_booleans() {
        for t in ["1", "t", "T", "true", "TRUE", "True"] {
            assert_eq!(parse_go_bool(t), Ok(true));
        }
        for f in ["0", "f", "F", "false", "FALSE", "False"] {
            assert_eq!(parse_go_bool(f), Ok(false));
        }
        assert!(parse_go_bool("yes").is_err());
    }
}
