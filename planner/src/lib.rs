//! The platformd planner: the desired-state language, the typed model, validation, the
//! dependency graph, diffing and plan rendering.
//!
//! Pure by design: no async runtime, no network, no database. The only IO is reading a stack
//! directory ([`load::read_dir`]); everything else takes data and returns data *with*
//! diagnostics instead of failing on the first problem. Start reading at [`analyze`].

pub mod cost;
pub mod decode;
pub mod diagnostic;
pub mod graph;
pub mod invalid;
pub mod kept;
pub mod kind;
pub mod lifecycle;
pub mod load;
pub mod model;
pub mod parallel;
pub mod plan;
pub mod policy;
pub mod render;
pub mod resource_spec;
pub mod snapshot;
pub mod source;
pub mod suggest;
pub mod syntax;
pub mod template;
#[doc(hidden)]
pub mod testing;
pub mod units;
pub mod validate;
pub mod window;

pub use diagnostic::{Diagnostic, Severity};
pub use load::StackFile;
pub use model::Stack;
pub use plan::Plan;
pub use snapshot::Snapshot;

/// Everything known about a stack after reading it: the model, its graph, every diagnostic,
/// and — when there are no errors — its snapshot.
pub struct Analysis {
    pub stack: Stack,
    pub graph: graph::Graph,
    pub diagnostics: Vec<Diagnostic>,
    /// `None` when the stack has errors: nothing is planned from an invalid stack.
    pub snapshot: Option<Snapshot>,
}

impl Analysis {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// Renders all diagnostics (errors and warnings) for a terminal.
    pub fn render_diagnostics(&self, colour: diagnostic::Colour) -> String {
        diagnostic::render(&self.diagnostics, &self.stack.sources, colour)
    }
}

/// Parses, decodes, validates and snapshots a stack from its files.
pub fn analyze(files: Vec<StackFile>) -> Analysis {
    analyze_cached(files, None)
}

/// [`analyze`], reusing syntax trees of files already in `cache`.
pub fn analyze_cached(files: Vec<StackFile>, cache: Option<&load::ParseCache>) -> Analysis {
    analyze_parsed(load::parse_files_cached(files, cache))
}

/// [`analyze`] of files already parsed and decoded ([`load::parse_files_cached`]): the
/// pull-request flow parses the head's files first, then analyses head and base side by side
/// with the base's parses taken from the cache.
pub fn analyze_parsed(parsed: load::Parsed) -> Analysis {
    let mut diagnostics = parsed.diagnostics;
    let mut stack = validate::check(
        parsed.sources,
        parsed.decoded,
        parsed.syntax_errors,
        &mut diagnostics,
    );
    stack.templates = parsed.templates;
    validate::check_templates_only(&stack, &mut diagnostics);
    validate::check_monitoring_drivers(&stack, &mut diagnostics);
    validate::check_sinks(&mut stack, &mut diagnostics);
    let (graph, (costs, cost_warnings)) = graph_and_costs(&stack);
    validate::check_cycles(&graph, &mut diagnostics);
    diagnostics.extend(cost_warnings);
    let mut snapshot = (!diagnostics.iter().any(Diagnostic::is_error))
        .then(|| Snapshot::from_stack(&stack, &costs));
    if let Some(snap) = &mut snapshot {
        snap.policy_findings = policy::evaluate(&stack, snap, &mut diagnostics);
        if diagnostics.iter().any(Diagnostic::is_error) {
            snapshot = None;
        }
    }
    template::attribute(&mut diagnostics, &stack.templates, &stack.sources);
    diagnostic::sort(&mut diagnostics);
    Analysis {
        stack,
        graph,
        diagnostics,
        snapshot,
    }
}

/// The stack's graph and its cost estimate (with its warnings). Both only read the stack, so
/// the costs are estimated on a second core while the graph is built.
pub fn graph_and_costs(stack: &model::Stack) -> (graph::Graph, cost::Estimate) {
    std::thread::scope(|scope| {
        let costs = std::thread::Builder::new()
            .spawn_scoped(scope, || cost::estimate(stack))
            .ok();
        let graph = graph::Graph::from_stack(stack);
        let costs = match costs.map(|c| c.join()) {
            Some(Ok(costs)) => costs,
            // A panic in the estimate is a bug; it is the caller's.
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            // No thread to be had: estimated here instead.
            None => cost::estimate(stack),
        };
        (graph, costs)
    })
}

/// Reads and analyzes the stack in a directory.
pub fn analyze_dir(dir: &std::path::Path) -> Result<Analysis, load::LoadError> {
    Ok(analyze(load::read_dir(dir)?))
}
