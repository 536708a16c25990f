//! The commands behind the CLI. Each returns the process exit code or an error (exit 1).

use super::output::{Colours, diag_colour, display_root, paint};
use crate::{DiagnosticFormat, GraphFormat, PlanArgs, PlanFormat};
use anyhow::{Context, Result, bail};
use daemon::source::git::StackRepo;
use planner::diagnostic;
use planner::load::ParseCache;
use planner::plan::{MadeAgainst, PlanOptions};
use planner::{Analysis, Snapshot, StackFile};
use std::io::Write as _;
use std::path::Path;

fn analyze(stack: &Path, cache: Option<&ParseCache>) -> Result<Analysis> {
    let files = planner::load::read_dir(stack)?;
    let mut analysis = planner::analyze_cached(files, cache);
    analysis
        .stack
        .sources
        .set_display_root(&display_root(stack));
    Ok(analysis)
}

fn analyze_files(files: Vec<StackFile>, root: &str, cache: Option<&ParseCache>) -> Analysis {
    let mut analysis = planner::analyze_cached(files, cache);
    analysis.stack.sources.set_display_root(root);
    analysis
}

/// Prints diagnostics to stderr; returns whether there were errors.
fn report(analysis: &Analysis, colours: Colours, context: Option<&str>) -> bool {
    if !analysis.diagnostics.is_empty() {
        eprint!("{}", analysis.render_diagnostics(diag_colour(colours)));
    }
    let errors = analysis.has_errors();
    if errors {
        let tally = diagnostic::tally(&analysis.diagnostics);
        match context {
            Some(c) => eprintln!("{}: {c} has {tally}", paint(colours, "1;31", "error")),
            None => eprintln!("{}: the stack has {tally}", paint(colours, "1;31", "error")),
        }
    }
    errors
}

pub fn validate(stack: &Path, format: DiagnosticFormat, colours: Colours) -> Result<u8> {
    let analysis = analyze(stack, None)?;
    if format == DiagnosticFormat::Json {
        println!("{}", diagnostics_json(&analysis));
        return Ok(u8::from(analysis.has_errors()));
    }
    if report(&analysis, colours, None) {
        return Ok(1);
    }
    let warnings = diagnostic::tally(&analysis.diagnostics);
    let name = analysis
        .stack
        .platform
        .as_ref()
        .map_or("", |p| p.name.value.as_str());
    println!(
        "stack `{name}` is valid: {} resources, {} teams, {} files{}",
        analysis.stack.resources.len(),
        analysis.stack.teams.len(),
        analysis.stack.sources.len(),
        if warnings.is_empty() {
            String::new()
        } else {
            format!(" ({warnings})")
        }
    );
    Ok(0)
}

/// `platformd templates`: the stack's catalog. Problems in the stack are reported (exit 1), but
/// the templates that decoded are listed all the same: a broken product-team file does not hide
/// the catalog.
pub fn templates(stack: &Path, format: PlanFormat, colours: Colours) -> Result<u8> {
    let analysis = analyze(stack, None)?;
    let errors = report(&analysis, colours, None);
    let catalog = planner::template::Catalog {
        stack: analysis
            .stack
            .platform
            .as_ref()
            .map_or_else(|| display_root(stack), |p| p.name.value.clone()),
        templates: analysis.stack.templates.catalog(&analysis.stack.sources),
    };
    let rendered = match format {
        PlanFormat::Text => catalog.text(),
        PlanFormat::Json => serde_json::to_string_pretty(&catalog)? + "\n",
        PlanFormat::Markdown => catalog.markdown(),
    };
    std::io::stdout()
        .lock()
        .write_all(rendered.as_bytes())
        .context("cannot write the catalog to stdout")?;
    Ok(u8::from(errors))
}

/// `platformd cost`: the estimate the plan uses, broken down; exits 3 when a team is over its
/// budget, like a plan that breaches one. With a store, resources the cost controller holds
/// scaled down count as they are (as in the plan) and this month's savings are added.
pub fn cost(
    stack: &Path,
    state_dir: &Path,
    format: PlanFormat,
    top: usize,
    colours: Colours,
) -> Result<u8> {
    let analysis = analyze(stack, None)?;
    if report(&analysis, colours, None) {
        return Ok(1);
    }
    let mut snapshot = analysis.snapshot.expect("valid stacks have a snapshot");
    let mut savings = Vec::new();
    if daemon::store::Store::exists(state_dir) {
        let store = daemon::store::Store::open_read_only(state_dir)?;
        if let Some(overlaid) = daemon::ops::overlay(&store, &snapshot, &[])? {
            snapshot = overlaid;
        }
        let clock = daemon::clock::Clock::from_env().map_err(anyhow::Error::msg)?;
        let now = clock.now();
        savings = store
            .savings(daemon::reconcile::month_start(now), now.as_second())?
            .into_iter()
            .map(|s| planner::cost::ResourceCostLine {
                address: s.address,
                kind: s.kind,
                team: s.team,
                monthly_usd: s.usd,
                budget_monthly_usd: None,
                over_budget: false,
            })
            .collect();
    }
    let breakdown = planner::cost::CostBreakdown::of(&snapshot).with_savings(savings);
    let rendered = match format {
        PlanFormat::Text => breakdown.text(top),
        PlanFormat::Json => serde_json::to_string_pretty(&breakdown)? + "\n",
        PlanFormat::Markdown => breakdown.markdown(),
    };
    std::io::stdout()
        .lock()
        .write_all(rendered.as_bytes())
        .context("cannot write the report to stdout")?;
    Ok(if breakdown.over_budget() { 3 } else { 0 })
}

/// Diagnostics as JSON, for CI annotations.
fn diagnostics_json(analysis: &Analysis) -> String {
    let sources = &analysis.stack.sources;
    let items: Vec<serde_json::Value> = analysis
        .diagnostics
        .iter()
        .map(|d| {
            let labels: Vec<serde_json::Value> = d
                .labels
                .iter()
                .map(|l| {
                    let f = sources.get(l.span.file);
                    let lc = f.line_col(l.span.start as usize);
                    let end = f.line_col(l.span.end as usize);
                    serde_json::json!({
                        "file": sources.display_path(l.span.file),
                        "line": lc.line, "column": lc.column,
                        "end_line": end.line, "end_column": end.column,
                        "message": l.message, "primary": l.primary,
                    })
                })
                .collect();
            serde_json::json!({
                "severity": d.severity, "code": d.code, "message": d.message,
                "labels": labels, "help": d.help, "notes": d.notes,
            })
        })
        .collect();
    let doc = serde_json::json!({ "valid": !analysis.has_errors(), "diagnostics": items });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

pub fn plan(args: &PlanArgs, state_dir: &Path, colours: Colours) -> Result<u8> {
    let Some(base_rev) = &args.base else {
        // Against the store's last applied state (from nothing when nothing was applied).
        let plan = super::state::plan_from_store(
            &args.stack,
            state_dir,
            args.refresh,
            daemon::ops::Choices {
                allow_destroy: args.allow_destroy.clone(),
                replace: args.replace.clone(),
                targets: args.target.clone(),
            },
            colours,
        )?;
        return match plan {
            Some(plan) => {
                let code = emit_plan(&plan, args, colours);
                super::free_in_background(plan);
                code
            }
            None => Ok(1),
        };
    };
    let (desired, prior, made_against) = {
        let repo = StackRepo::discover(&args.stack)?;
        // Base and head usually share most files: parse each distinct file once.
        let cache = ParseCache::new();
        let (head_files, head_root, head_rev) = match &args.head {
            Some(rev) => {
                let at = repo.read(rev)?;
                (at.files, repo.stack_path.clone(), at.commit)
            }
            None => (
                planner::load::read_dir(&args.stack)?,
                display_root(&args.stack),
                "working-tree".to_string(),
            ),
        };
        // Read now (most blobs are the head's, already read), reported after the head's own
        // problems.
        let mut base_at = repo.read(base_rev);
        // The head's files are parsed first, on every core; then the head and the base are
        // analysed side by side, the base taking its parses from the cache.
        let head_parsed = planner::load::parse_files_cached(head_files, Some(&cache));
        let (head, base) = std::thread::scope(|scope| {
            let base = match &mut base_at {
                Ok(at) if !at.files.is_empty() => {
                    let files = std::mem::take(&mut at.files);
                    let (root, cache) = (&repo.stack_path, &cache);
                    Some(scope.spawn(move || analyze_files(files, root, Some(cache))))
                }
                _ => None,
            };
            let mut head = planner::analyze_parsed(head_parsed);
            head.stack.sources.set_display_root(&head_root);
            // A panic there is a bug; it is this thread's.
            let base = base.map(|b| b.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
            (head, base)
        });
        if report(
            &head,
            colours,
            Some(&format!("the desired revision ({head_rev})")),
        ) {
            return Ok(1);
        }
        let base_at = base_at?;
        let mut head = head;
        let desired = head.snapshot.take().expect("valid stacks have a snapshot");
        // Freeing is not on the way to the plan: the head's model, and below the base's
        // and the cache, are left to the process's exit. Freed on threads of their own, they
        // took a core from the plan (`docs/PERFORMANCE.md`); the peak of memory is already
        // behind, with both analyses alive at once.
        super::leave_to_exit(head);
        let prior = match base {
            None => Snapshot::empty(&desired.stack),
            Some(mut base) => {
                if base.has_errors() {
                    eprint!("{}", base.render_diagnostics(diag_colour(colours)));
                    bail!(
                        "the base revision `{base_rev}` ({}) has {}; cannot plan against it",
                        short(&base_at.commit),
                        diagnostic::tally(&base.diagnostics)
                    );
                }
                let prior = base.snapshot.take().expect("valid stacks have a snapshot");
                super::leave_to_exit(base);
                prior
            }
        };
        super::leave_to_exit(cache);
        let against = MadeAgainst {
            base_revision: Some(base_at.commit),
            head_revision: Some(head_rev),
            state_generation: None,
        };
        (desired, prior, against)
    };
    let options = PlanOptions {
        allow_destroy: args.allow_destroy.clone(),
        made_against,
        ..PlanOptions::default()
    };
    for addr in &options.allow_destroy {
        if !prior.resources.contains_key(addr) && !desired.resources.contains_key(addr) {
            eprintln!(
                "{}: --allow-destroy {addr} matches no resource",
                paint(colours, "1;33", "warning")
            );
        }
    }
    let plan = planner::plan::plan(&prior, &desired, &options);
    let code = emit_plan(&plan, args, colours);
    super::leave_to_exit((plan, prior, desired));
    code
}

fn emit_plan(plan: &planner::Plan, args: &PlanArgs, colours: Colours) -> Result<u8> {
    // Through a large buffer: stdout is line-buffered, and a 10,000-resource plan is a million
    // lines. A rendered text goes out in one write; JSON (7.7 MB at that size) is streamed,
    // never held as one string.
    let mut stdout = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    match args.format {
        PlanFormat::Text => {
            stdout.write_all(planner::render::text(plan, colours.stdout).as_bytes())
        }
        PlanFormat::Json => planner::render::write_json(plan, &mut stdout),
        PlanFormat::Markdown => stdout
            .write_all(planner::render::markdown(plan, planner::render::MARKDOWN_LIMIT).as_bytes()),
    }
    .and_then(|()| stdout.flush())
    .context("cannot write the plan to stdout")?;
    drop(stdout);
    if let Some(out) = &args.out {
        std::fs::write(out, planner::render::json(plan))
            .with_context(|| format!("cannot write plan to {}", out.display()))?;
        eprintln!("saved plan to {}", out.display());
    }
    if args.post_comment {
        let pr = super::github::PullRequest::from_env(args.github_repo.as_deref(), args.pr)?;
        let markdown = planner::render::markdown(plan, planner::render::MARKDOWN_LIMIT);
        let (url, updated) = pr.post_plan(&plan.stack, &markdown)?;
        eprintln!(
            "{} the plan comment on {}#{}: {url}",
            if updated { "updated" } else { "posted" },
            pr.repo,
            pr.number
        );
    }
    Ok(plan.exit_code(args.detailed_exitcode) as u8)
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

pub fn graph(
    stack: &Path,
    format: GraphFormat,
    focus: Option<&str>,
    colours: Colours,
) -> Result<u8> {
    let analysis = analyze(stack, None)?;
    if report(&analysis, colours, None) {
        return Ok(1);
    }
    let graph = &analysis.graph;
    let focus_node = match focus {
        None => None,
        Some(addr) => match graph.node(addr) {
            Some(n) => Some(n),
            None => {
                let all: Vec<&str> = graph.graph.node_weights().map(String::as_str).collect();
                let hint = planner::suggest::did_you_mean(addr, all.iter().copied())
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                bail!("no resource `{addr}` in the stack{hint}");
            }
        },
    };
    let out = match (format, focus_node) {
        (GraphFormat::Dot, f) => graph.render_dot(f),
        (GraphFormat::Text, Some(n)) => graph.render_focus(n),
        (GraphFormat::Text, None) => graph.render_tree(),
    };
    print!("{out}");
    Ok(0)
}
