//! Who is calling, against issue 17's bad input: an expired token, a token
//! signed with another key, `alg: none`, an HS256 token against an RS256
//! key, a token for another audience, a forged `x-forwarded-client-cert`
//! when the mesh is not trusted, a 100 KB authorization header, a grants
//! file with an unknown operation. Each a clear error naming no token.
//! (The keys in `tests/keys/` are made for these tests only.)

use http::{HeaderMap, HeaderValue};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use std::path::PathBuf;
use wxpush_auth::{AuthError, Authenticator, CallerGrant, Grants, JwtConfig, Operation};

const ORDERS: &str = "spiffe://cluster.local/ns/shop/sa/orders";

fn keys(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/keys")
        .join(name)
}

fn grants() -> Grants {
    Grants::new(vec![CallerGrant {
        name: "orders".into(),
        subjects: vec!["orders-service".into(), ORDERS.into()],
        apps: vec!["wx_a".into()],
        templates: Vec::new(),
        operations: [Operation::Send].into(),
    }])
    .unwrap()
}

fn rs256(trust_mesh: bool) -> Authenticator {
    let jwt = JwtConfig {
        public_key_file: Some(keys("rs256-public.pem")),
        issuer: "https://sso.example.com".into(),
        audience: "wxpush".into(),
        ..Default::default()
    };
    Authenticator::new(Some(&jwt), trust_mesh, grants()).unwrap()
}

fn now() -> i64 {
    jsonwebtoken::get_current_timestamp() as i64
}

fn claims(exp: i64, aud: &str) -> serde_json::Value {
    json!({"sub": "orders-service", "iss": "https://sso.example.com", "aud": aud, "exp": exp, "nbf": now() - 10})
}

fn sign(alg: Algorithm, key: &EncodingKey, claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, key).unwrap()
}

fn rsa_key(name: &str) -> EncodingKey {
    EncodingKey::from_rsa_pem(&std::fs::read(keys(name)).unwrap()).unwrap()
}

fn bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    h
}

fn refused(a: &Authenticator, headers: &HeaderMap) -> AuthError {
    a.identify(headers).map(|(i, _)| i).unwrap_err()
}

#[test]
fn a_good_token_names_its_caller() {
    let a = rs256(false);
    let token = sign(
        Algorithm::RS256,
        &rsa_key("rs256-private.pem"),
        &claims(now() + 300, "wxpush"),
    );
    let (id, grant) = a.identify(&bearer(&token)).unwrap();
    assert_eq!(
        (id.caller.as_str(), id.subject.as_str()),
        ("orders", "orders-service")
    );
    assert!(grant.covers_app("wx_a"));
}

#[test]
fn bad_tokens_are_refused_naming_why_and_never_the_token() {
    let a = rs256(false);
    let ours = rsa_key("rs256-private.pem");
    let cases = [
        (
            "expired (past the 30 s leeway)",
            sign(Algorithm::RS256, &ours, &claims(now() - 120, "wxpush")),
            "expired",
        ),
        (
            "signed with another key",
            sign(
                Algorithm::RS256,
                &rsa_key("other-rs256-private.pem"),
                &claims(now() + 300, "wxpush"),
            ),
            "signature does not verify",
        ),
        (
            "for another audience",
            sign(Algorithm::RS256, &ours, &claims(now() + 300, "payments")),
            "another audience",
        ),
        (
            "HS256 made with the public key as its secret (algorithm confusion)",
            sign(
                Algorithm::HS256,
                &EncodingKey::from_secret(&std::fs::read(keys("rs256-public.pem")).unwrap())
                    .unwrap(),
                &claims(now() + 300, "wxpush"),
            ),
            "algorithm is not the configured key's",
        ),
    ];
    for (what, token, why) in cases {
        let e = refused(&a, &bearer(&token));
        let text = e.to_string();
        assert!(text.contains(why), "{what}: {text}");
        assert!(!text.contains(&token[..20]), "{what}: the token in {text}");
    }
    // alg: none, unsigned.
    let b64 = |v: serde_json::Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let none = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"})),
        b64(claims(now() + 300, "wxpush"))
    );
    assert!(matches!(
        refused(&a, &bearer(&none)),
        AuthError::BadToken(_)
    ));
    assert_eq!(refused(&a, &HeaderMap::new()), AuthError::Missing);
    let mut basic = HeaderMap::new();
    basic.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_static("Basic b3JkZXJz"),
    );
    assert_eq!(refused(&a, &basic), AuthError::NotBearer);
}

#[test]
fn a_100_kb_authorization_header_is_refused_unread() {
    let a = rs256(false);
    let huge = "a".repeat(100 * 1024);
    assert_eq!(
        refused(&a, &bearer(&huge)),
        AuthError::TooLarge("authorization")
    );
}

#[test]
fn the_mesh_header_counts_only_where_the_mesh_is_trusted() {
    let mut h = HeaderMap::new();
    h.insert(
        "x-forwarded-client-cert",
        HeaderValue::from_str(&format!(
            "By=spiffe://cluster.local/ns/wx/sa/delivery;URI={ORDERS}"
        ))
        .unwrap(),
    );
    assert_eq!(refused(&rs256(false), &h), AuthError::MeshNotTrusted);
    let (id, _) = rs256(true).identify(&h).unwrap();
    assert_eq!(id.caller, "orders");
    let mut stranger = HeaderMap::new();
    stranger.insert(
        "x-forwarded-client-cert",
        HeaderValue::from_static("URI=spiffe://cluster.local/ns/x/sa/stranger"),
    );
    assert!(matches!(
        refused(&rs256(true), &stranger),
        AuthError::Unknown(_)
    ));
}

#[test]
fn es256_and_hs256_keys_take_their_own_algorithm_only() {
    let es = JwtConfig {
        public_key_file: Some(keys("es256-public.pem")),
        issuer: "https://sso.example.com".into(),
        audience: "wxpush".into(),
        ..Default::default()
    };
    let a = Authenticator::new(Some(&es), false, grants()).unwrap();
    let key = EncodingKey::from_ec_pem(&std::fs::read(keys("es256-private.pem")).unwrap()).unwrap();
    let token = sign(Algorithm::ES256, &key, &claims(now() + 300, "wxpush"));
    assert_eq!(a.identify(&bearer(&token)).unwrap().0.caller, "orders");
    let rs = sign(
        Algorithm::RS256,
        &rsa_key("rs256-private.pem"),
        &claims(now() + 300, "wxpush"),
    );
    assert!(matches!(refused(&a, &bearer(&rs)), AuthError::BadToken(_)));

    let dir = std::env::temp_dir().join(format!("wxpush-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("short"), "too-short").unwrap();
    let short = JwtConfig {
        hs256_secret_file: Some(dir.join("short")),
        issuer: "i".into(),
        audience: "a".into(),
        ..Default::default()
    };
    assert!(
        Authenticator::new(Some(&short), false, grants())
            .err()
            .unwrap()
            .to_string()
            .contains("shorter than 32 bytes")
    );
    let secret = "0123456789abcdef0123456789abcdef";
    std::fs::write(dir.join("secret"), secret).unwrap();
    let hs = JwtConfig {
        hs256_secret_file: Some(dir.join("secret")),
        issuer: "https://sso.example.com".into(),
        audience: "wxpush".into(),
        ..Default::default()
    };
    let a = Authenticator::new(Some(&hs), false, grants()).unwrap();
    let token = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
        &claims(now() + 300, "wxpush"),
    );
    assert_eq!(a.identify(&bearer(&token)).unwrap().0.caller, "orders");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_grants_file_with_an_unknown_operation_is_refused_naming_it() {
    let e = serde_yaml_ng::from_str::<Vec<CallerGrant>>(
        "- name: orders\n  subjects: [orders-service]\n  apps: ['*']\n  operations: [send, sned]\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("unknown operation \"sned\""), "{e}");
    let e = serde_yaml_ng::from_str::<Vec<CallerGrant>>(
        "- name: orders\n  subjects: [orders-service]\n  appz: ['*']\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("appz"), "{e}");
}

/// A JWKS (an identity provider's keys, saved): each token names its key
/// by `kid`, and each key verifies its own algorithm only.
#[test]
fn a_jwks_picks_the_key_a_token_names() {
    let jwks = JwtConfig {
        jwks_file: Some(keys("jwks.json")),
        issuer: "https://sso.example.com".into(),
        audience: "wxpush".into(),
        ..Default::default()
    };
    let a = Authenticator::new(Some(&jwks), false, grants()).unwrap();
    let with_kid = |alg: Algorithm, kid: Option<&str>, key: &EncodingKey| {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_string);
        jsonwebtoken::encode(&header, &claims(now() + 300, "wxpush"), key).unwrap()
    };
    let rsa = rsa_key("rs256-private.pem");
    let ec = EncodingKey::from_ec_pem(&std::fs::read(keys("es256-private.pem")).unwrap()).unwrap();
    for token in [
        with_kid(Algorithm::RS256, Some("rsa-1"), &rsa),
        with_kid(Algorithm::ES256, Some("ec-1"), &ec),
    ] {
        assert_eq!(a.identify(&bearer(&token)).unwrap().0.caller, "orders");
    }
    let why = |token: String| match refused(&a, &bearer(&token)) {
        AuthError::BadToken(why) => why,
        other => panic!("{other:?}"),
    };
    // The RSA key's kid on an ES256 token; a key it does not have; no kid.
    assert!(why(with_kid(Algorithm::ES256, Some("rsa-1"), &ec)).contains("algorithm"));
    let other = rsa_key("other-rs256-private.pem");
    assert!(why(with_kid(Algorithm::RS256, Some("rsa-1"), &other)).contains("signature"));
    assert!(why(with_kid(Algorithm::RS256, Some("rsa-9"), &rsa)).contains("does not have"));
    assert!(why(with_kid(Algorithm::RS256, None, &rsa)).contains("names no key"));

    // A JWKS with a symmetric key is refused at start, naming the key.
    let dir = std::env::temp_dir().join(format!("wxpush-jwks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("oct.json"),
        r#"{"keys":[{"kty":"oct","kid":"s","k":"c2VjcmV0"}]}"#,
    )
    .unwrap();
    let e = Authenticator::new(
        Some(&JwtConfig {
            jwks_file: Some(dir.join("oct.json")),
            ..jwks.clone()
        }),
        false,
        grants(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("jwks_file") && e.contains("keys[0]: only RSA and EC P-256"),
        "{e}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
