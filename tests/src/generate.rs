//! Synthetic stacks of N resources with a realistic mix of kinds and dependency fan-in/out,
//! for benchmarks and scale tests. Deterministic for a given size and seed.
//!
//! Shape: resources are grouped in teams of ~100 (one directory per team, ~20 resources per
//! file). Within a team: databases, topics and buckets are leaves; services wire to 1–3 of
//! them and to other services; pipelines read a topic and write a database or bucket; AI
//! endpoints run on the team's GPU pools; a few services call another team's services.

use std::fmt::Write as _;
use std::path::Path;

use planner::testing::Lcg as Rng;

/// The files of a synthetic stack: (relative path, text), `platform.kdl` first.
pub fn stack_files(resources: usize, seed: u64) -> Vec<(String, String)> {
    let mut rng = Rng(seed ^ 0x9e37_79b9_7f4a_7c15);
    let teams = resources.div_ceil(100).max(1);
    let mut files = Vec::new();
    let mut platform = String::from(
        "platform \"synthetic\" {\n    environment \"bench\"\n    driver \"local\" {\n        path \".platformd/rendered\"\n    }\n}\n\n",
    );
    for t in 0..teams {
        let _ = writeln!(
            platform,
            "team \"team-{t}\" {{\n    owner \"team-{t}@acme.example\"\n    llm-key secret=\"aws-sm:prod/team-{t}/llm-key\"\n}}\n"
        );
    }
    files.push(("platform.kdl".to_string(), platform));

    let mut made = 0;
    for t in 0..teams {
        let count = (resources - made).min(100);
        made += count;
        let team = format!("team-{t}");
        // Kinds in the order they are declared, so references always point backwards.
        let mut plan: Vec<&str> = Vec::with_capacity(count);
        for i in 0..count {
            plan.push(match i * 100 / count.max(1) {
                0..=9 => "database",
                10..=19 => "topic",
                20..=29 => "bucket",
                30..=34 => "gpu-pool",
                35..=44 => "ai-endpoint",
                45..=54 => "pipeline",
                _ => "service",
            });
        }
        let mut declared: Vec<(String, String)> = Vec::new(); // (kind, name)
        let mut chunk = String::new();
        let mut file_no = 0;
        for (i, kind) in plan.iter().enumerate() {
            let name = format!("{kind}-{t}-{i}");
            let of_kind = |k: &str, declared: &[(String, String)]| -> Vec<String> {
                declared
                    .iter()
                    .filter(|(dk, _)| dk == k)
                    .map(|(_, n)| n.clone())
                    .collect()
            };
            let pick = |rng: &mut Rng, v: &[String]| -> Option<String> {
                if v.is_empty() {
                    None
                } else {
                    Some(v[rng.below(v.len())].clone())
                }
            };
            let mut text = format!("{kind} \"{name}\" {{\n    team \"{team}\"\n");
            match *kind {
                "database" => {
                    let _ = write!(
                        text,
                        "    engine \"postgres\" version=\"16\"\n    size \"db.r6g.large\"\n    storage-gb {}\n    backup-retention-days 7\n",
                        50 + rng.below(500)
                    );
                }
                "topic" => {
                    let _ = write!(
                        text,
                        "    partitions {}\n    retention-hours 72\n",
                        1 + rng.below(24)
                    );
                }
                "bucket" => {
                    let _ = write!(
                        text,
                        "    versioning #true\n    expire-after-days {}\n",
                        30 + rng.below(300)
                    );
                }
                "gpu-pool" => {
                    text.push_str("    accelerator \"nvidia-l4\"\n    instance-type \"g6.xlarge\"\n    nodes min=0 max=64\n    capacity \"spot\"\n    idle-shutdown-after \"2h\"\n");
                }
                "ai-endpoint" => {
                    let pool = pick(&mut rng, &of_kind("gpu-pool", &declared)).unwrap_or_default();
                    let _ = write!(
                        text,
                        "    model \"meta-llama/Llama-3.1-8B-Instruct\" revision=\"main\"\n    runtime \"vllm\"\n    gpu-pool \"{pool}\" gpus=1\n    replicas 1\n    rate-limit tokens-per-minute=100000\n"
                    );
                }
                "pipeline" => {
                    let source = pick(&mut rng, &of_kind("topic", &declared)).unwrap_or_default();
                    let (sink_kind, sinks) = if rng.below(2) == 0 {
                        ("database", of_kind("database", &declared))
                    } else {
                        ("bucket", of_kind("bucket", &declared))
                    };
                    let sink = pick(&mut rng, &sinks).unwrap_or_default();
                    // A database sink names its table, a bucket sink its prefix.
                    let key = if sink_kind == "database" {
                        format!("table=\"events_{i}\"")
                    } else {
                        format!("prefix=\"events_{i}/\"")
                    };
                    let _ = write!(
                        text,
                        "    source \"topic/{source}\"\n    sink \"{sink_kind}/{sink}\" {key}\n    image \"ghcr.io/acme/ingest:2.0.{}\"\n",
                        rng.below(9)
                    );
                }
                _ => {
                    let _ = write!(
                        text,
                        "    image \"ghcr.io/acme/svc-{t}-{i}:1.{}.0\"\n    replicas {}\n    port 8080\n    resources cpu=\"250m\" memory=\"256Mi\"\n    env \"LOG_LEVEL\" \"info\"\n",
                        rng.below(20),
                        1 + rng.below(4)
                    );
                    let dbs = of_kind("database", &declared);
                    if let Some(db) = pick(&mut rng, &dbs) {
                        let _ =
                            writeln!(text, "    env \"DATABASE_URL\" from=\"database/{db}.url\"");
                    }
                    if let Some(topic) = pick(&mut rng, &of_kind("topic", &declared)) {
                        let _ = writeln!(
                            text,
                            "    env \"EVENTS\" from=\"topic/{topic}.bootstrap-servers\""
                        );
                    }
                    if rng.below(3) == 0
                        && let Some(ep) = pick(&mut rng, &of_kind("ai-endpoint", &declared))
                    {
                        let _ =
                            writeln!(text, "    env \"MODEL_URL\" from=\"ai-endpoint/{ep}.url\"");
                    }
                    let services = of_kind("service", &declared);
                    for n in 0..rng.below(3) {
                        if let Some(svc) = pick(&mut rng, &services) {
                            let _ = writeln!(
                                text,
                                "    env \"UPSTREAM_{n}_URL\" from=\"service/{svc}.url\""
                            );
                        }
                    }
                    // Some fan-in across teams.
                    if t > 0 && rng.below(10) == 0 {
                        let other = rng.below(t);
                        let _ = writeln!(text, "    depends-on \"service/service-{other}-99\"");
                    }
                    text.push_str("    env \"API_KEY\" secret=\"aws-sm:bench/key\"\n");
                }
            }
            text.push_str("}\n\n");
            chunk.push_str(&text);
            declared.push((kind.to_string(), name));
            if (i + 1) % 20 == 0 || i + 1 == count {
                files.push((
                    format!("{team}/part-{file_no:02}.kdl"),
                    std::mem::take(&mut chunk),
                ));
                file_no += 1;
            }
        }
    }
    files
}

/// A synthetic stack of `resources` resources of which `uses` are services made by uses of one
/// template (`templates/service.kdl`), the rest as [`stack_files`] writes them: for measuring
/// what template expansion costs.
pub fn stack_files_with_uses(resources: usize, seed: u64, uses: usize) -> Vec<(String, String)> {
    let uses = uses.min(resources.saturating_sub(1));
    let mut files = stack_files(resources - uses, seed);
    if uses == 0 {
        return files;
    }
    let teams = (resources - uses).div_ceil(100).max(1);
    files.push((
        "templates/service.kdl".to_string(),
        "template \"bench-service\" version=\"1\" {\n    doc \"A service with a database\"\n    param \"image\" type=\"image\"\n    param \"replicas\" type=\"int\" default=2 min=1 max=50\n    param \"database\" type=\"reference\"\n    service \"{name}\" {\n        image \"{image}\"\n        replicas \"{replicas}\"\n        port 8080\n        resources cpu=\"250m\" memory=\"256Mi\"\n        env \"LOG_LEVEL\" \"info\"\n        env \"DATABASE_URL\" from=\"{database}.url\"\n        labels made-by=\"bench-service-{name}\"\n    }\n}\n".to_string(),
    ));
    let mut chunk = String::new();
    for u in 0..uses {
        let team = u % teams;
        let _ = write!(
            chunk,
            "use \"bench-service\" version=\"1\" name=\"templated-{u}\" team=\"team-{team}\" {{\n    image \"ghcr.io/acme/templated-{u}:1.{}.0\"\n    replicas {}\n    database \"database/database-{team}-0\"\n}}\n\n",
            u % 20,
            1 + u % 4
        );
        if (u + 1) % 20 == 0 || u + 1 == uses {
            files.push((
                format!("uses/part-{:03}.kdl", u / 20),
                std::mem::take(&mut chunk),
            ));
        }
    }
    files
}

/// Writes a synthetic stack into `dir`.
pub fn write_stack(dir: &Path, resources: usize, seed: u64) -> std::io::Result<()> {
    write_files(dir, stack_files(resources, seed))
}

/// Writes `files` (relative path, text) into `dir`.
pub fn write_files(dir: &Path, files: Vec<(String, String)>) -> std::io::Result<()> {
    for (path, text) in files {
        let full = dir.join(path);
        std::fs::create_dir_all(full.parent().expect("has parent"))?;
        std::fs::write(full, text)?;
    }
    Ok(())
}
