//! Plan renderers: text for terminals and logs, JSON for machines, Markdown for PR comments.

use crate::cost::{format_delta, format_usd};
use crate::plan::{Action, FieldChange, KNOWN_AFTER_APPLY, Plan, ResourceChange};
use serde_json::Value;
use std::fmt::Write as _;

/// Markdown comments stay under this size (GitHub's limit is 65,536 characters).
pub const MARKDOWN_LIMIT: usize = 60_000;

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}")
}

/// `3 to create, 1 to update, 1 to replace, 1 to delete, 24 unchanged`
pub fn summary_line(plan: &Plan) -> String {
    let s = &plan.summary;
    let mut parts = Vec::new();
    for (n, what) in [
        (s.create, "to create"),
        (s.update, "to update"),
        (s.replace, "to replace"),
        (s.delete, "to delete"),
        (s.import, "to import"),
        (s.forget, "to forget"),
    ] {
        if n > 0 {
            parts.push(plural(n, what));
        }
    }
    if parts.is_empty() {
        return format!("no changes, {} unchanged", s.no_op);
    }
    parts.push(format!("{} unchanged", s.no_op));
    let mut line = parts.join(", ");
    if s.blocked > 0 {
        let _ = write!(line, " ({} blocked)", s.blocked);
    }
    line
}

pub fn cost_line(plan: &Plan) -> String {
    format!(
        "{}/month → {}/month ({})",
        format_usd(plan.cost.before),
        format_usd(plan.cost.after),
        format_delta(plan.cost.delta)
    )
}

fn value_text(v: Option<&Value>) -> String {
    match v {
        None => "(none)".to_string(),
        Some(v) => serde_json::to_string(v).unwrap_or_default(),
    }
}

/// Leaf fields of a spec, for listing what a create sets. Empty collections and the lifecycle
/// block (platformd's own settings) are left out to keep creates readable.
fn leaves(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if prefix.is_empty() && k == "lifecycle" {
                    continue;
                }
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                let is_env_value = prefix.ends_with("env") && v.is_object();
                if is_env_value {
                    out.push((p, value_text(Some(v))));
                } else {
                    leaves(&p, v, out);
                }
            }
        }
        Value::Array(a) if a.is_empty() => {}
        other => out.push((prefix.to_string(), value_text(Some(other)))),
    }
}

struct Paint {
    colour: bool,
}

impl Paint {
    fn c(&self, code: &str, s: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    fn action(&self, a: Action, s: &str) -> String {
        let code = match a {
            Action::Create => "32",
            Action::Update => "33",
            Action::Replace => "35",
            Action::Delete => "31",
            Action::NoOp => "0",
            Action::Import => "36",
            Action::Forget => "34",
        };
        self.c(code, s)
    }
}

/// A terraform-like text plan: summary first, then each change in apply order.
pub fn text(plan: &Plan, colour: bool) -> String {
    let p = Paint { colour };
    let mut out = String::new();
    let env = plan
        .environment
        .as_deref()
        .map(|e| format!(" ({e})"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "{} {}",
        p.c("1", &format!("Plan for {}{env}:", plan.stack)),
        summary_line(plan)
    );
    let _ = writeln!(out, "Cost: {}", cost_line(plan));
    if let Some(line) = targeting_line(plan) {
        let _ = writeln!(out, "{}", p.c("1;33", &line));
    }
    if plan.policy.blocked {
        let _ = writeln!(
            out,
            "{}",
            p.c("1;31", "Blocked by policy: this plan will not be applied")
        );
    }
    if plan.summary.has_changes {
        out.push('\n');
    }
    for r in plan.changes() {
        render_change_text(&p, r, &mut out);
    }
    if let Some(w) = &plan.window {
        let _ = writeln!(
            out,
            "{} closed: {}\n",
            p.c("1;33", "Sync window:"),
            window_verdict(w)
        );
    }
    if !plan.policy.violations.is_empty() || !plan.policy.warnings.is_empty() {
        let _ = writeln!(out, "{}", p.c("1", "Policy:"));
        let at = |v: &crate::plan::Violation| {
            v.location
                .as_ref()
                .map(|l| format!(" ({})", p.c("2", &format!("at {l}"))))
                .unwrap_or_default()
        };
        for v in &plan.policy.violations {
            let _ = writeln!(
                out,
                "  {} {}: {}{}",
                p.c("1;31", "✗"),
                v.policy,
                v.message,
                at(v)
            );
        }
        for v in &plan.policy.warnings {
            let _ = writeln!(
                out,
                "  {} {}: {}{}",
                p.c("1;33", "!"),
                v.policy,
                v.message,
                at(v)
            );
        }
        out.push('\n');
    }
    let moved: Vec<_> = plan
        .cost
        .teams
        .iter()
        .filter(|t| t.delta.abs() >= 0.005 || t.over_budget)
        .collect();
    if !moved.is_empty() {
        let _ = writeln!(out, "{}", p.c("1", "Cost by team (monthly):"));
        let width = moved.iter().map(|t| t.team.len()).max().unwrap_or(0);
        for t in moved {
            let budget = match t.budget {
                Some(b) if t.over_budget => format!(
                    "  {}",
                    p.c("1;31", &format!("over budget {}", format_usd(b)))
                ),
                Some(b) => format!("  budget {}", format_usd(b)),
                None => String::new(),
            };
            let _ = writeln!(
                out,
                "  {:width$}  {} → {} ({}){budget}",
                t.team,
                format_usd(t.before),
                format_usd(t.after),
                format_delta(t.delta)
            );
        }
    }
    out
}

fn render_change_text(p: &Paint, r: &ResourceChange, out: &mut String) {
    // A move is made in its new place before the old one goes: Terraform's create before
    // destroy, and its marker.
    let marker = if r.moves { "+/-" } else { r.action.marker() };
    let head = format!("{marker:>3} {}", r.address);
    let detail = match r.action {
        Action::Create => "will be created".to_string(),
        Action::Replace if r.moves => format!(
            "will be moved ({})",
            r.reason.trim_end_matches("; blocked: protected")
        ),
        Action::Update if r.reason != "update in place" => {
            format!("will be updated in place ({})", r.reason)
        }
        Action::Update => "will be updated in place".to_string(),
        Action::Replace => format!(
            "must be replaced ({})",
            r.reason.trim_end_matches("; blocked: protected")
        ),
        Action::Delete => "will be destroyed".to_string(),
        Action::NoOp => String::new(),
        Action::Import => format!(
            "will be imported (id `{}`), then updated to its declaration",
            r.import_id.as_deref().unwrap_or("")
        ),
        Action::Forget => {
            "will no longer be managed (removed): its objects stay, not destroyed".to_string()
        }
    };
    let _ = writeln!(out, "{} [{}] {detail}", p.action(r.action, &head), r.driver);
    if let Some(t) = &r.template {
        let _ = writeln!(out, "      {}", p.c("2", &template_line(t)));
    }
    if r.blocked {
        let _ = writeln!(
            out,
            "      {}",
            p.c(
                "1;31",
                &format!(
                    "BLOCKED: protected; {} destroys it. Allow with --allow-destroy {}",
                    if r.action == Action::Delete {
                        "deleting"
                    } else {
                        "replacing"
                    },
                    r.address
                )
            )
        );
    }
    match r.action {
        Action::Create | Action::Import => {
            let mut fields = Vec::new();
            if let Some(after) = &r.after {
                leaves("", &after.value(), &mut fields);
            }
            let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
            for (k, v) in fields {
                let _ = writeln!(
                    out,
                    "      {}",
                    p.action(Action::Create, &format!("+ {k:width$} = {v}"))
                );
            }
        }
        Action::Update | Action::Replace => {
            let width = r.changes.iter().map(|c| c.path.len()).max().unwrap_or(0);
            // A scale-down by the cost controller says why on each line it changes.
            let why = r
                .scaled_down
                .as_deref()
                .filter(|why| r.reason == *why)
                .map(|why| format!(" ({why})"))
                .unwrap_or_default();
            for c in &r.changes {
                let _ = writeln!(out, "      {}{why}", field_line(p, c, width));
            }
            if !r.ignored_paths.is_empty() {
                let _ = writeln!(
                    out,
                    "      (ignored by ignore-changes: {})",
                    r.ignored_paths.join(", ")
                );
            }
        }
        _ => {}
    }
    if !r.depends_on.is_empty() && r.action != Action::Delete {
        let _ = writeln!(out, "      after: {}", r.depends_on.join(", "));
    }
    out.push('\n');
}

/// The warning of a targeted plan (`--target`), as Terraform gives it.
pub fn targeting_line(plan: &Plan) -> Option<String> {
    (!plan.targets.is_empty()).then(|| {
        format!(
            "Targeting is in effect: only {} and what they need; the rest of the stack is left as it is",
            plan.targets.join(", ")
        )
    })
}

/// `from template web-service v2, use "checkout" at payments/checkout.kdl:1:1`.
pub fn template_line(t: &crate::template::TemplateOrigin) -> String {
    format!(
        "from template {} v{}, use \"{}\" at {}",
        t.template, t.version, t.use_name, t.at
    )
}

fn field_line(p: &Paint, c: &FieldChange, width: usize) -> String {
    let (marker, action) = match (&c.before, &c.after) {
        (None, Some(_)) => ("+", Action::Create),
        (Some(_), None) => ("-", Action::Delete),
        _ => ("~", Action::Update),
    };
    let forces = if c.forces_replacement.is_some() {
        p.c("1;35", "  # forces replacement")
    } else {
        String::new()
    };
    let text = match (&c.before, &c.after) {
        _ if c.known_after_apply => format!(
            "~ {:width$} = {} → {KNOWN_AFTER_APPLY}",
            c.path,
            value_text(c.before.as_ref())
        ),
        (None, Some(a)) => format!("{marker} {:width$} = {}", c.path, value_text(Some(a))),
        (Some(b), None) => format!("{marker} {:width$} = {}", c.path, value_text(Some(b))),
        (b, a) => format!(
            "{marker} {:width$} = {} → {}",
            c.path,
            value_text(b.as_ref()),
            value_text(a.as_ref())
        ),
    };
    format!("{}{forces}", p.action(action, &text))
}

/// The JSON plan (`docs/PLAN_FORMAT.md`), pretty-printed.
pub fn json(plan: &Plan) -> String {
    let mut s =
        serde_json::to_string_pretty(plan).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}

/// [`json`] written to `out` as it is rendered, so a large plan is never held as text too.
///
/// The resource changes, nearly all of the text (7.7 MB at 10,000 resources), are rendered in
/// chunks on two threads taking turns, each chunk written as soon as it and those before it
/// are done: the text comes out byte for byte as [`json`] has it, at most two chunks are held
/// at once, and the render takes half the time on two cores.
pub fn write_json(plan: &Plan, out: impl std::io::Write) -> std::io::Result<()> {
    write_json_in_chunks(plan, out, JSON_CHUNK)
}

/// Resource changes per chunk of [`write_json`]: about 230 KB of text.
const JSON_CHUNK: usize = 256;

/// The top-level key whose value [`write_json`] renders apart, as serde_json's pretty printer
/// writes it for an empty list. Nothing else can match: inside a string a newline is escaped.
const EMPTY_RESOURCES: &[u8] = b"\n  \"resources\": []";

fn write_json_in_chunks(
    plan: &Plan,
    mut out: impl std::io::Write,
    chunk: usize,
) -> std::io::Result<()> {
    let serial = |mut out: &mut dyn std::io::Write| {
        serde_json::to_writer_pretty(&mut out, plan).map_err(std::io::Error::other)?;
        out.write_all(b"\n")
    };
    if plan.resources.len() <= chunk {
        return serial(&mut out);
    }
    // Everything but the resource changes, rendered whole; they go in at the empty list.
    let shell = Plan {
        format_version: plan.format_version.clone(),
        stack: plan.stack.clone(),
        environment: plan.environment.clone(),
        made_against: plan.made_against.clone(),
        summary: plan.summary.clone(),
        resources: Vec::new(),
        drift: plan.drift.clone(),
        policy: plan.policy.clone(),
        cost: plan.cost.clone(),
        drivers: plan.drivers.clone(),
        windows: plan.windows.clone(),
        window: plan.window.clone(),
        approval: plan.approval.clone(),
        targets: plan.targets.clone(),
    };
    let shell = serde_json::to_vec_pretty(&shell).map_err(std::io::Error::other)?;
    let Some(at) = shell
        .windows(EMPTY_RESOURCES.len())
        .position(|w| w == EMPTY_RESOURCES)
    else {
        return serial(&mut out);
    };
    let open = at + EMPTY_RESOURCES.len() - 1; // up to and including `[`
    out.write_all(&shell[..open])?;
    let chunks: Vec<&[ResourceChange]> = plan.resources.chunks(chunk).collect();
    std::thread::scope(|scope| -> std::io::Result<()> {
        // The helper renders the odd chunks and hands each over in turn; one waiting at a
        // time bounds what is held.
        let (send, receive) = std::sync::mpsc::sync_channel::<serde_json::Result<Vec<u8>>>(1);
        let chunks = &chunks;
        let helper = std::thread::Builder::new().spawn_scoped(scope, move || {
            for k in (1..chunks.len()).step_by(2) {
                let mut text = Vec::new();
                let rendered = render_changes(chunks[k], k == 0, &mut text).map(|()| text);
                if send.send(rendered).is_err() {
                    return;
                }
            }
        });
        let mut text = Vec::new();
        for (k, changes) in chunks.iter().enumerate() {
            let from_helper = helper.is_ok() && k % 2 == 1;
            let rendered = if from_helper {
                match receive.recv() {
                    Ok(rendered) => rendered,
                    // The helper ended early: it panicked, which `scope` passes on.
                    Err(_) => break,
                }
            } else {
                text.clear();
                render_changes(changes, k == 0, &mut text).map(|()| std::mem::take(&mut text))
            };
            let rendered = rendered.map_err(std::io::Error::other)?;
            out.write_all(&rendered)?;
            if !from_helper {
                text = rendered;
            }
        }
        Ok(())
    })?;
    out.write_all(b"\n  ]")?;
    out.write_all(&shell[open + 1..])?;
    out.write_all(b"\n")
}

/// Resource changes as the elements of the plan's `resources` list, as serde_json's pretty
/// printer writes them there: each on a new line indented by two levels, the list's first
/// without a comma before it.
///
/// They are rendered as a list inside a list, which puts them at that depth, and the two
/// lists' brackets are cut off.
fn render_changes(
    changes: &[ResourceChange],
    first_in_list: bool,
    out: &mut Vec<u8>,
) -> serde_json::Result<()> {
    const OPEN: &[u8] = b"[\n  [";
    const CLOSE: &[u8] = b"\n  ]\n]";
    let start = out.len();
    serde_json::to_writer_pretty(&mut *out, &[changes])?;
    if changes.is_empty() || !out[start..].starts_with(OPEN) || !out.ends_with(CLOSE) {
        return Err(serde::ser::Error::custom(
            "unexpected shape of a rendered list",
        ));
    }
    out.truncate(out.len() - CLOSE.len());
    if first_in_list {
        out.drain(start..start + OPEN.len());
    } else {
        // The inner list's `[` becomes the comma after the element before.
        out.drain(start..start + OPEN.len() - 1);
        out[start] = b',';
    }
    Ok(())
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn action_badge(a: Action) -> &'static str {
    match a {
        Action::Create => "🟢 create",
        Action::Update => "🟡 update",
        Action::Replace => "🟣 replace",
        Action::Delete => "🔴 delete",
        Action::NoOp => "no-op",
        Action::Import => "🔵 import",
        Action::Forget => "⚪ forget",
    }
}

/// A Markdown plan for a PR comment: summary and cost first, a table of changes, per-resource
/// details. Never longer than `limit` characters: details, then table rows, are cut with a note.
pub fn markdown(plan: &Plan, limit: usize) -> String {
    let mut head = String::new();
    let env = plan
        .environment
        .as_deref()
        .map(|e| format!(" ({e})"))
        .unwrap_or_default();
    let _ = writeln!(head, "### platformd plan: `{}`{env}\n", plan.stack);
    let _ = writeln!(head, "**{}**  ", summary_line(plan));
    let _ = writeln!(head, "**Cost:** {}\n", cost_line(plan));
    if let Some(line) = targeting_line(plan) {
        let _ = writeln!(head, "> [!WARNING]\n> {}\n", md_escape(&line));
    }
    if plan.policy.blocked {
        let _ = writeln!(
            head,
            "> [!CAUTION]\n> **Blocked by policy.** This plan will not be applied until these are resolved:"
        );
        for v in &plan.policy.violations {
            let _ = writeln!(
                head,
                "> - **{}**: {}{}",
                v.policy,
                md_escape(&v.message),
                md_at(v)
            );
        }
        head.push('\n');
    }
    if let Some(w) = &plan.window {
        let _ = writeln!(
            head,
            "> [!NOTE]\n> **Sync window closed:** {}\n",
            md_escape(&window_verdict(w))
        );
    }
    if !plan.policy.warnings.is_empty() {
        let _ = writeln!(head, "> [!WARNING]");
        for v in &plan.policy.warnings {
            let _ = writeln!(
                head,
                "> - **{}**: {}{}",
                v.policy,
                md_escape(&v.message),
                md_at(v)
            );
        }
        head.push('\n');
    }

    let changes: Vec<&ResourceChange> = plan.changes().collect();
    let mut rows = Vec::new();
    for r in &changes {
        let changed = if r.action == Action::Create || r.action == Action::Delete {
            String::new()
        } else {
            r.changed_paths
                .iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let blocked = if r.blocked { " ⛔ blocked" } else { "" };
        let template = r
            .template
            .as_ref()
            .map(|t| {
                format!(
                    " <sub>{} v{}</sub>",
                    md_escape(&t.template),
                    md_escape(&t.version)
                )
            })
            .unwrap_or_default();
        rows.push(format!(
            "| {}{blocked} | `{}`{template} | {} | {} | {} |\n",
            action_badge(r.action),
            r.address,
            r.driver,
            format_delta(r.cost.after - r.cost.before),
            md_escape(&changed)
        ));
    }
    let table_head =
        "| Action | Resource | Driver | Cost Δ/month | Changed |\n|---|---|---|---:|---|\n";

    let mut teams = String::new();
    let moved: Vec<_> = plan
        .cost
        .teams
        .iter()
        .filter(|t| t.delta.abs() >= 0.005 || t.over_budget)
        .collect();
    if !moved.is_empty() {
        teams.push_str("\n#### Cost by team (monthly)\n\n| Team | Before | After | Δ | Budget |\n|---|---:|---:|---:|---:|\n");
        for t in moved {
            let budget = match t.budget {
                Some(b) if t.over_budget => format!("⛔ {} (over)", format_usd(b)),
                Some(b) => format_usd(b),
                None => "—".to_string(),
            };
            let _ = writeln!(
                teams,
                "| {} | {} | {} | {} | {} |",
                t.team,
                format_usd(t.before),
                format_usd(t.after),
                format_delta(t.delta),
                budget
            );
        }
    }

    let mut details = Vec::new();
    for r in &changes {
        let mut d = String::new();
        let _ = writeln!(
            d,
            "<details><summary><code>{}</code>: {}</summary>\n",
            r.address,
            md_escape(&r.reason)
        );
        if let Some(t) = &r.template {
            let _ = writeln!(d, "{}\n", md_escape(&template_line(t)));
        }
        d.push_str("```diff\n");
        match r.action {
            Action::Create | Action::Import => {
                let mut fields = Vec::new();
                if let Some(after) = &r.after {
                    leaves("", &after.value(), &mut fields);
                }
                for (k, v) in fields {
                    let _ = writeln!(d, "+ {k} = {v}");
                }
            }
            Action::Delete => {
                let _ = writeln!(d, "- {} (destroyed)", r.address);
            }
            _ => {
                for c in &r.changes {
                    let forces = if c.forces_replacement.is_some() {
                        "  # forces replacement"
                    } else {
                        ""
                    };
                    let after = if c.known_after_apply {
                        KNOWN_AFTER_APPLY.to_string()
                    } else {
                        value_text(c.after.as_ref())
                    };
                    let _ = writeln!(d, "- {} = {}", c.path, value_text(c.before.as_ref()));
                    let _ = writeln!(d, "+ {} = {after}{forces}", c.path);
                }
            }
        }
        // A fence inside a value must not end the block early.
        let d = d.replace("```\n", "'''\n");
        details.push(format!(
            "{}```\n\n</details>\n",
            d.trim_end_matches("```\n")
        ));
    }

    let footer = "\n<sub>Generated by `platformd plan`. The full machine-readable plan is `platformd plan --format json`.</sub>\n";
    let mut out = head;
    if changes.is_empty() {
        out.push_str("No changes. The stack matches the prior state.\n");
        out.push_str(&teams);
        out.push_str(footer);
        return truncate_hard(out, limit);
    }

    // Budget: head + table + teams + footer must fit; details fill what is left.
    let fixed = out.len() + table_head.len() + teams.len() + footer.len() + 400;
    let mut table = String::from(table_head);
    let mut shown_rows = 0;
    for row in &rows {
        if fixed + table.len() + row.len() > limit {
            break;
        }
        table.push_str(row);
        shown_rows += 1;
    }
    if shown_rows < rows.len() {
        let _ = writeln!(
            table,
            "\n> [!NOTE]\n> Truncated: {} more change{} not listed (comment limit {} characters). Run `platformd plan --format text` for the full plan.",
            rows.len() - shown_rows,
            if rows.len() - shown_rows == 1 {
                ""
            } else {
                "s"
            },
            limit
        );
    }
    out.push_str(&table);
    out.push_str(&teams);
    let mut detail_text = String::from("\n#### Details\n\n");
    let mut shown_details = 0;
    for d in &details {
        if out.len() + detail_text.len() + d.len() + footer.len() + 300 > limit {
            break;
        }
        detail_text.push_str(d);
        shown_details += 1;
    }
    if shown_details > 0 {
        out.push_str(&detail_text);
    }
    if shown_details < details.len() && shown_rows == rows.len() {
        let _ = writeln!(
            out,
            "\n> [!NOTE]\n> Truncated: details of {} change{} not shown (comment limit {} characters).",
            details.len() - shown_details,
            if details.len() - shown_details == 1 {
                ""
            } else {
                "s"
            },
            limit
        );
    }
    out.push_str(footer);
    truncate_hard(out, limit)
}

/// Last resort for pathological inputs (a huge policy message): cut at a char boundary.
fn truncate_hard(mut s: String, limit: usize) -> String {
    if s.len() <= limit {
        return s;
    }
    let note = "\n\n> [!NOTE]\n> Truncated to fit the comment limit.\n";
    let mut cut = limit.saturating_sub(note.len());
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    s.push_str(note);
    s
}

/// `2026-11-22 20:09:35 UTC` from Unix seconds.
pub fn format_unix_time(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// ` (`path:line:column`)` after a policy finding, in Markdown.
fn md_at(v: &crate::plan::Violation) -> String {
    v.location
        .as_ref()
        .map(|l| format!(" (`{l}`)"))
        .unwrap_or_default()
}

/// Why a sync window is closed and when it opens: `the deny window … is in force; opens at …`.
pub fn window_verdict(w: &crate::window::WindowState) -> String {
    let opens = w
        .opens_at
        .as_deref()
        .map_or(String::new(), |t| format!("; opens at {t}"));
    format!("{}{opens}", w.reason.as_deref().unwrap_or("closed"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{PlanOptions, plan};
    use crate::{Snapshot, StackFile};

    /// A stack of `services` services wired in a chain; `version` changes every third image.
    fn snapshot(services: usize, version: usize) -> Snapshot {
        let mut text = String::from(
            "platform \"shop\" {\n    environment \"staging\"\n    driver \"local\" {\n        path \".out\"\n    }\n}\n\
             team \"web\" {\n    owner \"web@acme.example\"\n}\n",
        );
        for i in 0..services {
            let tag = if i % 3 == 0 { version } else { 0 };
            text.push_str(&format!(
                "service \"s{i}\" {{\n    team \"web\"\n    image \"ghcr.io/acme/s{i}:1.{tag}.0\"\n    env \"NOTE\" \"line\\nbreak \\\"quoted\\\"\"\n"
            ));
            if i > 0 {
                text.push_str(&format!("    env \"UP\" from=\"service/s{}.url\"\n", i - 1));
            }
            text.push_str("}\n");
        }
        let analysis = crate::analyze(vec![StackFile {
            path: "platform.kdl".into(),
            text,
        }]);
        assert!(!analysis.has_errors(), "{:?}", analysis.diagnostics);
        analysis.snapshot.expect("a valid stack has a snapshot")
    }

    fn chunked(plan: &Plan, chunk: usize) -> String {
        let mut out = Vec::new();
        write_json_in_chunks(plan, &mut out, chunk).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_rendered_in_chunks_on_two_threads_is_the_serial_text() {
        let options = PlanOptions::default();
        let from_empty = plan(&Snapshot::empty("shop"), &snapshot(23, 1), &options);
        let updates = plan(&snapshot(30, 1), &snapshot(23, 2), &options);
        assert!(updates.resources.iter().any(|r| !r.changes.is_empty()));
        let nothing = plan(&Snapshot::empty("shop"), &Snapshot::empty("shop"), &options);
        for p in [&from_empty, &updates, &nothing] {
            let serial = json(p);
            // Chunks of one, of a few (an odd and an even count of them), and one chunk only.
            for chunk in [1, 2, 4, 5, 7, 22, 23, 24, 100] {
                assert_eq!(chunked(p, chunk), serial, "chunks of {chunk}");
            }
        }
    }
}
