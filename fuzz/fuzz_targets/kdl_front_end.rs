//! Any bytes as a stack file: parse, decode, validate, plan and render diagnostics. Never a
//! panic; every diagnostic's labels point inside the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use planner::StackFile;

const PLATFORM: &str = "platform \"fuzz\" {\n    driver \"local\" { path \"out\" }\n}\nteam \"core\" {\n    owner \"core@acme.example\"\n}\n";

fuzz_target!(|data: &[u8]| {
    // A stack overflow kills the process before libFuzzer can save the input (its `main` is
    // not Rust's, so no overflow handler runs): with FUZZ_LAST_INPUT set, each input is written
    // there first, and the one that killed the process is the last one.
    if let Some(path) = std::env::var_os("FUZZ_LAST_INPUT") {
        let _ = std::fs::write(path, data);
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // As the platform file itself, or as a resource file beside a valid platform: one analysis
    // per input (the input's length picks which, so a mutation flips it), which doubles the
    // rate of the long runs.
    let files = if data.len() % 2 == 0 {
        vec![StackFile {
            path: "platform.kdl".into(),
            text: text.to_string(),
        }]
    } else {
        vec![
            StackFile {
                path: "platform.kdl".into(),
                text: PLATFORM.to_string(),
            },
            StackFile {
                path: "stack.kdl".into(),
                text: text.to_string(),
            },
        ]
    };
    let analysis = planner::analyze(files);
    let _ = analysis.render_diagnostics(planner::diagnostic::Colour::Never);
    if let Some(snapshot) = &analysis.snapshot {
        let plan = planner::plan::plan(
            &planner::Snapshot::empty("fuzz"),
            snapshot,
            &Default::default(),
        );
        let _ = planner::render::text(&plan, false);
        let _ = planner::render::markdown(&plan, planner::render::MARKDOWN_LIMIT);
    }
});
