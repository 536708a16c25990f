//! Commands that use the store and drivers: `plan` against the last applied state, `apply`,
//! `drift`, `history`, `rollback`, `resume`.

use crate::ApplyOptions;
use crate::commands::{Colours, paint};
use crate::engine::{ApplyOutcome, Engine, EngineConfig};
use crate::store::{self, Store, StoreError};
use anyhow::{Context, Result, anyhow, bail};
use drivers::Driver;
use planner::plan::{MadeAgainst, Plan, PlanOptions};
use planner::{Snapshot, StackFile};
use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a lease lasts without renewal; renewed every third of it while applying.
const LEASE_TTL: Duration = Duration::from_secs(60);

/// A content id for a stack read from a directory: stable across runs and machines.
pub fn content_revision(files: &[StackFile]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for f in files {
        // Lengths first, so (path, text) boundaries are unambiguous.
        h.update((f.path.len() as u64).to_le_bytes());
        h.update(f.path.as_bytes());
        h.update((f.text.len() as u64).to_le_bytes());
        h.update(f.text.as_bytes());
    }
    let digest = h.finalize();
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("content-{hex}")
}

/// Builds the drivers a snapshot declares. Relative local paths are relative to the working
/// directory, like the state directory.
pub fn build_drivers(snapshot: &Snapshot) -> Result<BTreeMap<String, Arc<dyn Driver>>> {
    let mut out: BTreeMap<String, Arc<dyn Driver>> = BTreeMap::new();
    for (name, settings) in &snapshot.drivers {
        match name.as_str() {
            "local" => {
                let path = settings
                    .get("path")
                    .cloned()
                    .unwrap_or_else(|| ".platformd/rendered".into());
                let driver =
                    drivers::local::LocalDriver::new(path, settings.get("namespace").cloned());
                out.insert(name.clone(), Arc::new(driver));
            }
            other => {
                let used = snapshot.resources.values().any(|r| r.driver == other);
                if used {
                    bail!(
                        "driver `{other}` is not available in this build yet; route these kinds to `local` for now"
                    );
                }
            }
        }
    }
    Ok(out)
}

/// The applier lease, renewed in the background and released on drop.
pub struct LeaseGuard {
    stop: Arc<AtomicBool>,
    renewer: Option<std::thread::JoinHandle<()>>,
    dir: std::path::PathBuf,
}

impl LeaseGuard {
    /// Takes the lease, waiting up to `timeout` for another applier to finish.
    pub fn acquire(store: &Store, holder: &str, timeout: Duration) -> Result<LeaseGuard> {
        let deadline = Instant::now() + timeout;
        let mut announced = false;
        loop {
            match store.acquire_lease(holder, LEASE_TTL) {
                Ok(()) => break,
                Err(e @ StoreError::Locked { .. }) => {
                    if Instant::now() >= deadline {
                        return Err(e.into());
                    }
                    if !announced {
                        eprintln!("{e}; waiting up to {}s", timeout.as_secs());
                        announced = true;
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
                Err(e) => return Err(e.into()),
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let dir = store.dir().to_path_buf();
        let renewer = {
            let (stop, dir) = (stop.clone(), dir.clone());
            std::thread::spawn(move || {
                let Ok(store) = Store::open(&dir) else { return };
                let mut last = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(200));
                    if last.elapsed() >= LEASE_TTL / 3 {
                        last = Instant::now();
                        if !matches!(store.renew_lease(LEASE_TTL), Ok(true)) {
                            tracing::error!("lost the applier lease");
                        }
                    }
                }
            })
        };
        Ok(LeaseGuard {
            stop,
            renewer: Some(renewer),
            dir,
        })
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(r) = self.renewer.take() {
            let _ = r.join();
        }
        if let Ok(store) = Store::open(&self.dir) {
            let _ = store.release_lease();
        }
    }
}

/// Opens the store for commands that need something to have been applied.
fn open_existing(state_dir: &Path) -> Result<Store> {
    if !Store::exists(state_dir) {
        bail!(
            "no store in {}: nothing has been applied yet",
            state_dir.display()
        );
    }
    Ok(Store::open(state_dir)?)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
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

pub struct ApplyArgs<'a> {
    pub stack: &'a Path,
    pub plan_file: Option<&'a Path>,
    pub state_dir: &'a Path,
    pub refresh: bool,
    pub options: ApplyOptions,
}

fn engine(
    store: Store,
    drivers: BTreeMap<String, Arc<dyn Driver>>,
    parallelism: usize,
) -> Arc<Engine> {
    let config = EngineConfig {
        parallelism: parallelism.max(1),
        per_driver: parallelism.max(1),
        ..EngineConfig::default()
    };
    Arc::new(Engine {
        store: Arc::new(Mutex::new(store)),
        drivers,
        config,
        cancel: Arc::new(AtomicBool::new(false)),
    })
}

fn store_of(engine: &Engine) -> std::sync::MutexGuard<'_, Store> {
    engine.store.lock().unwrap_or_else(|e| e.into_inner())
}

/// Plans `desired` against the store's last applied state.
pub fn plan_against_store(
    store: &Store,
    desired: &Snapshot,
    head_revision: &str,
    allow_destroy: Vec<String>,
) -> Result<(Snapshot, Plan)> {
    let prior = store.prior_snapshot()?;
    let made_against = MadeAgainst {
        base_revision: store.applied_revision()?,
        head_revision: Some(head_revision.to_string()),
        state_generation: Some(store.generation()?),
    };
    let plan = planner::plan::plan(
        &prior,
        desired,
        &PlanOptions {
            allow_destroy,
            made_against,
        },
    );
    Ok((prior, plan))
}

fn print_plan(plan: &Plan, colours: Colours) {
    let text = planner::render::text(plan, colours.stdout);
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn analyzed(stack: &Path, colours: Colours) -> Result<Option<(Snapshot, String)>> {
    let files = planner::load::read_dir(stack)?;
    let revision = content_revision(&files);
    let analysis = planner::analyze(files);
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
    Ok(analysis.snapshot.map(|s| (s, revision)))
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
    let (desired, head_revision, saved) = match args.plan_file {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read plan {}", file.display()))?;
            let plan: Plan = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a platformd plan", file.display()))?;
            let head = plan.made_against.head_revision.clone().unwrap_or_default();
            (Snapshot::from_plan(&plan), head, Some(plan))
        }
        None => match analyzed(args.stack, colours)? {
            Some((snapshot, revision)) => (snapshot, revision, None),
            None => return Ok(1),
        },
    };
    let store = Store::open(args.state_dir)?;
    let source = if saved.is_some() {
        "saved plan"
    } else {
        "directory"
    };
    store.record_revision(&head_revision, source, true, None)?;
    let _lease = LeaseGuard::acquire(&store, "platformd apply", args.options.lock_timeout)?;
    let drivers = build_drivers(&desired)?;
    let engine = engine(store, drivers, args.options.parallelism);
    let rt = runtime()?;
    let recovered = rt.block_on(engine.recover())?;
    if recovered > 0 {
        eprintln!("recovered {recovered} unfinished driver call(s) from an interrupted apply");
    }
    if let Some(pin) = store_of(&engine).pinned_revision()? {
        bail!(
            "the stack is pinned to revision {pin} by a rollback; run `platformd resume` to follow the stack again"
        );
    }
    let (prior, mut plan) = {
        let store = store_of(&engine);
        plan_against_store(
            &store,
            &desired,
            &head_revision,
            args.options.allow_destroy.clone(),
        )?
    };
    if let Some(saved) = &saved {
        if saved.made_against.state_generation.is_none() {
            bail!(
                "this plan was made between git revisions (--base), not against the store; make one with `platformd plan STACK --out FILE`"
            );
        }
        let generation = store_of(&engine).generation()?;
        let applied = store_of(&engine).applied_revision()?;
        if saved.made_against.state_generation != Some(generation)
            || saved.made_against.base_revision != applied
        {
            bail!(
                "the saved plan is stale: it was made against state generation {} (revision {}), the store is now at generation {generation} (revision {}); make a new plan",
                saved
                    .made_against
                    .state_generation
                    .map_or("none".into(), |g| g.to_string()),
                saved
                    .made_against
                    .base_revision
                    .as_deref()
                    .unwrap_or("none"),
                applied.as_deref().unwrap_or("none")
            );
        }
        plan = saved.clone();
    } else if args.refresh {
        let findings = rt.block_on(engine.scan_drift(&desired.stack, Some(&desired)))?;
        plan.merge_drift(findings);
    }
    print_plan(&plan, colours);
    if plan.policy.blocked {
        eprintln!(
            "{}: the plan is blocked by policy; nothing was applied",
            paint(colours, "1;31", "error")
        );
        return Ok(3);
    }
    if !plan.summary.has_changes {
        println!("No changes. The world matches the stack.");
        return Ok(0);
    }
    if !confirm(
        args.options.auto_approve,
        "Do you want to perform these actions?",
    )? {
        println!("Apply cancelled.");
        return Ok(1);
    }
    let plan_id = store_of(&engine)
        .record_plan(Some(&head_revision), &planner::render::json(&plan))
        .ok();
    let started = Instant::now();
    let outcome =
        rt.block_on(engine.apply(&plan, &prior, &desired, &head_revision, "apply", plan_id))?;
    Ok(report_outcome(&outcome, started.elapsed(), colours))
}

/// `plan` without `--base`: against the store when one exists, else from nothing.
pub fn plan_from_store(
    stack: &Path,
    state_dir: &Path,
    refresh: bool,
    allow_destroy: Vec<String>,
    colours: Colours,
) -> Result<Option<Plan>> {
    let Some((desired, revision)) = analyzed(stack, colours)? else {
        return Ok(None);
    };
    if !Store::exists(state_dir) {
        if refresh {
            bail!(
                "--refresh needs a store; nothing has been applied from {}",
                state_dir.display()
            );
        }
        // Nothing applied yet: made against the empty store, generation 0.
        let made_against = MadeAgainst {
            base_revision: None,
            head_revision: Some(revision),
            state_generation: Some(0),
        };
        let plan = planner::plan::plan(
            &Snapshot::empty(&desired.stack),
            &desired,
            &PlanOptions {
                allow_destroy,
                made_against,
            },
        );
        return Ok(Some(plan));
    }
    let store = Store::open(state_dir)?;
    let (_, mut plan) = plan_against_store(&store, &desired, &revision, allow_destroy)?;
    if refresh {
        let drivers = build_drivers(&desired)?;
        let engine = engine(store, drivers, 8);
        let findings = runtime()?.block_on(engine.scan_drift(&desired.stack, Some(&desired)))?;
        plan.merge_drift(findings);
    }
    Ok(Some(plan))
}

pub fn drift(
    stack: &Path,
    state_dir: &Path,
    detailed: bool,
    json: bool,
    colours: Colours,
) -> Result<u8> {
    let store = open_existing(state_dir)?;
    let applied = store.applied_revision()?;
    // The drivers the world was made with; the current stack (when valid) tells declared
    // resources apart from orphans.
    let declared = analyzed(stack, colours)?.map(|(s, _)| s);
    let reference = match (&applied, &declared) {
        (Some(rev), _) => store.snapshot(rev)?.map(|(_, s)| s),
        (None, Some(d)) => Some(d.clone()),
        (None, None) => None,
    }
    .ok_or_else(|| anyhow!("nothing has been applied from {}", state_dir.display()))?;
    let drivers = build_drivers(&reference)?;
    let stack_name = store.stack_name()?.unwrap_or(reference.stack.clone());
    let engine = engine(store, drivers, 8);
    let findings = runtime()?.block_on(engine.scan_drift(&stack_name, declared.as_ref()))?;
    store_of(&engine).record_drift(&findings)?;
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
            let (marker, code) = match f.status.as_str() {
                "missing" => ("-", "1;31"),
                "orphan" => ("?", "1;35"),
                _ => ("~", "1;33"),
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
        if findings.iter().any(|f| f.status != "orphan") {
            println!(
                "\nCorrect with `platformd apply --refresh` (resources with drift policy `correct`)."
            );
        }
        if findings.iter().any(|f| f.status == "orphan") {
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
    let store = Store::open(state_dir)?;
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
        .find(|r| applied.as_deref() == Some(r.revision.as_str()) && r.status == "succeeded")
        .map(|r| r.id);
    println!(
        "{:>4}  {:<23}  {:<9}  {:<11}  {:<24}  summary",
        "id", "started", "reason", "status", "revision"
    );
    for r in rows {
        let mut marks = String::new();
        if Some(r.id) == current_id {
            marks.push_str(" (current)");
        }
        if pin.as_deref() == Some(r.revision.as_str()) && r.reason == "rollback" {
            marks.push_str(" (pinned)");
        }
        println!(
            "{:>4}  {:<23}  {:<9}  {:<11}  {:<24}  {}{marks}",
            r.id,
            store::format_time(r.started_at),
            r.reason,
            r.status,
            r.revision,
            r.summary.unwrap_or_default()
        );
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
    let ApplyOptions {
        auto_approve,
        parallelism,
        allow_destroy,
        lock_timeout,
    } = options;
    let store = open_existing(state_dir)?;
    let (full, snapshot) = store.snapshot(revision)?.ok_or_else(|| {
        anyhow!("no applied revision `{revision}` in the history; see `platformd history`")
    })?;
    let succeeded = store
        .history()?
        .iter()
        .any(|a| a.revision == full && a.status == "succeeded");
    if !succeeded {
        bail!("revision {full} was never applied in full, so it is not a rollback target");
    }
    let _lease = LeaseGuard::acquire(&store, "platformd rollback", lock_timeout)?;
    let drivers = build_drivers(&snapshot)?;
    let engine = engine(store, drivers, parallelism);
    let rt = runtime()?;
    rt.block_on(engine.recover())?;
    let (prior, plan) = {
        let store = store_of(&engine);
        plan_against_store(&store, &snapshot, &full, allow_destroy)?
    };
    println!("Rollback to {full}:");
    print_plan(&plan, colours);
    if plan.policy.blocked {
        eprintln!(
            "{}: the rollback plan is blocked by policy; nothing was applied",
            paint(colours, "1;31", "error")
        );
        return Ok(3);
    }
    if plan.summary.has_changes
        && !confirm(
            auto_approve,
            "Roll back and pin the stack to this revision?",
        )?
    {
        println!("Rollback cancelled.");
        return Ok(1);
    }
    let code = if plan.summary.has_changes {
        let plan_id = store_of(&engine)
            .record_plan(Some(&full), &planner::render::json(&plan))
            .ok();
        let started = Instant::now();
        let outcome =
            rt.block_on(engine.apply(&plan, &prior, &snapshot, &full, "rollback", plan_id))?;
        report_outcome(&outcome, started.elapsed(), colours)
    } else {
        0
    };
    store_of(&engine).set_pin(Some(&full))?;
    println!("Pinned to {full}. New revisions are not applied until `platformd resume`.");
    Ok(code)
}

pub fn resume(state_dir: &Path) -> Result<u8> {
    let store = open_existing(state_dir)?;
    match store.pinned_revision()? {
        Some(rev) => {
            store.set_pin(None)?;
            println!("Resumed: no longer pinned to {rev}; the next apply follows the stack.");
        }
        None => println!("Not pinned; nothing to resume."),
    }
    Ok(0)
}
