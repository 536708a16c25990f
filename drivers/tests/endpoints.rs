//! Self-hosted AI endpoints as the runtime needs them: `env` with secret references (a gated
//! model's `HF_TOKEN` from the secret store, never its value) and wired outputs, and a model on
//! several GPUs sharded across them (vLLM's tensor parallelism, TGI's shards), and Triton with
//! its model fetched from the repository bucket into a volume. The manifests pass
//! `kubernetes-validate --strict`.

mod support;

use serde_json::Value;

const STACK: &str = r#"platform "ml" {
    driver "local" { path ".platformd/rendered" }
    driver "kubernetes" { namespace "ml" }
    route "ai-endpoint" "gpu-pool" "topic" to="kubernetes"
}
team "ml" { owner "ml@acme.example" }
topic "prompts" { team "ml"; }
gpu-pool "h100" {
    team "ml"
    accelerator "nvidia-h100"
    instance-type "p5.48xlarge"
    nodes min=0 max=2
}
ai-endpoint "llama-70b" {
    team "ml"
    model "meta-llama/Llama-3.1-70B-Instruct" revision="main"
    runtime "vllm"
    gpu-pool "h100" gpus=4
    env "HF_TOKEN" secret="vault:ml/huggingface-token"
    env "VLLM_LOGGING_LEVEL" "INFO"
    env "PROMPTS" from="topic/prompts.bootstrap-servers"
}
ai-endpoint "mistral" {
    team "ml"
    model "mistralai/Mistral-7B-Instruct-v0.3" revision="main"
    runtime "tgi"
    gpu-pool "h100" gpus=2
}
bucket "models" { team "ml"; }
ai-endpoint "fraud" {
    team "ml"
    model "acme/fraud-xgb" revision="v14"
    runtime "triton"
    gpu-pool "h100" gpus=1
    model-repository "bucket/models" prefix="triton/"
    canary revision="v15" weight-percent=20
}
ai-endpoint "small" {
    team "ml"
    model "meta-llama/Llama-3.2-1B-Instruct" revision="main"
    runtime "vllm"
    gpu-pool "h100" gpus=1
}
"#;

fn documents(name: &str) -> Vec<Value> {
    let mut d = support::desired("ml", &support::snapshot(STACK))
        .into_iter()
        .find(|d| d.address == format!("ai-endpoint/{name}"))
        .unwrap();
    d.wired.insert(
        "PROMPTS".into(),
        "platform-kafka-bootstrap.ml.svc:9092".into(),
    );
    d.wired.insert(
        planner::resource_spec::MODEL_REPOSITORY_WIRE.into(),
        "ml-models-a1b2".into(),
    );
    drivers::render::documents(&d, "ml")
}

fn container(docs: &[Value]) -> &Value {
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    &deployment["spec"]["template"]["spec"]["containers"][0]
}

fn args(docs: &[Value]) -> Vec<String> {
    container(docs)["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn an_endpoint_gets_its_env_with_secrets_by_reference() {
    let docs = documents("llama-70b");
    let env = container(&docs)["env"].as_array().unwrap().clone();
    let by_name = |name: &str| env.iter().find(|e| e["name"] == name).cloned();
    let token = by_name("HF_TOKEN").expect("the token reaches the runtime");
    assert!(token["value"].is_null(), "{token}");
    let secret = token["valueFrom"]["secretKeyRef"]["name"].as_str().unwrap();
    assert_eq!(by_name("VLLM_LOGGING_LEVEL").unwrap()["value"], "INFO");
    assert_eq!(
        by_name("PROMPTS").unwrap()["value"],
        "platform-kafka-bootstrap.ml.svc:9092"
    );
    // The Secret comes from the store through an ExternalSecret of that name.
    let external = docs
        .iter()
        .find(|d| d["kind"] == "ExternalSecret")
        .expect("an ExternalSecret");
    assert_eq!(external["spec"]["target"]["name"], secret);
    assert!(
        external.to_string().contains("ml/huggingface-token"),
        "{external}"
    );

    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        let kind = doc["kind"].as_str().unwrap();
        if matches!(kind, "Deployment" | "Service" | "HorizontalPodAutoscaler") {
            let file = dir.path().join(format!("{i}-{kind}.json"));
            std::fs::write(&file, doc.to_string()).unwrap();
            files.push(file);
        }
    }
    support::kubernetes_validate(&files);
}

#[test]
fn a_model_on_several_gpus_is_sharded_across_them() {
    let vllm = args(&documents("llama-70b"));
    let at = vllm
        .iter()
        .position(|a| a == "--tensor-parallel-size")
        .expect("vLLM shards a 4-GPU model");
    assert_eq!(vllm[at + 1], "4");
    let tgi = args(&documents("mistral"));
    let at = tgi
        .iter()
        .position(|a| a == "--num-shard")
        .expect("TGI shards a 2-GPU model");
    assert_eq!(tgi[at + 1], "2");
    let one = args(&documents("small"));
    assert!(
        !one.iter().any(|a| a.contains("tensor-parallel")),
        "{one:?}"
    );
}

#[test]
fn triton_serves_the_model_fetched_from_its_repository_into_a_volume() {
    let docs = documents("fraud");
    let deployments: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "Deployment").collect();
    for (deployment, revision) in deployments.iter().zip(["v14", "v15"]) {
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(
            pod["volumes"][0],
            serde_json::json!({ "name": "models", "emptyDir": {} })
        );
        let fetch = &pod["initContainers"][0];
        assert_eq!(fetch["name"], "fetch-model");
        assert_eq!(
            fetch["args"],
            serde_json::json!([
                "s3",
                "sync",
                format!("s3://ml-models-a1b2/triton/acme/fraud-xgb/{revision}/"),
                "/models/fraud-xgb/"
            ]),
            "the bucket's real name, the revision of the track"
        );
        let server = &pod["containers"][0];
        assert_eq!(server["volumeMounts"][0]["mountPath"], "/models");
        let args: Vec<&str> = server["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert!(args.contains(&"--model-repository=/models"), "{args:?}");
        assert!(args.contains(&"--load-model=fraud-xgb"), "{args:?}");
        assert!(args.contains(&"--model-control-mode=explicit"), "{args:?}");
    }
    assert_eq!(deployments.len(), 2, "the stable revision and the canary");
    // A vLLM endpoint downloads by id: no repository, no volume.
    let vllm = documents("small");
    assert!(container(&vllm).get("volumeMounts").is_none());
}

#[test]
fn triton_needs_a_model_repository_and_tgi_serves_from_one_when_given() {
    let codes = |text: &str| -> Vec<&'static str> {
        planner::analyze(vec![planner::StackFile {
            path: "platform.kdl".into(),
            text: text.into(),
        }])
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.code)
        .collect()
    };
    assert_eq!(
        codes(&STACK.replace(
            "    model-repository \"bucket/models\" prefix=\"triton/\"\n",
            ""
        )),
        ["missing-field"]
    );
    let own = STACK.replace(
        "    runtime \"tgi\"\n",
        "    runtime \"tgi\"\n    model-repository \"bucket/models\"\n",
    );
    assert_eq!(codes(&own), Vec::<&str>::new());
    let d = support::desired("ml", &support::snapshot(&own))
        .into_iter()
        .find(|d| d.address == "ai-endpoint/mistral")
        .unwrap();
    let docs = drivers::render::documents(&d, "ml");
    let args = args(&docs);
    let at = args.iter().position(|a| a == "--model-id").unwrap();
    assert_eq!(args[at + 1], "/models/Mistral-7B-Instruct-v0.3");
    assert!(!args.iter().any(|a| a == "--revision"), "{args:?}");
}

/// The runtimes' images are pinned by tag by default; an operator pins them by digest with the
/// Kubernetes driver's `vllm-image`, `tgi-image` and `triton-image` settings, for every revision.
#[test]
fn a_runtime_image_can_be_pinned_by_digest() {
    use drivers::Driver;
    let digest = format!("vllm/vllm-openai@sha256:{}", "ab12".repeat(16));
    let mut settings = std::collections::BTreeMap::new();
    settings.insert("namespace".to_string(), "ml".to_string());
    settings.insert("vllm-image".to_string(), digest.clone());
    let driver = drivers::kubernetes::KubernetesDriver::new(
        drivers::kubernetes::Settings::from_map(&settings),
    );
    let mut d = support::desired("ml", &support::snapshot(STACK))
        .into_iter()
        .find(|d| d.address == "ai-endpoint/small")
        .unwrap();
    if let planner::model::Spec::AiEndpoint(e) = &mut d.spec.fields {
        e.canary = Some(planner::model::Canary {
            revision: "next".into(),
            weight_percent: 10,
        });
    }
    let Value::Array(docs) = driver.expected(&d).unwrap() else {
        panic!("a list")
    };
    let images: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == "Deployment")
        .map(|d| &d["spec"]["template"]["spec"]["containers"][0]["image"])
        .collect();
    assert_eq!(images.len(), 2);
    assert!(images.iter().all(|i| **i == digest), "{images:?}");
    // TGI keeps its default: only vLLM was pinned.
    let tgi = support::desired("ml", &support::snapshot(STACK))
        .into_iter()
        .find(|d| d.address == "ai-endpoint/mistral")
        .unwrap();
    let Value::Array(docs) = driver.expected(&tgi).unwrap() else {
        panic!("a list")
    };
    assert!(
        docs[0]["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .starts_with("ghcr.io/huggingface/text-generation-inference:")
    );
    // A digest that is not one is refused at plan time, at the setting.
    let bad = STACK.replace(
        "driver \"kubernetes\" { namespace \"ml\" }",
        "driver \"kubernetes\" { namespace \"ml\"; vllm-image \"vllm/vllm-openai@sha256:abc\" }",
    );
    let codes: Vec<&str> = planner::analyze(vec![planner::StackFile {
        path: "platform.kdl".into(),
        text: bad,
    }])
    .diagnostics
    .iter()
    .filter(|d| d.is_error())
    .map(|d| d.code)
    .collect();
    assert_eq!(codes, ["invalid-value"]);
}
