//! Paging of the small lists (templates, apps) the way every wxpush list
//! pages (AIP-158): `page_size` 0 means the default, above the maximum it is
//! clamped (not refused), and `next_page_token` is empty on the last page.
//! A token is the last key of the page, so a page after a concurrent insert
//! or delete neither repeats nor skips the items around it.

use crate::status::Violation;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Most items one page of a list holds; a larger `page_size` is clamped.
pub const MAX_PAGE_SIZE: usize = 500;

/// The page size to use: `default` for 0, at most [`MAX_PAGE_SIZE`].
pub fn page_size(requested: u32, default: usize) -> usize {
    match requested as usize {
        0 => default,
        n => n.min(MAX_PAGE_SIZE),
    }
}

/// The page token standing for `key`: items after it come next.
pub fn encode_token(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("k:{key}"))
}

/// The key a page token stands for: items after it come next.
pub fn decode_token(token: &str) -> Result<Option<String>, Violation> {
    if token.is_empty() {
        return Ok(None);
    }
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("k:").map(str::to_string))
        .map(Some)
        .ok_or_else(|| {
            Violation::new(
                "page_token",
                "is not a token from a previous response of this list",
            )
        })
}

/// One page of `items` (sorted by `key`, ascending) after `token`, and the
/// token of the next page (empty when this is the last).
pub fn page<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> &str,
    size: usize,
    token: &str,
) -> Result<(Vec<T>, String), Violation> {
    let after = decode_token(token)?;
    let mut rest: Vec<T> = items
        .into_iter()
        .filter(|t| after.as_deref().is_none_or(|a| key(t) > a))
        .collect();
    let more = rest.len() > size;
    rest.truncate(size);
    let next = match rest.last() {
        Some(last) if more => encode_token(key(last)),
        _ => String::new(),
    };
    Ok((rest, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_every_item_once_and_ends_with_an_empty_token() {
        let items: Vec<String> = (0..7).map(|i| format!("k{i}")).collect();
        let (mut seen, mut token) = (Vec::new(), String::new());
        loop {
            let (got, next) = page(items.clone(), |s| s.as_str(), 3, &token).unwrap();
            seen.extend(got);
            if next.is_empty() {
                break;
            }
            token = next;
        }
        assert_eq!(seen, items);
    }

    #[test]
    fn clamps_the_size_and_refuses_a_foreign_token() {
        assert_eq!(page_size(0, 100), 100);
        assert_eq!(page_size(10_000, 100), MAX_PAGE_SIZE);
        assert_eq!(page_size(7, 100), 7);
        let err = page(vec!["a".to_string()], |s| s.as_str(), 1, "not-ours!").unwrap_err();
        assert_eq!(err.field, "page_token");
    }
}
