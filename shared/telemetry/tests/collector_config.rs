//! A structural check of the shipped `otel-collector.yaml` (no collector
//! binary can be installed here): every pipeline names defined receivers,
//! processors, exporters and connectors of known types, every defined
//! component is used, connectors join the right signal types, the memory
//! limiter runs first, tail-sampling policies are well-formed, and every
//! duration is a Go duration. The checker is also run on broken variants so
//! it is known to fail.

use serde_yaml_ng::{Mapping, Value};
use std::collections::BTreeSet;

const KNOWN_RECEIVERS: &[&str] = &["otlp", "prometheus", "jaeger", "zipkin", "hostmetrics"];
const KNOWN_PROCESSORS: &[&str] = &[
    "memory_limiter",
    "batch",
    "tail_sampling",
    "attributes",
    "resource",
    "filter",
    "transform",
    "k8sattributes",
    "probabilistic_sampler",
];
const KNOWN_EXPORTERS: &[&str] = &[
    "otlp",
    "otlphttp",
    "prometheus",
    "prometheusremotewrite",
    "debug",
    "loadbalancing",
];
/// Connector type: (signal it receives as an exporter, signal it emits).
const KNOWN_CONNECTORS: &[(&str, &str, &str)] = &[
    ("spanmetrics", "traces", "metrics"),
    ("servicegraph", "traces", "metrics"),
    ("count", "traces", "metrics"),
];
const TAIL_POLICIES: &[&str] = &[
    "always_sample",
    "latency",
    "numeric_attribute",
    "probabilistic",
    "status_code",
    "string_attribute",
    "rate_limiting",
    "span_count",
    "trace_state",
    "boolean_attribute",
    "ottl_condition",
    "and",
    "composite",
];
/// Keys whose values are Go durations.
const DURATION_KEYS: &[&str] = &[
    "check_interval",
    "timeout",
    "decision_wait",
    "metrics_flush_interval",
    "initial_interval",
    "max_interval",
    "max_elapsed_time",
];

fn is_go_duration(s: &str) -> bool {
    if s == "0" {
        return true;
    }
    let mut rest = s;
    let mut parts = 0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 || rest[..num_len].parse::<f64>().is_err() {
            return false;
        }
        rest = &rest[num_len..];
        let unit = ["ns", "us", "µs", "ms", "h", "m", "s"]
            .iter()
            .find(|u| rest.starts_with(**u));
        match unit {
            Some(u) => rest = &rest[u.len()..],
            None => return false,
        }
        parts += 1;
    }
    parts > 0
}

fn type_of(id: &str) -> &str {
    id.split('/').next().unwrap_or(id)
}

fn section<'a>(root: &'a Value, name: &str) -> Option<&'a Mapping> {
    root.get(name).and_then(Value::as_mapping)
}

fn ids(map: Option<&Mapping>) -> BTreeSet<String> {
    map.map(|m| {
        m.keys()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect()
    })
    .unwrap_or_default()
}

fn list(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_sequence)
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn walk_durations(v: &Value, path: &str, errors: &mut Vec<String>) {
    match v {
        Value::Mapping(m) => {
            for (k, child) in m {
                let key = k.as_str().unwrap_or("?");
                let here = format!("{path}.{key}");
                if DURATION_KEYS.contains(&key) {
                    match child.as_str() {
                        Some(s) if is_go_duration(s) => {}
                        _ => errors.push(format!("{here}: {child:?} is not a Go duration")),
                    }
                }
                if key == "buckets" {
                    for b in child.as_sequence().into_iter().flatten() {
                        if !b.as_str().is_some_and(is_go_duration) {
                            errors.push(format!("{here}: bucket {b:?} is not a Go duration"));
                        }
                    }
                }
                walk_durations(child, &here, errors);
            }
        }
        Value::Sequence(s) => {
            for (i, child) in s.iter().enumerate() {
                walk_durations(child, &format!("{path}[{i}]"), errors);
            }
        }
        _ => {}
    }
}

/// Every problem found in a collector configuration.
fn check(yaml: &str) -> Vec<String> {
    let root: Value = match serde_yaml_ng::from_str(yaml) {
        Ok(v) => v,
        Err(e) => return vec![format!("not YAML: {e}")],
    };
    let mut errors = Vec::new();
    let receivers = ids(section(&root, "receivers"));
    let processors = ids(section(&root, "processors"));
    let exporters = ids(section(&root, "exporters"));
    let connectors = ids(section(&root, "connectors"));
    let kinds: [(&BTreeSet<String>, &[&str], &str); 3] = [
        (&receivers, KNOWN_RECEIVERS, "receiver"),
        (&processors, KNOWN_PROCESSORS, "processor"),
        (&exporters, KNOWN_EXPORTERS, "exporter"),
    ];
    for (set, known, what) in kinds {
        for id in set {
            if !known.contains(&type_of(id)) {
                errors.push(format!("unknown {what} type in {id}"));
            }
        }
    }
    for id in &connectors {
        if !KNOWN_CONNECTORS.iter().any(|(t, _, _)| *t == type_of(id)) {
            errors.push(format!("unknown connector type in {id}"));
        }
    }
    let Some(pipelines) = root
        .get("service")
        .and_then(|s| s.get("pipelines"))
        .and_then(Value::as_mapping)
    else {
        errors.push("no service.pipelines".into());
        return errors;
    };
    let mut used = BTreeSet::new();
    let mut connector_in = BTreeSet::new();
    let mut connector_out = BTreeSet::new();
    for (name, p) in pipelines {
        let name = name.as_str().unwrap_or("?");
        let signal = type_of(name);
        if !["traces", "metrics", "logs"].contains(&signal) {
            errors.push(format!("pipeline {name}: unknown signal {signal}"));
        }
        let rs = list(p, "receivers");
        let ps = list(p, "processors");
        let es = list(p, "exporters");
        if rs.is_empty() || es.is_empty() {
            errors.push(format!("pipeline {name}: needs receivers and exporters"));
        }
        for r in &rs {
            if connectors.contains(r) {
                let (_, _, emits) = KNOWN_CONNECTORS
                    .iter()
                    .find(|(t, _, _)| *t == type_of(r))
                    .copied()
                    .unwrap_or(("", "", ""));
                if emits != signal {
                    errors.push(format!("pipeline {name}: connector {r} emits {emits}"));
                }
                connector_out.insert(r.clone());
            } else if !receivers.contains(r) {
                errors.push(format!("pipeline {name}: receiver {r} is not defined"));
            }
            used.insert(format!("receiver:{r}"));
        }
        for x in &ps {
            if !processors.contains(x) {
                errors.push(format!("pipeline {name}: processor {x} is not defined"));
            }
            used.insert(format!("processor:{x}"));
        }
        if ps.iter().any(|x| type_of(x) == "memory_limiter")
            && type_of(ps.first().map(String::as_str).unwrap_or("")) != "memory_limiter"
        {
            errors.push(format!("pipeline {name}: memory_limiter must come first"));
        }
        for e in &es {
            if connectors.contains(e) {
                let (_, takes, _) = KNOWN_CONNECTORS
                    .iter()
                    .find(|(t, _, _)| *t == type_of(e))
                    .copied()
                    .unwrap_or(("", "", ""));
                if takes != signal {
                    errors.push(format!("pipeline {name}: connector {e} takes {takes}"));
                }
                connector_in.insert(e.clone());
            } else if !exporters.contains(e) {
                errors.push(format!("pipeline {name}: exporter {e} is not defined"));
            }
            used.insert(format!("exporter:{e}"));
        }
    }
    for c in &connectors {
        if !connector_in.contains(c) || !connector_out.contains(c) {
            errors.push(format!(
                "connector {c} must be an exporter of one pipeline and a receiver of another"
            ));
        }
    }
    for (set, what) in [
        (&receivers, "receiver"),
        (&processors, "processor"),
        (&exporters, "exporter"),
    ] {
        for id in set {
            if !used.contains(&format!("{what}:{id}")) {
                errors.push(format!("{what} {id} is defined but never used"));
            }
        }
    }
    if let Some(tail) = section(&root, "processors").and_then(|p| p.get("tail_sampling")) {
        for policy in tail
            .get("policies")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            let t = policy.get("type").and_then(Value::as_str).unwrap_or("");
            if !TAIL_POLICIES.contains(&t) {
                errors.push(format!("tail_sampling: unknown policy type {t:?}"));
            }
            if t == "status_code" {
                for code in list(
                    policy.get("status_code").unwrap_or(&Value::Null),
                    "status_codes",
                ) {
                    if !["OK", "ERROR", "UNSET"].contains(&code.as_str()) {
                        errors.push(format!("tail_sampling: bad status code {code}"));
                    }
                }
            }
        }
    }
    walk_durations(&root, "", &mut errors);
    errors
}

fn shipped() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../otel-collector.yaml");
    std::fs::read_to_string(path).expect("otel-collector.yaml at the repository root")
}

#[test]
fn the_shipped_collector_config_is_consistent() {
    let errors = check(&shipped());
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn the_shipped_config_keeps_errors_and_slow_traces_and_exports_everywhere() {
    let root: Value = serde_yaml_ng::from_str(&shipped()).unwrap();
    let policies = format!("{:?}", root["processors"]["tail_sampling"]["policies"]);
    assert!(policies.contains("ERROR"), "errors are kept");
    assert!(policies.contains("latency"), "slow traces are kept");
    let exporters = ids(section(&root, "exporters"));
    for e in ["otlp/jaeger", "prometheus", "debug"] {
        assert!(exporters.contains(e), "exporter {e}");
    }
    let protocols = &root["receivers"]["otlp"]["protocols"];
    assert!(protocols.get("grpc").is_some() && protocols.get("http").is_some());
}

#[test]
fn the_checker_catches_broken_configs() {
    let good = shipped();
    let broken = [
        good.replace("exporters: [otlp/jaeger]", "exporters: [otlp/zipkin]"),
        good.replace("decision_wait: 15s", "decision_wait: 15"),
        good.replace("type: status_code", "type: status"),
        good.replace(
            "processors: [memory_limiter, tail_sampling, batch]",
            "processors: [tail_sampling, memory_limiter, batch]",
        ),
        good.replace("receivers: [spanmetrics]", "receivers: [otlp]"),
        good.replace(
            "  debug:\n    verbosity: basic",
            "  debugger:\n    verbosity: basic",
        ),
    ];
    for (i, yaml) in broken.iter().enumerate() {
        assert_ne!(yaml, &good, "variant {i} must change the config");
        assert!(!check(yaml).is_empty(), "variant {i} passed the check");
    }
    assert!(is_go_duration("1h2m3.5s") && is_go_duration("250ms"));
    assert!(!is_go_duration("5") && !is_go_duration("5 s") && !is_go_duration(""));
}
