//! One fixture stack per diagnostic: `fixtures/diagnostics/<code>/` must produce a diagnostic
//! with that code, and the rendered diagnostics (file, line, column, label, help) must match the
//! snapshot `snapshots/diagnostics__<code>.snap`.

use planner::diagnostic::Colour;
use std::path::{Path, PathBuf};

fn fixture_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/diagnostics");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("fixtures exist")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn every_fixture_produces_its_diagnostic_at_the_snapshotted_location() {
    let dirs = fixture_dirs();
    assert!(
        dirs.len() >= 25,
        "expected a fixture per diagnostic, found {}",
        dirs.len()
    );
    for dir in dirs {
        let code = dir.file_name().unwrap().to_string_lossy().into_owned();
        let analysis = planner::analyze_dir(&dir).expect("fixture readable");
        assert!(
            analysis.diagnostics.iter().any(|d| d.code == code),
            "fixture {code} did not produce a `{code}` diagnostic; got: {:?}",
            analysis
                .diagnostics
                .iter()
                .map(|d| d.code)
                .collect::<Vec<_>>()
        );
        // Warnings leave the stack valid; errors make it invalid.
        let expected_error = analysis
            .diagnostics
            .iter()
            .any(|d| d.code == code && d.is_error());
        assert_eq!(analysis.has_errors(), expected_error, "fixture {code}");
        let rendered = analysis.render_diagnostics(Colour::Never);
        insta::assert_snapshot!(code.as_str(), rendered);
    }
}

#[test]
fn diagnostics_never_print_a_literal_secret() {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/diagnostics/secret-literal");
    let analysis = planner::analyze_dir(&dir).unwrap();
    for colour in [Colour::Never, Colour::Always] {
        let text = analysis.render_diagnostics(colour);
        assert!(!text.contains("sk_live_"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}

#[test]
fn all_problems_of_a_stack_are_reported_in_one_run() {
    let files = vec![
        planner::StackFile {
            path: "platform.kdl".into(),
            text: "platform \"p\" { driver \"local\" }\nteam \"core\"\n".into(),
        },
        planner::StackFile {
            path: "a.kdl".into(),
            text: "service \"a\" {\n    team \"nope\"\n    image \"ghcr.io/x/a:1\"\n    replica 2\n}\n".into(),
        },
        planner::StackFile { path: "b.kdl".into(), text: "topic \"B\" {\n    team \"core\"\n}\n".into() },
        planner::StackFile { path: "c.kdl".into(), text: "bucket \"c\" {\n    team \"core\"\n    versioning \"yes\"\n}\n".into() },
    ];
    let analysis = planner::analyze(files);
    let mut codes: Vec<&str> = analysis.diagnostics.iter().map(|d| d.code).collect();
    codes.sort();
    assert_eq!(
        codes,
        [
            "invalid-name",
            "undeclared-team",
            "unknown-field",
            "wrong-type"
        ]
    );
}

#[test]
fn a_syntax_error_in_one_file_does_not_hide_errors_in_others() {
    let files = vec![
        planner::StackFile {
            path: "platform.kdl".into(),
            text: "platform \"p\" { driver \"local\" }\n".into(),
        },
        planner::StackFile {
            path: "broken.kdl".into(),
            text: "team \"core\" {\n".into(),
        },
        planner::StackFile {
            path: "ok.kdl".into(),
            text: "topic \"t\" {\n    team \"core\"\n    partitions 0\n}\n".into(),
        },
    ];
    let analysis = planner::analyze(files);
    let codes: Vec<&str> = analysis.diagnostics.iter().map(|d| d.code).collect();
    assert!(codes.contains(&"syntax-error"), "{codes:?}");
    assert!(codes.contains(&"out-of-range"), "{codes:?}");
    // The team may be declared in the broken file, so no dangling-team noise.
    assert!(!codes.contains(&"undeclared-team"), "{codes:?}");
}

#[test]
fn the_example_stack_validates_clean() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../platform-state-example");
    let analysis = planner::analyze_dir(&dir).unwrap();
    assert!(
        analysis.diagnostics.is_empty(),
        "{}",
        analysis.render_diagnostics(Colour::Never)
    );
    let stack = &analysis.stack;
    assert!(stack.teams.len() >= 4);
    assert!(stack.resources.len() >= 25);
    for kind in planner::model::Kind::ALL {
        assert!(
            stack.resources.iter().any(|r| r.address.kind == kind),
            "no {kind} in the example"
        );
    }
}

#[test]
fn label_values_must_be_valid_kubernetes_labels_and_ownership_labels_are_reserved() {
    let text = "platform \"p\" {\n    driver \"local\"\n}\nteam \"core\"\nservice \"api\" {\n    team \"core\"\n    image \"ghcr.io/acme/api:1.0.0\"\n    labels tier=\"critical path\" \"platformd.dev/stack\"=\"other\" ok=\"v1.2_x\"\n}\n";
    let analysis = planner::analyze(vec![planner::StackFile {
        path: "platform.kdl".into(),
        text: text.into(),
    }]);
    let messages: Vec<String> = analysis
        .diagnostics
        .iter()
        .map(|d| format!("{}: {}", d.code, d.message))
        .collect();
    assert_eq!(
        messages,
        [
            "invalid-value: label `tier` \"critical path\" is not valid: label values are at most 63 characters of letters, digits, `-`, `_` and `.`, starting and ending with a letter or digit",
            "invalid-name: label `platformd.dev/stack` is reserved",
        ]
    );
}

#[test]
fn a_pipeline_sink_takes_the_keys_of_its_target() {
    let platform = "platform \"p\" {\n    driver \"local\" { path \"out\" }\n}\nteam \"data\" {\n    owner \"data@acme.example\"\n}\ntopic \"events\" {\n    team \"data\"\n}\nbucket \"lake\" {\n    team \"data\"\n}\ndatabase \"pg\" {\n    team \"data\"\n    engine \"postgres\"\n    size \"db.t4g.medium\"\n}\ndatabase \"ch\" {\n    team \"data\"\n    engine \"clickhouse\"\n    user \"ingest\" password=\"aws-sm:prod/ch/ingest\"\n}\n";
    let pipeline = |sink: &str| {
        format!(
            "pipeline \"p\" {{\n    team \"data\"\n    source \"topic/events\"\n    transform sql=\"SELECT * FROM input\"\n    sink {sink}\n    dead-letter-topic \"topic/events\"\n    image \"ghcr.io/acme/ingest:2.0.0\"\n}}\n"
        )
    };
    let codes = |sink: &str| -> Vec<&'static str> {
        let analysis = planner::analyze(vec![
            planner::StackFile {
                path: "platform.kdl".into(),
                text: platform.into(),
            },
            planner::StackFile {
                path: "p.kdl".into(),
                text: pipeline(sink),
            },
        ]);
        analysis
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.code)
            .collect()
    };
    assert_eq!(
        codes(
            "\"database/ch\" table=\"events\" columns=\"id UInt64, at DateTime\" partition-by=\"toYYYYMM(at)\" order-by=\"(at)\""
        ),
        Vec::<&str>::new()
    );
    // The table is made by the pipeline: it needs its columns, as `name Type` pairs.
    assert_eq!(
        codes("\"database/ch\" table=\"events\" order-by=\"(at)\""),
        ["missing-field"]
    );
    assert_eq!(
        codes("\"database/ch\" table=\"events\" columns=\"id, at\""),
        ["invalid-value"]
    );
    // Its DDL runs as the cluster's administrator: one expression per key, plain table names.
    assert_eq!(
        codes(
            "\"database/ch\" table=\"events\" columns=\"id UInt64, at DateTime\" order-by=\"(at); DROP TABLE payments\""
        ),
        ["invalid-value"]
    );
    assert_eq!(
        codes("\"database/ch\" table=\"events\" columns=\"id UInt64 -- , at DateTime\""),
        ["invalid-value"]
    );
    assert_eq!(
        codes("\"database/ch\" table=\"ev ents\" columns=\"id UInt64\""),
        ["invalid-value"]
    );
    assert_eq!(
        codes("\"database/ch\" table=\"events\" columns=\"id UInt64\" time-column=\"at\""),
        ["invalid-value"]
    );
    // It writes as one of the cluster's users.
    assert_eq!(
        codes("\"database/ch\" table=\"events\" columns=\"id UInt64\" user=\"ingest\""),
        Vec::<&str>::new()
    );
    assert_eq!(
        codes("\"database/ch\" table=\"events\" columns=\"id UInt64\" user=\"nobody\""),
        ["invalid-value"]
    );
    assert_eq!(
        codes("\"bucket/lake\" prefix=\"events/\""),
        Vec::<&str>::new()
    );
    assert_eq!(
        codes("\"database/pg\" table=\"events\""),
        Vec::<&str>::new()
    );
    assert_eq!(
        codes("\"database/pg\" table=\"events\" order-by=\"(at)\""),
        ["wrong-arguments"]
    );
    assert_eq!(
        codes("\"bucket/lake\" table=\"events\""),
        ["wrong-arguments"]
    );
    assert_eq!(codes("\"database/ch\""), ["missing-field", "missing-field"]);
}

#[test]
fn a_clickhouse_table_under_retention_needs_a_time_column() {
    let stack = |columns: &str| {
        format!(
            "platform \"p\" {{\n    driver \"local\" {{ path \"out\" }}\n}}\nteam \"data\" {{\n    owner \"data@acme.example\"\n}}\ntopic \"events\" {{\n    team \"data\"\n}}\ndatabase \"ch\" {{\n    team \"data\"\n    engine \"clickhouse\"\n    retention-days 30\n    user \"ingest\" password=\"aws-sm:prod/ch/ingest\"\n}}\npipeline \"p\" {{\n    team \"data\"\n    source \"topic/events\"\n    sink \"database/ch\" table=\"events\" columns=\"{columns}\"\n    image \"ghcr.io/acme/ingest:2.0.0\"\n}}\n"
        )
    };
    let errors = |columns: &str| -> Vec<String> {
        planner::analyze(vec![planner::StackFile {
            path: "platform.kdl".into(),
            text: stack(columns),
        }])
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.message.clone())
        .collect()
    };
    assert_eq!(errors("id UInt64, at DateTime"), Vec::<String>::new());
    assert_eq!(errors("id UInt64, day Date"), Vec::<String>::new());
    assert_eq!(
        errors("id UInt64, note String"),
        ["the table of pipeline/p needs a time column for the cluster's 30-day retention"]
    );
}

#[test]
fn a_clickhouse_cluster_s_users_are_plain_names_with_passwords_by_reference_in_one_store() {
    let codes = |users: &str| -> Vec<&'static str> {
        let text = format!(
            "platform \"p\" {{\n    driver \"local\" {{ path \"out\" }}\n}}\nteam \"data\" {{\n    owner \"data@acme.example\"\n}}\nbucket \"b\" {{\n    team \"data\"\n}}\ndatabase \"ch\" {{\n    team \"data\"\n    engine \"clickhouse\"\n    backup bucket=\"b\"\n{users}}}\n"
        );
        planner::analyze(vec![planner::StackFile {
            path: "platform.kdl".into(),
            text,
        }])
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.code)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
    };
    assert_eq!(
        codes("    user \"ingest\" password=\"aws-sm:prod/ch/ingest\"\n"),
        Vec::<&str>::new()
    );
    // The backup job needs a user to sign in as.
    assert_eq!(codes(""), ["missing-field"]);
    assert_eq!(
        codes("    user \"default\" password=\"aws-sm:prod/ch/default\"\n"),
        ["invalid-value", "missing-field"]
    );
    assert_eq!(
        codes("    user \"ingest\" password=\"hunter2-literal\"\n"),
        ["invalid-secret-ref", "missing-field"]
    );
    assert_eq!(
        codes("    user \"a\" password=\"aws-sm:x\"\n    user \"b\" password=\"vault:y\"\n"),
        ["invalid-value"]
    );
    assert_eq!(
        codes("    user \"a\" password=\"aws-sm:x\"\n    user \"a\" password=\"aws-sm:y\"\n"),
        ["duplicate-field"]
    );
}
