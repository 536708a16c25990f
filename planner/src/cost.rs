//! Monthly cost estimates from a built-in price table (AWS on-demand list prices, eu-west-1,
//! USD), overridable per stack with a `pricing { }` block. Estimates are for guardrails and PR
//! review, not billing: they are deterministic and explainable, not exact.

use crate::diagnostic::Diagnostic;
use crate::model::{Capacity, DatabaseEngine, Resource, Spec, Stack};
use crate::units::{cpu_millis, memory_bytes};
use std::collections::BTreeMap;

pub const HOURS_PER_MONTH: f64 = 730.0;

/// Named rates a `pricing { rate "name" usd=X }` may override, with their defaults.
pub const RATE_NAMES: &[&str] = &[
    "vcpu-month",
    "gib-month",
    "db-storage-gb-month",
    "bucket-gb-month",
    "partition-month",
    "spot-factor",
];

fn default_rate(name: &str) -> f64 {
    match name {
        // Fargate-like compute: $0.04048 per vCPU-hour, $0.004445 per GiB-hour.
        "vcpu-month" => 29.55,
        "gib-month" => 3.24,
        "db-storage-gb-month" => 0.115,
        "bucket-gb-month" => 0.023,
        "partition-month" => 1.50,
        // Spot capacity billed as a fraction of on-demand.
        "spot-factor" => 0.35,
        _ => 0.0,
    }
}

/// Instance type → (on-demand USD per hour, GPUs per instance).
const INSTANCES: &[(&str, f64, u32)] = &[
    ("g4dn.xlarge", 0.526, 1),
    ("g4dn.12xlarge", 3.912, 4),
    ("g5.xlarge", 1.006, 1),
    ("g5.2xlarge", 1.212, 1),
    ("g5.12xlarge", 5.672, 4),
    ("g5.48xlarge", 16.288, 8),
    ("g6.xlarge", 0.8048, 1),
    ("g6.2xlarge", 0.9776, 1),
    ("g6.12xlarge", 4.6016, 4),
    ("g6e.xlarge", 1.861, 1),
    ("g6e.12xlarge", 10.493, 4),
    ("p4d.24xlarge", 32.7726, 8),
    ("p5.48xlarge", 98.32, 8),
    ("inf2.xlarge", 0.7582, 1),
    ("inf2.8xlarge", 1.9679, 1),
    ("trn1.2xlarge", 1.3438, 1),
    ("ml.g4dn.xlarge", 0.7364, 1),
    ("ml.g4dn.2xlarge", 0.94, 1),
    ("ml.g5.xlarge", 1.408, 1),
    ("ml.g5.2xlarge", 1.515, 1),
    ("ml.g6.xlarge", 1.0056, 1),
    ("ml.p4d.24xlarge", 37.688, 8),
    ("db.t4g.micro", 0.016, 0),
    ("db.t4g.small", 0.032, 0),
    ("db.t4g.medium", 0.065, 0),
    ("db.t4g.large", 0.129, 0),
    ("db.m6g.large", 0.152, 0),
    ("db.m6g.xlarge", 0.304, 0),
    ("db.m6g.2xlarge", 0.608, 0),
    ("db.r6g.large", 0.225, 0),
    ("db.r6g.xlarge", 0.45, 0),
    ("db.r6g.2xlarge", 0.9, 0),
    ("db.r6g.4xlarge", 1.8, 0),
    ("db.r7g.large", 0.239, 0),
    ("db.r7g.xlarge", 0.478, 0),
];

/// GPUs of a known instance type (`g6.xlarge` → 1), from the built-in price table.
pub fn gpus_per_instance(instance_type: &str) -> Option<u32> {
    INSTANCES
        .iter()
        .find(|(n, _, _)| *n == instance_type)
        .map(|(_, _, gpus)| *gpus)
}

pub struct PriceTable<'a> {
    stack: &'a Stack,
}

impl<'a> PriceTable<'a> {
    pub fn new(stack: &'a Stack) -> PriceTable<'a> {
        PriceTable { stack }
    }

    pub fn rate(&self, name: &str) -> f64 {
        self.stack
            .pricing
            .rates
            .get(name)
            .copied()
            .unwrap_or_else(|| default_rate(name))
    }

    /// (USD per hour, GPUs) of an instance type.
    pub fn instance(&self, instance_type: &str) -> Option<(f64, u32)> {
        if let Some(p) = self.stack.pricing.instances.get(instance_type) {
            return Some(*p);
        }
        INSTANCES
            .iter()
            .find(|(n, _, _)| *n == instance_type)
            .map(|(_, h, g)| (*h, *g))
    }
}

/// Monthly cost in USD by address, and the warnings made on the way (unknown prices).
pub type Estimate = (BTreeMap<String, f64>, Vec<Diagnostic>);

/// Monthly estimates for every resource, in USD, plus warnings for prices it does not know.
pub fn estimate(stack: &Stack) -> Estimate {
    let prices = PriceTable::new(stack);
    // Collected as a list and made into the map at once: inserting 10,000 addresses one by
    // one into a `BTreeMap` was most of the estimate's time.
    let mut costs: Vec<(String, f64)> = Vec::with_capacity(stack.resources.len());
    let mut warnings = Vec::new();
    let mut unknown_price = |r: &Resource, instance_type: &str| {
        warnings.push(
            Diagnostic::warning(
                "unknown-price",
                format!(
                    "no price for instance type \"{instance_type}\"; {} is counted as $0",
                    r.address
                ),
            )
            .with_label(r.name_span, "cost unknown")
            .with_help(format!(
                "add `pricing {{ instance \"{instance_type}\" hourly-usd=… gpus=… }}` to the stack"
            )),
        );
    };
    // GPU pools are reserved at their max nodes; endpoints placed on a pool are charged their
    // share (GPUs × replicas) and the pool keeps the unallocated rest, so the total is counted once.
    let mut pool_allocated: BTreeMap<&str, f64> = BTreeMap::new();
    let pools: foldhash::HashMap<&str, &crate::model::GpuPoolSpec> = stack
        .resources
        .iter()
        .filter_map(|r| match &*r.spec {
            Spec::GpuPool(p) => Some((r.address.name.as_str(), p)),
            _ => None,
        })
        .collect();
    for r in &stack.resources {
        let usd = match &*r.spec {
            Spec::Service(s) => compute_cost(
                &prices,
                &s.resources.cpu,
                &s.resources.memory,
                s.autoscale
                    .as_ref()
                    .map_or(s.replicas, |a| a.min.max(s.replicas)),
            ),
            Spec::Pipeline(p) => {
                compute_cost(&prices, &p.resources.cpu, &p.resources.memory, p.replicas)
            }
            Spec::Database(d) if d.engine == DatabaseEngine::Clickhouse => {
                // Pods of the cluster's size, each with its volume.
                let pods = d.shards.unwrap_or(1) * d.replicas.unwrap_or(1);
                let (cpu, memory) = d
                    .resources
                    .as_ref()
                    .map_or(("2", "8Gi"), |r| (r.cpu.as_str(), r.memory.as_str()));
                compute_cost(&prices, cpu, memory, pods)
                    + pods as f64 * d.storage_gb as f64 * prices.rate("db-storage-gb-month")
            }
            Spec::Database(d) => {
                let size = d.size.as_deref().unwrap_or("");
                let instance = match prices.instance(size) {
                    Some((hourly, _)) => hourly * HOURS_PER_MONTH,
                    None => {
                        unknown_price(r, size);
                        0.0
                    }
                };
                let multiplier = if d.high_availability { 2.0 } else { 1.0 };
                (instance + d.storage_gb as f64 * prices.rate("db-storage-gb-month")) * multiplier
            }
            Spec::Bucket(b) => b.estimated_gb.unwrap_or(0) as f64 * prices.rate("bucket-gb-month"),
            Spec::Topic(t) => t.partitions as f64 * prices.rate("partition-month"),
            Spec::GpuPool(_) => continue, // below, once endpoints are known
            Spec::Job(j) => {
                // Hours of running per month: each run (once for a one-off job) lasts its
                // timeout (1 h without one), with `parallelism` pods at once.
                let runs = j
                    .schedule
                    .as_deref()
                    .and_then(|s| crate::window::Cron::parse(s).ok())
                    .map_or(1.0, |c| c.runs_per_month());
                let hours_per_run = j
                    .timeout
                    .as_deref()
                    .map_or(1.0, |t| crate::units::duration_seconds(t) as f64 / 3600.0);
                let pod_hours = runs * hours_per_run * j.parallelism as f64;
                let compute = compute_cost(&prices, &j.resources.cpu, &j.resources.memory, 1)
                    / HOURS_PER_MONTH
                    * pod_hours;
                let gpus = j.gpu_pool.as_ref().and_then(|placement| {
                    let pool_spec = pools.get(placement.pool.as_str())?;
                    let (hourly, gpus) = prices.instance(&pool_spec.instance_type)?;
                    if gpus == 0 {
                        return None;
                    }
                    let factor = if pool_spec.capacity == Capacity::Spot {
                        prices.rate("spot-factor")
                    } else {
                        1.0
                    };
                    let usd = hourly * factor / gpus as f64 * placement.gpus as f64 * pod_hours;
                    *pool_allocated.entry(placement.pool.as_str()).or_default() += usd;
                    Some(usd)
                });
                compute + gpus.unwrap_or(0.0)
            }
            Spec::AiEndpoint(e) => {
                // The canary's pods run beside the stable ones.
                let replicas = (e
                    .autoscale
                    .as_ref()
                    .map_or(e.replicas, |a| a.min.max(e.replicas))
                    + e.canary_replicas()) as f64;
                if let Some(placement) = &e.gpu_pool {
                    match pools.get(placement.pool.as_str()) {
                        Some(pool_spec) => match prices.instance(&pool_spec.instance_type) {
                            Some((hourly, gpus)) if gpus > 0 => {
                                let factor = if pool_spec.capacity == Capacity::Spot {
                                    prices.rate("spot-factor")
                                } else {
                                    1.0
                                };
                                let usd = hourly * factor / gpus as f64
                                    * placement.gpus as f64
                                    * replicas
                                    * HOURS_PER_MONTH;
                                *pool_allocated.entry(placement.pool.as_str()).or_default() += usd;
                                usd
                            }
                            _ => 0.0, // the pool reports the unknown price
                        },
                        _ => 0.0,
                    }
                } else if let Some(it) = &e.instance_type {
                    match prices.instance(it) {
                        Some((hourly, _)) => hourly * replicas * HOURS_PER_MONTH,
                        None => {
                            unknown_price(r, it);
                            0.0
                        }
                    }
                } else {
                    0.0
                }
            }
            // Rate limits cost nothing themselves.
            Spec::LlmQuota(_) => 0.0,
        };
        costs.push((r.address.key(), usd));
    }
    for r in &stack.resources {
        if let Spec::GpuPool(p) = &*r.spec {
            let usd = match prices.instance(&p.instance_type) {
                Some((hourly, _)) => {
                    let factor = if p.capacity == Capacity::Spot {
                        prices.rate("spot-factor")
                    } else {
                        1.0
                    };
                    let reserved = p.nodes.max as f64 * hourly * factor * HOURS_PER_MONTH;
                    (reserved
                        - pool_allocated
                            .get(r.address.name.as_str())
                            .copied()
                            .unwrap_or(0.0))
                    .max(0.0)
                }
                None => {
                    unknown_price(r, &p.instance_type);
                    0.0
                }
            };
            costs.push((r.address.key(), usd));
        }
    }
    // Stable, and of equal addresses (an invalid stack) the last estimate is kept.
    costs.sort_by(|a, b| a.0.cmp(&b.0));
    costs.dedup_by(|later, kept| {
        let same = later.0 == kept.0;
        if same {
            std::mem::swap(later, kept);
        }
        same
    });
    let costs = costs
        .into_iter()
        .map(|(address, usd)| (address, round_cents(usd)))
        .collect();
    (costs, warnings)
}

fn compute_cost(prices: &PriceTable<'_>, cpu: &str, memory: &str, replicas: u32) -> f64 {
    let vcpu = cpu_millis(cpu).unwrap_or(0) as f64 / 1000.0;
    let gib = memory_bytes(memory).unwrap_or(0) as f64 / (1u64 << 30) as f64;
    (vcpu * prices.rate("vcpu-month") + gib * prices.rate("gib-month")) * replicas as f64
}

pub fn round_cents(usd: f64) -> f64 {
    (usd * 100.0).round() / 100.0
}

/// `$12,345.67`
pub fn format_usd(usd: f64) -> String {
    let cents = (usd.abs() * 100.0).round() as u64;
    let dollars = (cents / 100).to_string();
    let mut grouped = String::new();
    for (i, c) in dollars.chars().enumerate() {
        if i > 0 && (dollars.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if usd < 0.0 && cents > 0 { "-" } else { "" };
    format!("{sign}${grouped}.{:02}", cents % 100)
}

/// `+$1.00`, `-$1.00`, `$0.00`
pub fn format_delta(usd: f64) -> String {
    let cents = (usd * 100.0).round() as i64;
    match cents.signum() {
        1 => format!("+{}", format_usd(usd)),
        -1 => format_usd(usd),
        _ => "$0.00".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_money() {
        assert_eq!(format_usd(1234567.891), "$1,234,567.89");
        assert_eq!(format_usd(0.5), "$0.50");
        assert_eq!(format_delta(-12.0), "-$12.00");
        assert_eq!(format_delta(0.001), "$0.00");
        assert_eq!(format_delta(100.0), "+$100.00");
    }
}

/// One line of a cost breakdown.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CostLine {
    pub name: String,
    pub monthly_usd: f64,
}

/// A team's estimate against its budget.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TeamCostLine {
    pub team: String,
    pub monthly_usd: f64,
    pub budget_monthly_usd: Option<f64>,
    pub over_budget: bool,
}

/// A resource's estimate.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ResourceCostLine {
    pub address: String,
    pub kind: String,
    pub team: String,
    pub monthly_usd: f64,
    /// Its own budget (`cost-budget monthly-usd=`), when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_monthly_usd: Option<f64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub over_budget: bool,
}

/// `platformd cost`: the monthly estimate of a desired state by team (with budgets), kind and
/// resource, costliest first. The same figures as the plan's estimate.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CostBreakdown {
    pub stack: String,
    pub currency: String,
    pub total_monthly_usd: f64,
    pub teams: Vec<TeamCostLine>,
    pub kinds: Vec<CostLine>,
    pub resources: Vec<ResourceCostLine>,
    /// What idle shutdown saved this calendar month, per resource (filled in by the caller, which
    /// has the store; empty without one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub idle_savings: Vec<ResourceCostLine>,
    /// Resources the cost controller holds scaled down: address and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scaled_down: Vec<ScaledDownLine>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ScaledDownLine {
    pub address: String,
    pub note: String,
}

impl CostBreakdown {
    /// Whether a team or a resource is over its budget (`platformd cost` exits 3).
    pub fn over_budget(&self) -> bool {
        self.teams.iter().any(|t| t.over_budget) || self.resources.iter().any(|r| r.over_budget)
    }

    pub fn of(snapshot: &crate::Snapshot) -> CostBreakdown {
        let mut teams: BTreeMap<String, f64> = BTreeMap::new();
        let mut kinds: BTreeMap<String, f64> = BTreeMap::new();
        let mut resources = Vec::new();
        for t in snapshot.teams.keys() {
            teams.entry(t.clone()).or_default();
        }
        for (address, r) in &snapshot.resources {
            *teams.entry(r.team.clone()).or_default() += r.monthly_cost_usd;
            *kinds.entry(r.kind.as_str().to_string()).or_default() += r.monthly_cost_usd;
            resources.push(ResourceCostLine {
                address: address.clone(),
                kind: r.kind.as_str().to_string(),
                team: r.team.clone(),
                monthly_usd: round_cents(r.monthly_cost_usd),
                budget_monthly_usd: r.budget_monthly_usd,
                over_budget: r
                    .budget_monthly_usd
                    .is_some_and(|b| round_cents(r.monthly_cost_usd) > b),
            });
        }
        let by_cost = |a: f64, b: f64| b.total_cmp(&a);
        resources.sort_by(|a, b| {
            by_cost(a.monthly_usd, b.monthly_usd).then_with(|| a.address.cmp(&b.address))
        });
        let mut teams: Vec<TeamCostLine> = teams
            .into_iter()
            .map(|(team, usd)| {
                let budget = snapshot.teams.get(&team).and_then(|t| t.budget_monthly_usd);
                TeamCostLine {
                    over_budget: budget.is_some_and(|b| round_cents(usd) > b),
                    monthly_usd: round_cents(usd),
                    budget_monthly_usd: budget,
                    team,
                }
            })
            .collect();
        teams.sort_by(|a, b| {
            by_cost(a.monthly_usd, b.monthly_usd).then_with(|| a.team.cmp(&b.team))
        });
        let mut kinds: Vec<CostLine> = kinds
            .into_iter()
            .map(|(name, usd)| CostLine {
                name,
                monthly_usd: round_cents(usd),
            })
            .collect();
        kinds.sort_by(|a, b| {
            by_cost(a.monthly_usd, b.monthly_usd).then_with(|| a.name.cmp(&b.name))
        });
        CostBreakdown {
            stack: snapshot.stack.clone(),
            currency: "USD".into(),
            total_monthly_usd: round_cents(
                snapshot
                    .resources
                    .values()
                    .map(|r| r.monthly_cost_usd)
                    .sum(),
            ),
            teams,
            kinds,
            resources,
            idle_savings: Vec::new(),
            scaled_down: snapshot
                .resources
                .iter()
                .filter_map(|(address, r)| {
                    Some(ScaledDownLine {
                        address: address.clone(),
                        note: r.scaled_down.clone()?,
                    })
                })
                .collect(),
        }
    }

    /// Adds this month's idle-shutdown savings, largest first.
    pub fn with_savings(mut self, mut savings: Vec<ResourceCostLine>) -> CostBreakdown {
        for s in &mut savings {
            s.monthly_usd = round_cents(s.monthly_usd);
        }
        savings.sort_by(|a, b| {
            b.monthly_usd
                .total_cmp(&a.monthly_usd)
                .then_with(|| a.address.cmp(&b.address))
        });
        self.idle_savings = savings;
        self
    }

    fn savings_total(&self) -> f64 {
        round_cents(self.idle_savings.iter().map(|s| s.monthly_usd).sum())
    }

    /// A terminal table: total, teams with budgets, kinds, then the costliest `top` resources.
    pub fn text(&self, top: usize) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Monthly estimate for {}: {}\n",
            self.stack,
            format_usd(self.total_monthly_usd)
        );
        let _ = writeln!(out, "By team:");
        for t in &self.teams {
            let budget = match t.budget_monthly_usd {
                Some(b) if t.over_budget => format!("  budget {}  OVER BUDGET", format_usd(b)),
                Some(b) => format!("  budget {}", format_usd(b)),
                None => String::new(),
            };
            let _ = writeln!(
                out,
                "  {:<16} {:>14}{budget}",
                t.team,
                format_usd(t.monthly_usd)
            );
        }
        let _ = writeln!(out, "\nBy kind:");
        for k in &self.kinds {
            let _ = writeln!(out, "  {:<16} {:>14}", k.name, format_usd(k.monthly_usd));
        }
        let _ = writeln!(out, "\nCostliest resources:");
        // Every resource over its own budget is listed, whatever its rank.
        for r in self
            .resources
            .iter()
            .enumerate()
            .filter(|(i, r)| *i < top || r.over_budget)
            .map(|(_, r)| r)
        {
            let budget = match r.budget_monthly_usd {
                Some(b) if r.over_budget => format!("  budget {}  OVER BUDGET", format_usd(b)),
                Some(b) => format!("  budget {}", format_usd(b)),
                None => String::new(),
            };
            let _ = writeln!(
                out,
                "  {:<40} {:>14}  {}{budget}",
                r.address,
                format_usd(r.monthly_usd),
                r.team
            );
        }
        if self.resources.len() > top {
            let _ = writeln!(out, "  … and {} more", self.resources.len() - top);
        }
        if !self.scaled_down.is_empty() {
            let _ = writeln!(out, "\nScaled down by the cost controller:");
            for r in &self.scaled_down {
                let _ = writeln!(out, "  {:<40} {}", r.address, r.note);
            }
        }
        if !self.idle_savings.is_empty() {
            let _ = writeln!(
                out,
                "\nIdle shutdown saved this month: {}",
                format_usd(self.savings_total())
            );
            for r in &self.idle_savings {
                let _ = writeln!(
                    out,
                    "  {:<40} {:>14}  {}",
                    r.address,
                    format_usd(r.monthly_usd),
                    r.team
                );
            }
        }
        out
    }

    /// Markdown for a developer portal page or a pull request.
    pub fn markdown(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "### Monthly cost estimate: `{}`\n\n**Total:** {}\n\n| team | estimate | budget |\n|---|---:|---:|",
            self.stack,
            format_usd(self.total_monthly_usd)
        );
        for t in &self.teams {
            let budget = t.budget_monthly_usd.map_or("—".to_string(), |b| {
                if t.over_budget {
                    format!("{} ⚠️ over", format_usd(b))
                } else {
                    format_usd(b)
                }
            });
            let _ = writeln!(
                out,
                "| {} | {} | {budget} |",
                t.team,
                format_usd(t.monthly_usd)
            );
        }
        let _ = writeln!(out, "\n| kind | estimate |\n|---|---:|");
        for k in &self.kinds {
            let _ = writeln!(out, "| {} | {} |", k.name, format_usd(k.monthly_usd));
        }
        let _ = writeln!(
            out,
            "\n| resource | team | estimate | budget |\n|---|---|---:|---:|"
        );
        for r in &self.resources {
            let budget = match r.budget_monthly_usd {
                Some(b) if r.over_budget => format!("⛔ {} (over)", format_usd(b)),
                Some(b) => format_usd(b),
                None => "—".to_string(),
            };
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {budget} |",
                r.address,
                r.team,
                format_usd(r.monthly_usd)
            );
        }
        if !self.idle_savings.is_empty() {
            let _ = writeln!(
                out,
                "\n**Idle shutdown saved this month:** {}\n\n| resource | team | saved |\n|---|---|---:|",
                format_usd(self.savings_total())
            );
            for r in &self.idle_savings {
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} |",
                    r.address,
                    r.team,
                    format_usd(r.monthly_usd)
                );
            }
        }
        out
    }
}
