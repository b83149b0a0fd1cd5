//! Hostile input for the parsers' property tests (`tests/hostile_input.rs` of each
//! crate): arbitrary bytes and text, and valid documents with one thing changed.
//!
//! The strategies are small on purpose: CI runs them on every push, so each test
//! bounds its case count with [`config`].

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value};

/// A runner configuration: `cases` cases, no regression files written into the
/// source tree (a failure prints its input; it becomes a named regression test).
pub fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Any JSON value, a few levels deep, with keys that sometimes collide with real ones.
pub fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,24}".prop_map(Value::from),
        "[a-z0-9:/._-]{0,40}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-zA-Z_-]{0,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// `valid` with one node changed: a value replaced by an arbitrary one, a key
/// removed, or an unknown key added. Every node (the root too) can be picked.
pub fn one_field_changed(valid: Value) -> impl Strategy<Value = Value> {
    let nodes = count_nodes(&valid);
    (0..nodes, 0..3u8, any_json(), "[a-zA-Z_-]{1,12}").prop_map(
        move |(target, how, replacement, key)| {
            let mut doc = valid.clone();
            let mut seen = 0;
            change(&mut doc, target, how, replacement, &key, &mut seen);
            doc
        },
    )
}

fn count_nodes(v: &Value) -> usize {
    1 + match v {
        Value::Array(items) => items.iter().map(count_nodes).sum(),
        Value::Object(map) => map.values().map(count_nodes).sum(),
        _ => 0,
    }
}

/// Changes the `target`-th node in pre-order; returns whether it was found.
fn change(
    v: &mut Value,
    target: usize,
    how: u8,
    replacement: Value,
    key: &str,
    seen: &mut usize,
) -> bool {
    if *seen == target {
        match (how, &mut *v) {
            (1, Value::Object(map)) if !map.is_empty() => {
                let first = map.keys().nth(target % map.len()).cloned();
                if let Some(k) = first {
                    map.remove(&k);
                }
            }
            (2, Value::Object(map)) => {
                map.insert(key.to_owned(), replacement);
            }
            _ => *v = replacement,
        }
        return true;
    }
    *seen += 1;
    let children: Vec<&mut Value> = match v {
        Value::Array(items) => items.iter_mut().collect(),
        Value::Object(map) => map.values_mut().collect(),
        _ => Vec::new(),
    };
    for child in children {
        if change(child, target, how, replacement.clone(), key, seen) {
            return true;
        }
    }
    false
}

/// `valid` text with one edit at a random place: a character inserted, a range
/// deleted, or the text cut short.
pub fn one_edit(valid: &str) -> impl Strategy<Value = String> {
    let chars: Vec<char> = valid.chars().collect();
    let len = chars.len().max(1);
    (0..len, 0..len, 0..3u8, any::<char>()).prop_map(move |(at, span, how, c)| {
        let mut out = chars.clone();
        let at = at.min(out.len());
        match how {
            0 => out.insert(at, c),
            1 => {
                let end = (at + span % 16 + 1).min(out.len());
                out.drain(at..end);
            }
            _ => out.truncate(at),
        }
        out.into_iter().collect()
    })
}

/// Asserts that a refusal explains itself: a message that is not empty and is not
/// a panic's.
pub fn assert_clear_error(message: &str) {
    assert!(!message.trim().is_empty(), "an empty error message");
    assert!(
        !message.contains("panicked"),
        "a panic reported as an error: {message}"
    );
}

/// What a parser's property test checks of one input: it is parsed, or refused clearly.
pub type Check<'a> = &'a dyn Fn(&str) -> Result<(), TestCaseError>;

/// `check` on arbitrary text of up to 200 characters (256 cases).
pub fn arbitrary_text(check: Check<'_>) {
    TestRunner::new(config(256))
        .run(&".{0,200}", |text| check(&text))
        .unwrap();
}

/// `check` on arbitrary bytes read as text, lossily (128 cases).
pub fn arbitrary_bytes_as_text(check: Check<'_>) {
    TestRunner::new(config(128))
        .run(&proptest::collection::vec(any::<u8>(), 0..200), |bytes| {
            check(&String::from_utf8_lossy(&bytes))
        })
        .unwrap();
}

/// `check` on `example` with one edit (256 cases).
pub fn example_with_one_edit(example: &str, check: Check<'_>) {
    TestRunner::new(config(256))
        .run(&one_edit(example), |text| check(&text))
        .unwrap();
}

/// `check` on the JSON text of `valid` with one field changed (256 cases).
pub fn valid_with_one_field_changed(valid: Value, check: Check<'_>) {
    TestRunner::new(config(256))
        .run(&one_field_changed(valid), |doc| check(&doc.to_string()))
        .unwrap();
}

/// `check` on the JSON text of any JSON document (128 cases).
pub fn any_json_document(check: Check<'_>) {
    TestRunner::new(config(128))
        .run(&any_json(), |doc| check(&doc.to_string()))
        .unwrap();
}

/// `check` on `<key>: ` followed by flow sequences and mappings nested 64, 1,000 and
/// 100,000 deep: a parser must refuse them without overflowing the stack.
pub fn deeply_nested_yaml(key: &str, check: Check<'_>) {
    for depth in [64, 1_000, 100_000] {
        for (open, close) in [("[", "]"), ("{a: ", "}")] {
            let text = format!("{key}: {}{}", open.repeat(depth), close.repeat(depth));
            check(&text).unwrap();
        }
    }
}

/// The hostile-input tests of a YAML configuration parser, one `#[test]` each:
/// arbitrary text and bytes, `example` with one edit, `valid` with one field changed
/// (the test named `one_field_changed`), any JSON document, and flow collections
/// nested deep under `root_key`. `check` parses one input and passes when it is parsed
/// or refused clearly.
///
/// ```ignore
/// berth_testing::hostile_yaml_tests! {
///     check: check,
///     example: EXAMPLE,
///     valid: valid_rules(),
///     one_field_changed: valid_rules_with_one_field_changed_are_parsed_or_refused_clearly,
///     root_key: "rules",
/// }
/// ```
#[macro_export]
macro_rules! hostile_yaml_tests {
    (
        check: $check:expr,
        example: $example:expr,
        valid: $valid:expr,
        one_field_changed: $one_field_changed:ident,
        root_key: $root_key:expr $(,)?
    ) => {
        #[test]
        fn arbitrary_text_is_refused_clearly() {
            $crate::hostile::arbitrary_text(&$check);
        }

        #[test]
        fn arbitrary_bytes_as_text_are_refused_clearly() {
            $crate::hostile::arbitrary_bytes_as_text(&$check);
        }

        #[test]
        fn the_example_with_one_edit_is_parsed_or_refused_clearly() {
            $crate::hostile::example_with_one_edit($example, &$check);
        }

        #[test]
        fn $one_field_changed() {
            $crate::hostile::valid_with_one_field_changed($valid, &$check);
        }

        #[test]
        fn any_json_document_is_parsed_or_refused_clearly() {
            $crate::hostile::any_json_document(&$check);
        }

        #[test]
        fn deeply_nested_yaml_is_refused_without_overflowing_the_stack() {
            $crate::hostile::deeply_nested_yaml($root_key, &$check);
        }
    };
}
