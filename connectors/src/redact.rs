//! Keeping secrets out of what people see: logs, errors, `config show`, status.

/// Replaces the password of any `scheme://user:password@host` in a value with `****`.
pub fn mask_secrets(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(scheme_end) = rest.find("://") {
        let (head, tail) = rest.split_at(scheme_end + 3);
        out.push_str(head);
        let authority_end = tail.find(['/', '?', '#', ' ', '"']).unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&authority[..=colon]);
                out.push_str("****");
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    out
}

/// An error and its causes, each once, as `outer: inner: root` (the SDKs' own display stops at
/// "error sending request" or adds a debug dump; neither says why).
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(current) = next {
        let text = current.to_string();
        if !parts.iter().any(|seen| seen.contains(&text)) {
            parts.push(text);
        }
        next = current.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_url_passwords_only() {
        assert_eq!(mask_secrets("postgres://u:secret@h:5432/db"), "postgres://u:****@h:5432/db");
        assert_eq!(mask_secrets("amqp://guest@h/"), "amqp://guest@h/");
        assert_eq!(mask_secrets("a amqp://x:y@h b s3://k:v@b/p"), "a amqp://x:****@h b s3://k:****@b/p");
        assert_eq!(mask_secrets("plain"), "plain");
    }

    #[test]
    fn a_single_url() {
        assert_eq!(mask_secrets("postgres://u:secret@h:5432/db"), "postgres://u:****@h:5432/db");
        assert_eq!(mask_secrets("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(mask_secrets("sqlite://txp-data/txp.db"), "sqlite://txp-data/txp.db");
    }
}
