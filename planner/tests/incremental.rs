//! Incremental analysis (`ParseCache` keeps what each file decoded to) gives exactly what a fresh
//! analysis gives, whatever the edits: random sequences of edits to the example stack (which has
//! templates) and to every fixture stack, each step analysed with one long-lived cache and from
//! scratch, compared on the diagnostics as rendered (so every span names the right file, line
//! and column), the snapshot, the graph and the plan from nothing.

mod common;

use common::{Lcg, mutate};
use planner::StackFile;
use planner::load::ParseCache;
use std::path::Path;

/// What the user sees of an analysis.
fn observed(analysis: &planner::Analysis) -> (String, String, String, String) {
    let diagnostics = analysis.render_diagnostics(planner::diagnostic::Colour::Never);
    let snapshot = serde_json::to_string(&analysis.snapshot).expect("a snapshot serializes");
    let plan = analysis.snapshot.as_ref().map_or_else(String::new, |s| {
        let plan = planner::plan::plan(&planner::Snapshot::empty("x"), s, &Default::default());
        planner::render::json(&plan)
    });
    (diagnostics, snapshot, analysis.graph.render_tree(), plan)
}

/// One random edit. Half keep the stack valid: a digit changed, a file put back as it was, an
/// empty file added that sorts first (every other file moves one position on). The others
/// break it: a file mangled, a file removed, two files' contents swapped (texts seen before,
/// at other positions); the next edit undoes those (`undo` holds the files from before).
fn edit(
    files: &mut Vec<StackFile>,
    original: &[StackFile],
    undo: &mut Option<Vec<StackFile>>,
    rng: &mut Lcg,
    step: usize,
) {
    if let Some(before) = undo.take() {
        *files = before;
        return;
    }
    let i = rng.below(files.len());
    match rng.below(6) {
        0 => {
            let text = &files[i].text;
            let digits: Vec<usize> = text
                .char_indices()
                .filter(|(_, c)| c.is_ascii_digit())
                .map(|(at, _)| at)
                .collect();
            if !digits.is_empty() {
                let at = digits[rng.below(digits.len())];
                let digit = char::from(b'1' + rng.below(9) as u8);
                files[i].text.replace_range(at..at + 1, &digit.to_string());
            }
        }
        1 => {
            let back = &original[rng.below(original.len())];
            match files.iter_mut().find(|f| f.path == back.path) {
                Some(f) => f.text = back.text.clone(),
                None => files.push(back.clone()),
            }
        }
        2 => files.push(StackFile {
            path: format!("0-notes-{step}.kdl"),
            text: format!("// step {step}\n"),
        }),
        breaking => {
            *undo = Some(files.clone());
            match breaking {
                3 => files[i].text = mutate(&files[i].text, rng),
                4 if files.len() > 1 => {
                    files.remove(i);
                }
                _ => {
                    let j = rng.below(files.len());
                    let text = std::mem::take(&mut files[i].text);
                    files[i].text = std::mem::replace(&mut files[j].text, text);
                }
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
}

fn check_stack(stack: &Path, rng: &mut Lcg, steps: usize) -> (usize, usize) {
    let original = planner::load::read_dir(stack).expect("the stack reads");
    let mut files = original.clone();
    let cache = ParseCache::new();
    let mut valid = 0;
    let mut undo = None;
    for step in 0..steps {
        if step > 0 {
            edit(&mut files, &original, &mut undo, rng, step);
        }
        let incremental = planner::analyze_cached(files.clone(), Some(&cache));
        let full = planner::analyze(files.clone());
        assert_eq!(
            observed(&incremental),
            observed(&full),
            "{}: step {step} differs from a fresh analysis",
            stack.display()
        );
        valid += usize::from(full.snapshot.is_some());
    }
    (valid, cache.stats().0)
}

#[test]
fn incremental_analysis_equals_full_analysis() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut rng = Lcg(0x1ac4);
    let (valid, hits) = check_stack(&root.join("../platform-state-example"), &mut rng, 150);
    // The property is about reuse: most steps must plan, and most files must come from the
    // cache, or the comparison proves nothing.
    assert!(valid > 50, "only {valid} of 150 steps were valid");
    assert!(hits > 500, "only {hits} files came from the cache");
    let mut stacks: Vec<_> = std::fs::read_dir(root.join("tests/fixtures/diagnostics"))
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    stacks.sort();
    for stack in stacks {
        check_stack(&stack, &mut rng, 8);
    }
}

/// A cached file's resource can still change after it is copied out of the cache: a pipeline's
/// spec records the engine of the database it sinks into, which another file declares. Its
/// kept canonical spec must not be reused when that engine changes.
#[test]
fn a_kept_spec_is_not_reused_when_another_file_changes_its_resource() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files =
        planner::load::read_dir(&root.join("../platform-state-example")).expect("the stack reads");
    let pipelines = files
        .iter()
        .position(|f| f.path == "data/pipelines.kdl")
        .expect("the example has data/pipelines.kdl");
    // The warehouse moves to a file of its own, so the pipeline's file stays the same.
    let text = files[pipelines].text.clone();
    let start = text.find("database \"warehouse\"").expect("the warehouse");
    let end = start + text[start..].find("\n}\n").expect("its end") + 3;
    files[pipelines].text = format!("{}{}", &text[..start], &text[end..]);
    files.push(StackFile {
        path: "data/warehouse.kdl".into(),
        text: text[start..end].to_string(),
    });
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let warehouse = files
        .iter()
        .position(|f| f.path == "data/warehouse.kdl")
        .expect("just added");

    let cache = ParseCache::new();
    let engine_of_the_sink = |analysis: &planner::Analysis| {
        let snapshot = analysis.snapshot.as_ref().expect("the stack is valid");
        snapshot.resources["pipeline/order-events-to-warehouse"]
            .spec
            .value()["sink"]["engine"]
            .clone()
    };
    let before = planner::analyze_cached(files.clone(), Some(&cache));
    assert_eq!(engine_of_the_sink(&before), "postgres");
    files[warehouse].text = files[warehouse].text.replace(
        "engine \"postgres\" version=\"16\"",
        "engine \"mysql\" version=\"8.0\"",
    );
    let incremental = planner::analyze_cached(files.clone(), Some(&cache));
    let full = planner::analyze(files);
    assert_eq!(engine_of_the_sink(&full), "mysql");
    assert_eq!(engine_of_the_sink(&incremental), "mysql");
    assert_eq!(observed(&incremental), observed(&full));
}
