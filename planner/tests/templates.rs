//! Templates (`docs/LANGUAGE.md`, "Templates"): expansion results as snapshots, versions side by
//! side, `when=`, typed interpolation, templates-only teams, diagnostics inside an expansion
//! traced to the use site, and the catalog. The diagnostics of templates themselves have one
//! fixture each in `fixtures/diagnostics/` (`diagnostics.rs`).

use planner::diagnostic::Colour;
use planner::plan::PlanOptions;
use planner::template::Catalog;
use planner::{Analysis, Snapshot};
use std::path::Path;

fn analyze(name: &str) -> Analysis {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/templates")
        .join(name);
    planner::analyze_dir(&dir).expect("fixture readable")
}

fn golden() -> (Analysis, Snapshot) {
    let analysis = analyze("golden");
    assert!(
        !analysis.has_errors(),
        "{}",
        analysis.render_diagnostics(Colour::Never)
    );
    let snapshot = analysis.snapshot.clone().expect("a valid stack");
    (analysis, snapshot)
}

#[test]
fn uses_expand_to_the_templates_resources_with_parameters_substituted() {
    let (_, snapshot) = golden();
    let addresses: Vec<&str> = snapshot.resources.keys().map(String::as_str).collect();
    assert_eq!(
        addresses,
        [
            "bucket/web-assets",
            "database/checkout-db",
            "service/checkout",
            "service/legacy-shop",
            "topic/checkout-events",
        ]
    );
    // The expanded resources, as the planner sees them after validation.
    let expanded: serde_json::Value = snapshot
        .resources
        .iter()
        .map(|(address, r)| {
            (
                address.clone(),
                serde_json::json!({"team": r.team, "spec": r.spec.value(), "template": r.template}),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into();
    insta::assert_snapshot!(
        "golden_expanded",
        serde_json::to_string_pretty(&expanded).unwrap()
    );
}

#[test]
fn a_value_that_is_exactly_one_parameter_keeps_its_type() {
    let (_, snapshot) = golden();
    let checkout = snapshot.resources["service/checkout"].spec.value();
    // `replicas "{replicas}"` became the integer 3, not the string "3".
    assert_eq!(checkout["replicas"], serde_json::json!(3));
    // Inside a longer string a parameter is text.
    assert_eq!(
        checkout["labels"]["made-by"],
        serde_json::json!("web-service-checkout")
    );
    // A default fills what the use leaves out.
    let legacy = snapshot.resources["service/legacy-shop"].spec.value();
    assert_eq!(legacy["replicas"], serde_json::json!(2));
}

#[test]
fn versions_coexist_and_each_use_gets_the_one_it_names() {
    let (_, snapshot) = golden();
    let checkout = snapshot.resources["service/checkout"]
        .template
        .clone()
        .unwrap();
    let legacy = snapshot.resources["service/legacy-shop"]
        .template
        .clone()
        .unwrap();
    assert_eq!(
        (checkout.version.as_str(), legacy.version.as_str()),
        ("2", "1")
    );
    // Version 1 has no health check; version 2 does.
    assert!(snapshot.resources["service/legacy-shop"].spec.value()["health-check"].is_null());
    assert_eq!(
        snapshot.resources["service/checkout"].spec.value()["health-check"]["path"],
        "/healthz"
    );
    assert_eq!(checkout.at, "web/apps.kdl:1:1");
    assert_eq!(checkout.use_name, "checkout");
}

#[test]
fn when_false_leaves_a_resource_and_a_field_out() {
    let (_, snapshot) = golden();
    // legacy-shop uses version 1; a version-2 use without `database` makes no database and no
    // DATABASE_URL. Checked through a stack written for it.
    let files = vec![
        planner::StackFile {
            path: "platform.kdl".into(),
            text: std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/fixtures/templates/golden/platform.kdl"),
            )
            .unwrap(),
        },
        planner::StackFile {
            path: "templates/web.kdl".into(),
            text: std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/fixtures/templates/golden/templates/web.kdl"),
            )
            .unwrap(),
        },
        planner::StackFile {
            path: "web/cart.kdl".into(),
            text: "use \"web-service\" version=\"2\" name=\"cart\" team=\"web\" {\n    image \"ghcr.io/acme/cart:1.0.0\"\n}\n".into(),
        },
    ];
    let analysis = planner::analyze(files);
    assert!(
        !analysis.has_errors(),
        "{}",
        analysis.render_diagnostics(Colour::Never)
    );
    let cart = analysis.snapshot.unwrap();
    assert!(!cart.resources.contains_key("database/cart-db"));
    assert!(
        cart.resources["service/cart"].spec.value()["env"]
            .get("DATABASE_URL")
            .is_none()
    );
    assert!(snapshot.resources.contains_key("database/checkout-db"));
}

#[test]
fn plans_say_which_template_and_use_made_each_resource() {
    let (_, snapshot) = golden();
    let plan = planner::plan::plan(
        &Snapshot::empty("golden"),
        &snapshot,
        &PlanOptions::default(),
    );
    insta::assert_snapshot!("golden_plan_text", planner::render::text(&plan, false));
    insta::assert_snapshot!(
        "golden_plan_md",
        planner::render::markdown(&plan, planner::render::MARKDOWN_LIMIT)
    );
    let json = serde_json::to_value(&plan).unwrap();
    let checkout = json["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == "service/checkout")
        .unwrap();
    assert_eq!(
        checkout["template"],
        serde_json::json!({"template": "web-service", "version": "2", "use": "checkout", "at": "web/apps.kdl:1:1"})
    );
    let bucket = json["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == "bucket/web-assets")
        .unwrap();
    assert!(bucket.get("template").is_none(), "written by hand");
}

#[test]
fn a_problem_inside_an_expansion_points_at_each_use_with_the_template_as_a_note() {
    let analysis = analyze("broken-expansion");
    assert!(analysis.has_errors());
    let errors: Vec<_> = analysis
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .collect();
    // One template line, two uses: two errors, each at its own use.
    assert_eq!(
        errors.len(),
        2,
        "{}",
        analysis.render_diagnostics(Colour::Never)
    );
    insta::assert_snapshot!(
        "broken_expansion",
        analysis.render_diagnostics(Colour::Never)
    );
}

#[test]
fn the_catalog_lists_every_version_with_its_parameters() {
    let (analysis, _) = golden();
    let catalog = Catalog {
        stack: "golden".into(),
        templates: analysis.stack.templates.catalog(&analysis.stack.sources),
    };
    let versions: Vec<(&str, &str, usize)> = catalog
        .templates
        .iter()
        .map(|t| (t.name.as_str(), t.version.as_str(), t.uses))
        .collect();
    assert_eq!(versions, [("web-service", "1", 1), ("web-service", "2", 1)]);
    insta::assert_snapshot!("catalog_text", catalog.text());
    insta::assert_snapshot!("catalog_md", catalog.markdown());
    insta::assert_snapshot!(
        "catalog_json",
        serde_json::to_string_pretty(&catalog).unwrap()
    );
}

#[test]
fn the_example_use_of_the_catalog_is_a_valid_use() {
    let (analysis, _) = golden();
    let catalog = analysis.stack.templates.catalog(&analysis.stack.sources);
    for entry in &catalog {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/templates/golden");
        let mut files = planner::load::read_dir(&dir).unwrap();
        files.retain(|f| !f.path.starts_with("web/"));
        files.push(planner::StackFile {
            path: "example.kdl".into(),
            text: entry
                .example_use()
                .replace("my-team", "platform")
                .replace("my-app", "example"),
        });
        let analysis = planner::analyze(files);
        assert!(
            !analysis.has_errors(),
            "{} v{}: {}",
            entry.name,
            entry.version,
            analysis.render_diagnostics(Colour::Never)
        );
    }
}

/// The example is a golden-path showcase: the platform team's three seed templates, each used
/// by a product team in at most fifteen lines; its catalog is the Markdown page a developer
/// portal shows.
#[test]
fn the_examples_seed_templates_are_each_used_in_fifteen_lines_at_most() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../platform-state-example");
    let files = planner::load::read_dir(&dir).unwrap();
    let mut used = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let nodes =
            planner::syntax::parse(planner::source::FileId(i as u32), &f.text).expect("parses");
        for n in nodes.iter().filter(|n| n.name.text == "use") {
            let text = &f.text[n.span.start as usize..n.span.end as usize];
            let lines = text.lines().count();
            let template = match &n.args[0].value {
                planner::syntax::Value::String(s) => s.clone(),
                other => panic!("{other:?}"),
            };
            assert!(
                lines <= 15,
                "{}: the use of {template} is {lines} lines",
                f.path
            );
            used.push(template);
        }
    }
    used.sort();
    assert_eq!(
        used,
        ["clickhouse-cluster", "event-pipeline", "train-and-deploy"]
    );
    let analysis = planner::analyze(files);
    assert!(
        analysis.diagnostics.is_empty(),
        "{}",
        analysis.render_diagnostics(Colour::Never)
    );
    let catalog = Catalog {
        stack: "acme-prod".into(),
        templates: analysis.stack.templates.catalog(&analysis.stack.sources),
    };
    insta::assert_snapshot!("example_catalog_md", catalog.markdown());
}
