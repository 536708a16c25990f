//! The fast KDL parser against the reference (`kdl` crate): on every case of the KDL compliance
//! suite shipped inside the `kdl` package (`tests/test_cases`), and on thousands of mutations of
//! real stacks, whatever the fast parser accepts must be accepted by the reference parser with an
//! identical tree — names, values, and every span.

use planner::source::FileId;
use planner::syntax::{self, Node};
use std::path::{Path, PathBuf};

/// The registry source of the `kdl` crate this workspace builds against.
fn kdl_test_cases() -> PathBuf {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME set")).join(".cargo")
        });
    let registry = cargo_home.join("registry/src");
    let mut found = Vec::new();
    for index in std::fs::read_dir(&registry).expect("cargo registry sources exist") {
        let index = index.unwrap().path();
        for krate in std::fs::read_dir(&index).into_iter().flatten() {
            let krate = krate.unwrap().path();
            let name = krate.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("kdl-6.") && krate.join("tests/test_cases/input").is_dir() {
                found.push(krate.join("tests/test_cases"));
            }
        }
    }
    found.sort();
    found
        .pop()
        .expect("the kdl crate's compliance suite is in the registry sources")
}

/// Node spans are not compared: the reference parser's node span extent is an implementation
/// detail; every token span (names, values, keys) is compared exactly.
fn strip_node_spans(nodes: &mut [Node]) {
    for n in nodes {
        n.span = planner::source::Span::new(FileId(0), 0, 0);
        strip_node_spans(&mut n.children);
    }
}

fn check(text: &str, label: &str) -> bool {
    let Some(mut fast) = syntax::parse_fast(FileId(0), text) else {
        return false;
    };
    let reference = syntax::parse_with_reference(FileId(0), text);
    let mut reference = match reference {
        Ok(r) => r,
        Err(e) => panic!(
            "{label}: fast parser accepted what the reference rejects: {:?}\n{text}",
            e[0].message
        ),
    };
    strip_node_spans(&mut fast);
    strip_node_spans(&mut reference);
    assert_eq!(fast, reference, "{label}: trees differ\n{text}");
    true
}

#[test]
fn fast_parser_agrees_with_the_reference_on_the_compliance_suite() {
    let root = kdl_test_cases();
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(root.join("input"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    inputs.sort();
    assert!(inputs.len() > 300, "suite found at {}", root.display());
    let (mut accepted, mut valid_cases, mut rejected_invalid) = (0, 0, 0);
    for input in &inputs {
        let Ok(text) = std::fs::read_to_string(input) else {
            continue;
        };
        let name = input.file_name().unwrap().to_string_lossy().into_owned();
        let expected_valid = root.join("expected_kdl").join(&name).exists();
        valid_cases += usize::from(expected_valid);
        let fast_accepted = check(&text, &name);
        // `check` already required the reference parser to accept whatever the fast one did;
        // the reference (not the suite) is the authority, as it is what stacks decode with.
        if fast_accepted {
            accepted += 1;
        } else if !expected_valid {
            rejected_invalid += 1;
        }
    }
    // The fast path must actually cover a good part of the language, not defer everything.
    assert!(
        accepted >= 100,
        "fast parser accepted only {accepted} of {valid_cases} valid cases"
    );
    eprintln!(
        "fast parser: accepted {accepted} of {valid_cases} valid cases; rejected {rejected_invalid} invalid ones"
    );
}

fn mutations(text: &str, seed: u64, count: usize) -> Vec<String> {
    let mut rng = planner::testing::Lcg(seed);
    let mut next = move |n: usize| rng.below(n);
    const PIECES: &[&str] = &[
        " ",
        "\t",
        "\n",
        ";",
        "{",
        "}",
        "\"",
        "=",
        "#true",
        "#false",
        "#null",
        "-",
        "+",
        ".",
        "_",
        "0x1F",
        "0o7",
        "0b1",
        "1.5",
        "1e3",
        "1.",
        "\\",
        "\\n",
        "\\u{1F600}",
        "\\s",
        "//",
        "/*",
        "*/",
        "é",
        "\u{a0}",
        "a",
        "true",
        "(t)",
        "/-",
        "#\"",
        "\"\"\"",
        "r",
        "9",
        "-.5",
        "+x",
        "'",
        "~",
    ];
    (0..count)
        .map(|_| {
            let mut s = text.to_string();
            for _ in 0..1 + next(3) {
                let mut pos = next(s.len() + 1);
                while !s.is_char_boundary(pos) {
                    pos -= 1;
                }
                match next(3) {
                    0 => s.insert_str(pos, PIECES[next(PIECES.len())]),
                    1 => {
                        let mut end = (pos + 1 + next(4)).min(s.len());
                        while !s.is_char_boundary(end) {
                            end += 1;
                        }
                        s.replace_range(pos..end, "");
                    }
                    _ => {
                        let mut end = (pos + 1).min(s.len());
                        while !s.is_char_boundary(end) {
                            end += 1;
                        }
                        s.replace_range(pos..end, PIECES[next(PIECES.len())]);
                    }
                }
            }
            s
        })
        .collect()
}

#[test]
fn fast_parser_agrees_with_the_reference_on_mutated_stacks() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../platform-state-example");
    let mut seeds: Vec<String> = planner::load::read_dir(&example)
        .unwrap()
        .into_iter()
        .map(|f| f.text)
        .collect();
    let root = kdl_test_cases();
    for e in std::fs::read_dir(root.join("input")).unwrap().take(120) {
        if let Ok(t) = std::fs::read_to_string(e.unwrap().path()) {
            seeds.push(t);
        }
    }
    let mut accepted = 0;
    let mut total = 0;
    for (i, seed) in seeds.iter().enumerate() {
        for (j, m) in mutations(seed, i as u64 * 7919 + 1, 60)
            .into_iter()
            .enumerate()
        {
            total += 1;
            accepted += usize::from(check(&m, &format!("seed {i} mutation {j}")));
        }
    }
    assert!(
        accepted > total / 10,
        "fast parser accepted only {accepted} of {total}"
    );
}

#[test]
fn the_example_stack_is_entirely_in_the_fast_subset() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../platform-state-example");
    for f in planner::load::read_dir(&example).unwrap() {
        assert!(
            check(&f.text, &f.path),
            "{} fell back to the reference parser",
            f.path
        );
    }
}

/// Found by `fuzz/fuzz_targets/fast_parser_agrees.rs`: digit runs of a float beyond the range of
/// an i128 (the reference refuses them; the fast parser accepted them). Both now refuse, with the
/// reference's diagnostic; floats just inside the range are read alike.
#[test]
fn fuzz_regression_floats_whose_digits_overflow_an_i128() {
    for text in [
        " z -32233223333333.33333333333333333333333336433333333333333333336409333333333364090",
        "n 1.1234567890123456789012345678901234567890",
        "n 123456789012345678901234567890123456789012.5",
        "n 1.5e123456789012345678901234567890123456789012",
    ] {
        assert!(syntax::parse_fast(FileId(0), text).is_none(), "{text}");
        let errors = syntax::parse(FileId(0), text).expect_err(text);
        assert!(!errors.is_empty());
    }
    assert!(check(
        "n 1.12345678901234567890123456789012345678",
        "38 digits"
    ));
    assert!(check(
        "n -12345678901234567890123456789012345678.5",
        "38 digits"
    ));
}

/// Found by `fuzz/fuzz_targets/fast_parser_agrees.rs`: a comment between `=` and a property's
/// value was counted into the value's span on the reference path.
#[test]
fn fuzz_regression_comments_around_a_property_equals_sign() {
    for text in [
        "I\t+.=/**/+",
        "n key= /* a */ /* b /* nested */ */ 5",
        "n key /* before */ = \"v\"",
    ] {
        check(text, text);
        let reference = syntax::parse_with_reference(FileId(0), text).unwrap();
        let prop = &reference[0].props[0];
        let value_text = &text[prop.value_span.start as usize..prop.value_span.end as usize];
        assert!(
            !value_text.starts_with("/*") && !value_text.starts_with(' '),
            "{text}: {value_text:?}"
        );
    }
}
