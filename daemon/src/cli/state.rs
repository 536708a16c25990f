//! The store-backed commands (`plan` against the store, `apply`, `drift`, `history`,
//! `rollback`, `resume`): each reads its arguments, calls one `ops` use case, and renders what
//! it returns. Nothing here decides what happens to the world.

use super::output::{Colours, paint};
use super::progress::TerminalProgress;
use crate::ApplyOptions;
use anyhow::{Context, Result, bail};
use daemon::ops::{
    self, ApplyOutcome, ApplyReport, ApplyRequest, DesiredSource, Ops, RollbackReport,
};
use daemon::source::content_revision;
use daemon::store::{Store, format_time};
use planner::Snapshot;
use planner::plan::{DriftStatus, Plan};
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Operations on `store` for a command run by hand, reporting to the terminal.
fn ops_for(store: Store, holder: &str, parallelism: usize, lock_timeout: Duration) -> Ops {
    let mut ops = Ops::new(store, Arc::new(TerminalProgress::new()), holder);
    ops.config = ops::EngineConfig::with_parallelism(parallelism);
    ops.lock_timeout = lock_timeout;
    ops.actor = daemon::clock::os_user();
    ops
}

/// Asks for confirmation on a terminal; refuses without one unless auto-approved.
fn confirm(auto_approve: bool, question: &str) -> Result<bool> {
    if auto_approve {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "refusing to apply without confirmation: stdin is not a terminal; pass --auto-approve"
        );
    }
    eprint!("{question} Only 'yes' will be accepted: ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}

/// Shows the plan, then asks (for an approver callback, which cannot return an error).
fn show_and_confirm(
    plan: &Plan,
    colours: Colours,
    auto_approve: bool,
    question: &str,
    refusal: &mut Option<anyhow::Error>,
) -> bool {
    print_plan(plan, colours);
    match confirm(auto_approve, question) {
        Ok(yes) => yes,
        Err(e) => {
            *refusal = Some(e);
            false
        }
    }
}

pub struct ApplyArgs<'a> {
    pub stack: &'a Path,
    pub plan_file: Option<&'a Path>,
    pub state_dir: &'a Path,
    pub refresh: bool,
    /// `--override-window --reason`: apply even while a sync window is closed.
    pub window_override: Option<String>,
    pub options: ApplyOptions,
    /// `--replace` addresses.
    pub replace: Vec<String>,
    /// `--target` addresses.
    pub targets: Vec<String>,
    /// `platformd import ADDRESS ID`: adopt this one object (and apply only it).
    pub import: Option<(String, String)>,
}

fn print_plan(plan: &Plan, colours: Colours) {
    let text = planner::render::text(plan, colours.stdout);
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn analyzed(stack: &Path, colours: Colours) -> Result<Option<(Snapshot, String)>> {
    let files = planner::load::read_dir(stack)?;
    let revision = content_revision(&files);
    let mut analysis = planner::analyze(files);
    analysis
        .stack
        .sources
        .set_display_root(&super::output::display_root(stack));
    if !analysis.diagnostics.is_empty() {
        eprint!(
            "{}",
            analysis.render_diagnostics(if colours.stderr {
                planner::diagnostic::Colour::Always
            } else {
                planner::diagnostic::Colour::Never
            })
        );
    }
    if analysis.has_errors() {
        eprintln!(
            "{}: the stack has {}",
            paint(colours, "1;31", "error"),
            planner::diagnostic::tally(&analysis.diagnostics)
        );
        return Ok(None);
    }
    let snapshot = analysis.snapshot.take();
    super::free_in_background(analysis);
    Ok(snapshot.map(|s| (s, revision)))
}

fn report_outcome(outcome: &ApplyOutcome, elapsed: Duration, colours: Colours) -> u8 {
    for (address, error) in &outcome.failed {
        eprintln!("{}: {address}: {error}", paint(colours, "1;31", "failed"));
    }
    for (address, why) in &outcome.skipped {
        eprintln!("{}: {address}: {why}", paint(colours, "1;33", "skipped"));
    }
    println!(
        "Apply {}: {} in {:.2} s.",
        outcome.status(),
        outcome.summary(),
        elapsed.as_secs_f64()
    );
    u8::from(!outcome.failed.is_empty())
}

pub fn apply(args: ApplyArgs<'_>, colours: Colours) -> Result<u8> {
    let request = match args.plan_file {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read plan {}", file.display()))?;
            let plan: Plan = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a platformd plan", file.display()))?;
            ApplyRequest::from_saved_plan(plan)
        }
        None => match analyzed(args.stack, colours)? {
            Some((mut desired, revision)) => {
                let mut targets = args.targets.clone();
                if let Some((address, id)) = &args.import {
                    if !desired.resources.contains_key(address) {
                        bail!(
                            "{address} is not declared in {}: an import adopts a declared resource; declare it as the object is, then import it",
                            args.stack.display()
                        );
                    }
                    desired.imports.insert(address.clone(), id.clone());
                    targets.push(address.clone());
                }
                ApplyRequest {
                    desired,
                    revision,
                    source: DesiredSource::Directory,
                    refresh: args.refresh,
                    choices: ops::Choices {
                        allow_destroy: args.options.allow_destroy.clone(),
                        replace: args.replace.clone(),
                        targets,
                    },
                }
            }
            None => return Ok(1),
        },
    };
    let store = Store::open(args.state_dir)?;
    if let Some(closed) = closed_window(&request.desired)? {
        let reason = closed.reason.unwrap_or_default();
        let Some(why) = &args.window_override else {
            let opens = closed
                .opens_at
                .map_or(String::new(), |t| format!("; it opens at {t}"));
            eprintln!(
                "{}: a sync window forbids applying now: {reason}{opens}; nothing was applied\n  help: wait for the window, or in an emergency: platformd apply --override-window --reason \"…\"",
                paint(colours, "1;31", "error")
            );
            return Ok(3);
        };
        let actor = daemon::clock::os_user();
        ops::window::record_override(
            &store,
            &actor,
            ops::window::Overridden::Apply {
                revision: &request.revision,
            },
            &reason,
            why,
        )?;
        eprintln!(
            "{}: overriding the sync window ({reason}); recorded as {actor}: {why}",
            paint(colours, "1;33", "warning")
        );
    }
    let ops = ops_for(
        store,
        "platformd apply",
        args.options.parallelism,
        args.options.lock_timeout,
    );
    let mut refusal = None;
    let report = runtime()?.block_on(ops.apply(request, |plan| {
        show_and_confirm(
            plan,
            colours,
            args.options.auto_approve,
            "Do you want to perform these actions?",
            &mut refusal,
        )
    }))?;
    if let Some(e) = refusal {
        return Err(e);
    }
    match report {
        ApplyReport::Blocked(plan) => {
            print_plan(&plan, colours);
            eprintln!(
                "{}: the plan is blocked by policy; nothing was applied",
                paint(colours, "1;31", "error")
            );
            Ok(3)
        }
        ApplyReport::NoChanges(plan) => {
            print_plan(&plan, colours);
            println!("No changes. The world matches the stack.");
            Ok(0)
        }
        ApplyReport::Declined(_) => {
            println!("Apply cancelled.");
            Ok(1)
        }
        ApplyReport::Applied {
            outcome, elapsed, ..
        } => Ok(report_outcome(&outcome, elapsed, colours)),
    }
}

/// `plan` without `--base`: against the store when one exists, else from nothing.
/// The sync windows' verdict on applying `desired` now, when they forbid it.
fn closed_window(desired: &Snapshot) -> Result<Option<planner::window::WindowState>> {
    let clock = daemon::clock::Clock::from_env().map_err(anyhow::Error::msg)?;
    let state = clock.window(desired);
    Ok((!state.open).then_some(state))
}

pub fn plan_from_store(
    stack: &Path,
    state_dir: &Path,
    refresh: bool,
    choices: ops::Choices,
    colours: Colours,
) -> Result<Option<Plan>> {
    if !Store::exists(state_dir) {
        let Some((desired, revision)) = analyzed(stack, colours)? else {
            return Ok(None);
        };
        if refresh {
            bail!(
                "--refresh needs a store; nothing has been applied from {}",
                state_dir.display()
            );
        }
        let mut plan = ops::plan_from_nothing(&desired, &revision, choices)?;
        plan.window = closed_window(&desired)?;
        super::free_in_background(desired);
        return Ok(Some(plan));
    }
    // The prior state is read on a thread of its own while the stack is analysed: it needs
    // nothing from the stack, and was a sixth of a no-op plan of 10,000 resources. The stack's
    // problems are still reported first.
    let (analysis, read) = std::thread::scope(|scope| {
        let reading = scope.spawn(|| read_prior(state_dir, refresh));
        let analysis = analyzed(stack, colours);
        (analysis, reading.join())
    });
    let Some((desired, revision)) = analysis? else {
        return Ok(None);
    };
    let (store, read_at, prior) = read.unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
    // Something applied meanwhile: the plan is made against what is there now.
    let prior = if store.generation()? == read_at {
        prior
    } else {
        store.prior_snapshot()?
    };
    let mut plan = ops::plan_from_prior(&store, &prior, &desired, &revision, choices)?;
    super::free_in_background(prior);
    plan.window = closed_window(&desired)?;
    if refresh {
        let ops = ops_for(store, "platformd plan", 8, Duration::ZERO);
        let findings = runtime()?.block_on(ops.scan_drift(&desired, Some(&desired)))?;
        plan.merge_drift(findings);
    }
    super::free_in_background(desired);
    Ok(Some(plan))
}

/// The store (writable for `--refresh`; a plain plan only reads, so it works in a state
/// directory this user cannot write), its generation, and the prior state read at it.
fn read_prior(state_dir: &Path, refresh: bool) -> Result<(Store, u64, Snapshot)> {
    let store = if refresh {
        Store::open(state_dir)?
    } else {
        Store::open_for_reading(state_dir)?
    };
    let generation = store.generation()?;
    let prior = store.prior_snapshot()?;
    Ok((store, generation, prior))
}

pub fn drift(
    stack: &Path,
    state_dir: &Path,
    detailed: bool,
    json: bool,
    colours: Colours,
) -> Result<u8> {
    let store = Store::open_existing(state_dir)?;
    let applied = store.applied_revision()?;
    // The drivers the world was made with; the current stack (when valid) tells declared
    // resources apart from orphans.
    let declared = analyzed(stack, colours)?.map(|(s, _)| s);
    let reference = match (&applied, &declared) {
        (Some(rev), _) => store.snapshot(rev)?,
        (None, Some(d)) => Some(d.clone()),
        (None, None) => None,
    }
    .ok_or_else(|| anyhow::anyhow!("nothing has been applied from {}", state_dir.display()))?;
    let ops = ops_for(store, "platformd drift", 8, Duration::ZERO);
    let findings = runtime()?.block_on(ops.scan_drift(&reference, declared.as_ref()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&findings)?);
    } else if findings.is_empty() {
        println!("No drift: every applied resource matches what was applied.");
    } else {
        println!(
            "{} finding{}:",
            findings.len(),
            if findings.len() == 1 { "" } else { "s" }
        );
        for f in &findings {
            let policy = f
                .policy
                .map(|p| format!(" (drift policy: {})", p.as_str()))
                .unwrap_or_default();
            let (marker, code) = match f.status {
                DriftStatus::Missing => ("-", "1;31"),
                DriftStatus::Orphan => ("?", "1;35"),
                DriftStatus::Drifted => ("~", "1;33"),
            };
            let line = format!("  {marker} {} {}{policy}", f.address, f.status);
            println!(
                "{}",
                if colours.stdout {
                    format!("\x1b[{code}m{line}\x1b[0m")
                } else {
                    line
                }
            );
            for c in &f.changes {
                let show = |v: &Option<serde_json::Value>| {
                    v.as_ref().map_or("(absent)".to_string(), |v| v.to_string())
                };
                println!(
                    "      {}: applied {} → live {}",
                    c.path,
                    show(&c.before),
                    show(&c.after)
                );
            }
        }
        if findings.iter().any(|f| f.status != DriftStatus::Orphan) {
            println!(
                "\nCorrect with `platformd apply --refresh` (resources with drift policy `correct`)."
            );
        }
        if findings.iter().any(|f| f.status == DriftStatus::Orphan) {
            println!(
                "Orphans are owned by platformd but not declared: declare them to adopt them, or delete them by hand."
            );
        }
    }
    Ok(if detailed && !findings.is_empty() {
        2
    } else {
        0
    })
}

pub fn history(state_dir: &Path, json: bool) -> Result<u8> {
    if !Store::exists(state_dir) {
        println!(
            "No history: nothing has been applied from {}.",
            state_dir.display()
        );
        return Ok(0);
    }
    let store = Store::open_for_reading(state_dir)?;
    let rows = store.history()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(0);
    }
    let applied = store.applied_revision()?;
    let pin = store.pinned_revision()?;
    // The row that made the current state: the last fully applied row of the applied revision.
    let current_id = rows
        .iter()
        .rev()
        .find(|r| {
            applied.as_deref() == Some(r.revision.as_str())
                && r.status == api::ApplyStatus::Succeeded
        })
        .map(|r| r.id);
    println!(
        "{:>4}  {:<23}  {:<13}  {:<11}  {:<24}  {:<16}  summary",
        "id", "started", "reason", "status", "revision", "by"
    );
    for r in rows {
        let mut marks = String::new();
        if Some(r.id) == current_id {
            marks.push_str(" (current)");
        }
        if pin.as_deref() == Some(r.revision.as_str()) && r.reason == api::ApplyReason::Rollback {
            marks.push_str(" (pinned)");
        }
        println!(
            "{:>4}  {:<23}  {:<13}  {:<11}  {:<24}  {:<16}  {}{marks}",
            r.id,
            format_time(r.started_at),
            r.reason,
            r.status,
            r.revision,
            r.actor.as_deref().unwrap_or("-"),
            r.summary.unwrap_or_default()
        );
        // Why the cost controller (or a wake) made it: the figures it acted on.
        if let Some(note) = &r.note {
            println!("{:>6}{note}", "");
        }
    }
    let overrides = store.events_of_kind("window-override")?;
    if !overrides.is_empty() {
        println!("\nSync window overrides:");
        for (at, message) in overrides {
            println!("  {}  {message}", format_time(at));
        }
    }
    let scaled = store.scaled_down()?;
    if !scaled.is_empty() {
        println!(
            "\nHeld scaled down by the cost controller (`platformd wake ADDR` brings one back):"
        );
        for s in scaled {
            println!(
                "  {}  since {}: {} ({})",
                s.address,
                format_time(s.since),
                s.note,
                s.figure
            );
        }
    }
    if let Some(p) = pin {
        println!(
            "\nPinned to {p} by a rollback: new revisions are not applied until `platformd resume`."
        );
    }
    Ok(0)
}

pub fn rollback(
    revision: &str,
    state_dir: &Path,
    options: ApplyOptions,
    colours: Colours,
) -> Result<u8> {
    let store = Store::open_existing(state_dir)?;
    let ops = ops_for(
        store.clone(),
        "platformd rollback",
        options.parallelism,
        options.lock_timeout,
    );
    let mut refusal = None;
    let mut shown = false;
    let started = std::time::Instant::now();
    let report = runtime()?.block_on(ops.rollback(
        revision,
        None,
        options.allow_destroy.clone(),
        |full, plan| {
            shown = true;
            println!("Rollback to {full}:");
            show_and_confirm(
                plan,
                colours,
                options.auto_approve,
                "Roll back and pin the stack to this revision?",
                &mut refusal,
            )
        },
    ))?;
    if let Some(e) = refusal {
        return Err(e);
    }
    let show = |full: &str, plan: &Plan| {
        if !shown {
            println!("Rollback to {full}:");
            print_plan(plan, colours);
        }
    };
    match report {
        RollbackReport::Blocked { revision, plan } => {
            show(&revision, &plan);
            eprintln!(
                "{}: the rollback plan is blocked by policy; nothing was applied",
                paint(colours, "1;31", "error")
            );
            Ok(3)
        }
        RollbackReport::Declined { .. } => {
            println!("Rollback cancelled.");
            Ok(1)
        }
        RollbackReport::Done {
            revision,
            plan,
            outcome,
        } => {
            show(&revision, &plan);
            let code = outcome.map_or(0, |o| report_outcome(&o, started.elapsed(), colours));
            println!(
                "Pinned to {revision}. New revisions are not applied until `platformd resume`."
            );
            Ok(code)
        }
    }
}

/// Approves the plan waiting for approval in the store, after showing it; the daemon applies
/// it at its next poll. A revision or hash that is not the waiting plan's is refused.
pub fn approve(state_dir: &Path, revision: &str, plan_hash: Option<&str>, yes: bool) -> Result<u8> {
    use daemon::ops::approve::{self, ApproveError, Naming};
    let store = Store::open_existing(state_dir)?;
    let waiting = approve::waiting_in(&store)?;
    let waiting = match approve::check(waiting.as_ref(), revision, plan_hash, Naming::Prefix) {
        Ok(waiting) => waiting,
        Err(ApproveError::NothingWaits) => {
            eprintln!(
                "error: no plan waits for approval in {}",
                state_dir.display()
            );
            return Ok(1);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(1);
        }
    };
    let short = api::short_hash(&waiting.plan_hash);
    println!("Plan {short} for {}: {}", waiting.revision, waiting.summary);
    if !confirm(yes, "Approve exactly this plan?")? {
        println!("Not approved.");
        return Ok(1);
    }
    let actor = daemon::clock::os_user();
    match approve::record(&store, &waiting, &actor) {
        Ok(()) => {}
        Err(ApproveError::Store(e)) => return Err(e.into()),
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(1);
        }
    }
    println!("Approved by {actor}; the daemon applies it at its next poll.");
    Ok(0)
}

pub fn resume(state_dir: &Path) -> Result<u8> {
    let store = Store::open_existing(state_dir)?;
    match ops::resume(&store)? {
        Some(rev) => {
            println!("Resumed: no longer pinned to {rev}; the next apply follows the stack.")
        }
        None => println!("Not pinned; nothing to resume."),
    }
    Ok(0)
}

/// Brings a resource the cost controller scaled down back (with the GPU pool it runs on), now:
/// applied at the applied revision with reason `wake`, recorded as the OS user's.
pub fn wake(state_dir: &Path, address: &str, colours: Colours) -> Result<u8> {
    let store = Store::open_existing(state_dir)?;
    let ops = ops_for(store, "platformd wake", 8, Duration::from_secs(60));
    let now = daemon::clock::Clock::from_env()
        .map_err(anyhow::Error::msg)?
        .now()
        .as_second();
    let why = format!("operator {}", daemon::clock::os_user());
    let started = std::time::Instant::now();
    match runtime()?.block_on(ops.wake(address, &why, now)) {
        Ok(ops::LifecycleReport::Applied { plan, outcome }) => {
            print_plan(&plan, colours);
            let code = report_outcome(&outcome, started.elapsed(), colours);
            if outcome.complete() {
                println!("Woke {address}.");
            }
            Ok(code)
        }
        Ok(ops::LifecycleReport::Unchanged(why)) => {
            println!("{address}: {why}");
            Ok(0)
        }
        Err(e @ ops::OpsError::NotScaledDown { .. }) => {
            eprintln!("{}: {e}", paint(colours, "1;31", "error"));
            Ok(1)
        }
        Err(e) => Err(e.into()),
    }
}

/// `platformd token create|list|revoke`: named API tokens, kept as hashes in the store.
pub fn token(state_dir: &Path, action: crate::TokenAction) -> Result<u8> {
    use daemon::store::TokenScope;
    let store = Store::open(state_dir)?;
    match action {
        crate::TokenAction::Create { name, scope } => {
            let scope = match scope {
                crate::Scope::Read => TokenScope::Read,
                crate::Scope::Write => TokenScope::Write,
            };
            if name.trim().is_empty() || name.chars().any(char::is_whitespace) {
                eprintln!("error: a token name is one word, e.g. `ci-bot`");
                return Ok(1);
            }
            let token = daemon::store::new_token().context("cannot read random bytes")?;
            if let Err(e) = store.create_token(&name, scope, &token) {
                eprintln!("error: {e}");
                return Ok(1);
            }
            eprintln!(
                "Token `{name}` ({} scope). It is shown this once; store it as a secret:",
                scope.as_str()
            );
            println!("{token}");
        }
        crate::TokenAction::List => {
            let tokens = store.tokens()?;
            if tokens.is_empty() {
                println!("No tokens. Make one with `platformd token create NAME --scope write`.");
            }
            for t in tokens {
                println!(
                    "{:<24} {:<6} made {}  last used {}",
                    t.name,
                    t.scope.as_str(),
                    format_time(t.created_at),
                    t.last_used_at.map_or("never".to_string(), format_time)
                );
            }
        }
        crate::TokenAction::Revoke { name } => {
            if store.revoke_token(&name)? {
                println!("Revoked `{name}`.");
            } else {
                eprintln!("error: no token named `{name}`; see `platformd token list`");
                return Ok(1);
            }
        }
    }
    Ok(0)
}
