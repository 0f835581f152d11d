//! Which names hold secrets, and which values are unfilled placeholders.
//! Used to redact output and to refuse secrets written into `deployment.yml`.

/// Substrings (upper-case) that make a variable or key name secret.
const SECRET_MARKERS: &[&str] = &[
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "TOKEN",
    "API_KEY",
    "APIKEY",
    "PRIVATE",
    "CREDENTIAL",
    "DATABASE_URL",
    "DSN",
    "WEBHOOK",
];

/// Values that mean "not filled in yet".
const PLACEHOLDERS: &[&str] = &["CHANGE_ME", "CHANGEME", "REPLACE_ME", "TODO"];

/// Whether a name (`JWT_SECRET`, `admin_api_key`, `database_url`) looks secret.
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_MARKERS.iter().any(|m| upper.contains(m)) || upper.ends_with("_KEY")
}

/// Whether a value is empty or still a template placeholder.
pub fn is_placeholder(value: &str) -> bool {
    let v = value.trim();
    v.is_empty()
        || PLACEHOLDERS
            .iter()
            .any(|p| v.to_ascii_uppercase().contains(p))
}

/// Whether a string carries a password inside a URL (`scheme://user:pw@host`).
pub fn url_has_password(value: &str) -> bool {
    url::Url::parse(value).is_ok_and(|u| {
        u.password()
            .is_some_and(|p| !p.is_empty() && !p.contains("${"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_values_urls() {
        assert!(is_secret_name("JWT_SECRET"));
        assert!(is_secret_name("admin_api_key"));
        assert!(is_secret_name("DATABASE_URL"));
        assert!(is_secret_name("POSTGRES_PASSWORD"));
        assert!(!is_secret_name("LOG_LEVEL"));
        assert!(!is_secret_name("PORT"));
        assert!(is_placeholder("CHANGE_ME"));
        assert!(is_placeholder("  "));
        assert!(is_placeholder("postgres://u:CHANGE_ME@db/x"));
        assert!(!is_placeholder("s3cr3t-value"));
        assert!(url_has_password("postgres://u:pw@db/x"));
        assert!(!url_has_password("postgres://u@db/x"));
        assert!(!url_has_password("https://ntfy.sh"));
    }
}
