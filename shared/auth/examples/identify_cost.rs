//! What checking a caller costs: `Authenticator::identify` of an HS256
//! bearer token, 100 000 times in a loop (BENCHMARKS.md, "Checking
//! callers"). `cargo run --release -p wxpush-auth --example identify_cost`.

use http::{HeaderMap, HeaderValue};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use std::time::Instant;
use wxpush_auth::{Authenticator, CallerGrant, Grants, JwtConfig, Operation};

fn main() {
    let dir = std::env::temp_dir().join(format!("wxpush-identify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let secret = "identify-cost-secret-of-32-bytes-at-least";
    std::fs::write(dir.join("hs256"), secret).expect("the secret written");
    let jwt = JwtConfig {
        hs256_secret_file: Some(dir.join("hs256")),
        issuer: "bench".into(),
        audience: "wxpush".into(),
        ..Default::default()
    };
    let grants = Grants::new(vec![CallerGrant {
        name: "bench".into(),
        subjects: vec!["bench".into()],
        apps: vec!["*".into()],
        templates: Vec::new(),
        operations: [Operation::Send].into(),
    }])
    .expect("valid grants");
    let auth = Authenticator::new(Some(&jwt), false, grants).expect("the authenticator");
    let now = jsonwebtoken::get_current_timestamp();
    let claims = serde_json::json!({
        "sub": "bench", "iss": "bench", "aud": "wxpush", "exp": now + 3600, "nbf": now - 5,
    });
    let key = EncodingKey::from_secret(secret.as_bytes()).expect("an HS256 key");
    let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key)
        .expect("a signed token");
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).expect("a header value"),
    );
    let n = 100_000u32;
    let started = Instant::now();
    for _ in 0..n {
        std::hint::black_box(auth.identify(&headers).expect("identified"));
    }
    println!(
        "identify (HS256 bearer token): {:?} per call over {n} calls",
        started.elapsed() / n
    );
    std::fs::remove_dir_all(dir).ok();
}
