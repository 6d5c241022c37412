//! URLs as they may be recorded: the `access_token` (and `secret`) query
//! values replaced by `REDACTED`.

/// Replaces the values of `access_token` and `secret` query parameters.
pub fn redact_url(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let (query, fragment) = match query.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (query, None),
    };
    let redacted: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if k == "access_token" || k == "secret" => format!("{k}=REDACTED"),
            _ => pair.to_string(),
        })
        .collect();
    let mut out = format!("{base}?{}", redacted.join("&"));
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_token_and_secret_keeps_the_rest() {
        assert_eq!(
            redact_url(
                "https://h/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=s3cr3t"
            ),
            "https://h/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=REDACTED"
        );
        assert_eq!(
            redact_url("http://h/send?access_token=ABC#x"),
            "http://h/send?access_token=REDACTED#x"
        );
        assert_eq!(redact_url("http://h/p"), "http://h/p");
    }
}
