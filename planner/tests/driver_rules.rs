//! The rules each driver declares about what it serves (`descriptors/src/<driver>.rs`: the
//! variants of a kind, the fields it refuses, the settings a kind needs), one fixture per rule:
//! `fixtures/driver-rules/<rule>/` must be refused with the located diagnostic in
//! `snapshots/driver_rules__<rule>.snap`.

use planner::diagnostic::Colour;
use std::path::Path;

#[test]
fn every_driver_rule_refuses_its_fixture_at_the_resource() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/driver-rules");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .expect("fixtures exist")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 10, "a fixture per rule, found {}", dirs.len());
    for dir in dirs {
        let rule = dir.file_name().unwrap().to_string_lossy().into_owned();
        let analysis = planner::analyze_dir(&dir).expect("fixture readable");
        assert!(analysis.has_errors(), "fixture {rule} was accepted");
        let errors: Vec<_> = analysis
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .collect();
        assert_eq!(errors.len(), 1, "fixture {rule}: {errors:#?}");
        assert!(
            matches!(errors[0].code, "unsupported-kind" | "missing-field"),
            "fixture {rule}: {}",
            errors[0].code
        );
        insta::assert_snapshot!(rule.as_str(), analysis.render_diagnostics(Colour::Never));
    }
}
